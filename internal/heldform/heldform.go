// Package heldform carries a login form a browser posted back to it in an
// interstitial page — the waiting room's, the proof-of-work challenge's —
// so that the page can send it again instead of making the customer type
// it again, and picks the page's language the way the login page does.
//
// The fields go back only to the browser that sent them, in a page no
// cache may keep (the callers set no-store), and are bounded: a login form
// is a few fields of a few dozen bytes.
package heldform

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Bounds on a form carried back.
const (
	MaxBytes  = 8 << 10
	MaxFields = 16
)

// Form is a posted form to send again.
type Form struct {
	Action string
	Fields []Field
	Nonce  string // of the script that sends it
}

// Field is one name and value of a Form, in order.
type Field struct{ Name, Value string }

// Get returns the value of the form's first field named name.
func (f *Form) Get(name string) string {
	for _, x := range f.Fields {
		if x.Name == name {
			return x.Value
		}
	}
	return ""
}

// FromRequest returns the form of a POST to carry back, or nil for anything
// else (a GET can reload itself), for a body over MaxBytes or over
// MaxFields fields. It reads and parses req's body.
func FromRequest(req *http.Request) *Form {
	if req.Method != http.MethodPost || req.Body == nil {
		return nil
	}
	ct := req.Header.Get("Content-Type")
	if mt, _, _ := strings.Cut(ct, ";"); strings.TrimSpace(strings.ToLower(mt)) != "application/x-www-form-urlencoded" {
		return nil
	}
	req.Body = http.MaxBytesReader(nil, req.Body, MaxBytes)
	if err := req.ParseForm(); err != nil || len(req.PostForm) > MaxFields {
		return nil
	}
	f := &Form{Action: req.URL.Path, Nonce: NewNonce()}
	keys := make([]string, 0, len(req.PostForm))
	for k := range req.PostForm {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, v := range req.PostForm[k] {
			f.Fields = append(f.Fields, Field{k, v})
		}
	}
	return f
}

// NewNonce returns a script nonce for a Content-Security-Policy.
func NewNonce() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:]) // CSP allows - and _; html/template leaves them as they are
}

// MediaRange splits one element of an Accept or Accept-Language header into
// its lower-cased value and its q weight (1 when absent or invalid).
func MediaRange(s string) (string, float64) {
	typ, params, _ := strings.Cut(s, ";")
	q := 1.0
	for p := range strings.SplitSeq(params, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && f >= 0 && f <= 1 {
				q = f
			}
		}
	}
	return strings.ToLower(strings.TrimSpace(typ)), q
}

// Language picks French or English from Accept-Language, French when the
// client states no preference between them: the bank's customers are French.
func Language(acceptLanguage string) string {
	best, bestQ := "fr", 0.0
	for part := range strings.SplitSeq(acceptLanguage, ",") {
		tag, q := MediaRange(part)
		base, _, _ := strings.Cut(tag, "-")
		if (base == "fr" || base == "en") && q > bestQ {
			best, bestQ = base, q
		}
	}
	return best
}

// PageLanguage is the language of an interstitial page in front of the
// login: the form's own lang field (the language the customer chose on the
// login page) when it names one, else Accept-Language.
func PageLanguage(f *Form, acceptLanguage string) string {
	if f != nil {
		if l := f.Get("lang"); l == "fr" || l == "en" {
			return l
		}
	}
	return Language(acceptLanguage)
}
