package waitroom

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/net/html"
)

// pageForm is what a browser would read in a waiting page: its language,
// scripts (with their nonces) and the fields of the form it sends again.
type pageForm struct {
	lang    string
	scripts []string // nonces
	forms   int
	action  string
	fields  []field
}

func readPage(t *testing.T, body string) pageForm {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatalf("page does not parse: %v", err)
	}
	var p pageForm
	var walk func(n *html.Node, inForm bool)
	walk = func(n *html.Node, inForm bool) {
		attr := func(k string) string {
			for _, a := range n.Attr {
				if a.Key == k {
					return a.Val
				}
			}
			return ""
		}
		if n.Type == html.ElementNode {
			switch n.Data {
			case "html":
				p.lang = attr("lang")
			case "script":
				p.scripts = append(p.scripts, attr("nonce"))
			case "form":
				p.forms++
				p.action = attr("action")
				inForm = true
			case "input":
				if !inForm || attr("type") != "hidden" {
					t.Fatalf("stray input %v in the page:\n%s", n.Attr, body)
				}
				p.fields = append(p.fields, field{Name: attr("name"), Value: attr("value")})
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, inForm)
		}
	}
	walk(doc, false)
	return p
}

// FuzzWaitingAnswer sends a held login POST (fuzzed form, Content-Type,
// Accept and Accept-Language) to a room that has no place for it. The
// answer is always the room's own 503 with a ticket and a Retry-After of at
// least one second: a problem document whose ticket and poll match the
// headers, or a page in French or English. A page for a form the room
// carries back (a readable form of at most 16 fields and 8 KiB) holds
// exactly those fields, in key order, under one form posting to the same
// address and one script whose nonce the CSP names; any other page has no
// script and reloads itself.
func FuzzWaitingAnswer(f *testing.F) {
	const browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	const form = "application/x-www-form-urlencoded"
	login := "id=AbCdEf0123456789&lang=fr&username=alice&password=alice-demo-2025"
	for _, s := range []struct{ body, ct, accept, lang string }{
		{login, form, browser, "fr-FR,fr;q=0.9,en;q=0.5"},
		{login, form, "application/json", ""},
		{login, form, "*/*", "en"},
		{login, form + "; charset=UTF-8", browser, "en-GB;q=0.8,fr;q=0.9"},
		{login, "multipart/form-data; boundary=x", browser, ""},
		{`password="><script>alert(1)</script>&username=</form><form action=//evil.example>`, form, browser, ""},
		{"a=1&a=2&b=&=x&c", form, browser, ""},
		{strings.Repeat("f=1&", 17), form, browser, ""},
		{"k=" + strings.Repeat("v", 9000), form, browser, ""},
		{"a=%zz&b=1", form, browser, ""},
		{"a=1;b=2", form, browser, ""},
		{"n%00=%00&v=%ff%fe&u=%E2%80%AE", form, browser, "*"},
		{"", form, "text/html;q=0.5,application/json;q=0.5", "en;q=x, fr;q=2"},
		{"x=1", "", "text/html;q=0", "de"},
	} {
		f.Add(s.body, s.ct, s.accept, s.lang)
	}
	f.Fuzz(func(t *testing.T, body, contentType, accept, acceptLanguage string) {
		fx := newFixture(t, 1, nil)
		fx.call("", nil)
		fx.ticket()
		req := httptest.NewRequest(http.MethodPost, "/login/password", strings.NewReader(body))
		for k, v := range map[string]string{"Content-Type": contentType, "Accept": accept, "Accept-Language": acceptLanguage} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		rec := httptest.NewRecorder()
		fx.h.ServeHTTP(rec, req)
		h := rec.Header()
		poll, err := strconv.Atoi(h.Get("Retry-After"))
		if rec.Code != http.StatusServiceUnavailable || h.Get(Header) != "waiting" || h.Get("Rempart-Ticket") == "" ||
			err != nil || poll < 1 || h.Get("Cache-Control") != "no-store" {
			t.Fatalf("%d %v", rec.Code, h)
		}
		if ct := h.Get("Content-Type"); ct == "application/problem+json" {
			var d waitingDoc
			if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil || d.Ticket != h.Get("Rempart-Ticket") ||
				d.Poll != float64(poll) || d.Status != http.StatusServiceUnavailable {
				t.Fatalf("problem %s (%v) with headers %v", rec.Body, err, h)
			}
			return
		} else if !strings.HasPrefix(ct, "text/html") {
			t.Fatalf("Content-Type %q", ct)
		}
		page := readPage(t, rec.Body.String())
		if lang := h.Get("Content-Language"); (lang != "fr" && lang != "en") || page.lang != lang {
			t.Fatalf("Content-Language %q, page in %q", lang, page.lang)
		}
		var want []field
		carried := false
		if mt, _, _ := strings.Cut(contentType, ";"); strings.EqualFold(strings.TrimSpace(mt), form) && len(body) <= maxFormBytes {
			if v, err := url.ParseQuery(body); err == nil && len(v) <= maxFormFields {
				carried = true
				keys := slices.Sorted(func(yield func(string) bool) {
					for k := range v {
						if !yield(k) {
							return
						}
					}
				})
				for _, k := range keys {
					for _, x := range v[k] {
						want = append(want, field{Name: k, Value: x})
					}
				}
			}
		}
		csp := h.Get("Content-Security-Policy")
		if !carried {
			if len(page.scripts) != 0 || page.forms != 0 || strings.Contains(csp, "script-src") ||
				!strings.Contains(rec.Body.String(), `http-equiv="refresh"`) {
				t.Fatalf("%q (%q) not carried back, yet the page has %d scripts, %d forms (CSP %q)", body, contentType,
					len(page.scripts), page.forms, csp)
			}
			return
		}
		if len(page.scripts) != 1 || page.scripts[0] == "" || !strings.Contains(csp, "script-src 'nonce-"+page.scripts[0]+"'") {
			t.Fatalf("scripts %q under CSP %q", page.scripts, csp)
		}
		if page.forms != 1 || page.action != "/login/password" {
			t.Fatalf("%d forms, action %q", page.forms, page.action)
		}
		// A page is text: a browser reads U+FFFD for NUL (and for bytes that
		// are not UTF-8, which no browser posts from a UTF-8 page).
		valid := true
		for i, w := range want {
			valid = valid && utf8.ValidString(w.Name) && utf8.ValidString(w.Value)
			want[i] = field{Name: strings.ReplaceAll(w.Name, "\x00", "\ufffd"), Value: strings.ReplaceAll(w.Value, "\x00", "\ufffd")}
		}
		if len(page.fields) != len(want) || valid && !slices.Equal(page.fields, want) {
			t.Fatalf("%q carried back as\n%q\nwant\n%q", body, page.fields, want)
		}
	})
}
