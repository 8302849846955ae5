// Package problem writes and reads RFC 9457 problem details
// (application/problem+json), the one error shape rempart's HTTP APIs answer with.
package problem

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// ContentType is the media type of a problem document.
const ContentType = "application/problem+json"

// Details is an RFC 9457 problem document. Extension members go in Extra and
// are flattened into the top-level object when encoded.
type Details struct {
	Type     string `json:"type,omitempty"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Field names the offending request field when there is one.
	Field string `json:"field,omitempty"`
	// Extra holds extension members (for example "retry_after").
	Extra map[string]any `json:"-"`
}

// TypeBase prefixes rempart's problem type URIs; the suffix is a stable slug.
const TypeBase = "https://rempart.dev/problems/"

// New returns a problem of the given status with a type slug and detail.
func New(status int, slug, detail string) *Details {
	return &Details{
		Type:   TypeBase + slug,
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
	}
}

// WithField records which request field is wrong.
func (d *Details) WithField(f string) *Details { d.Field = f; return d }

// With adds an extension member.
func (d *Details) With(k string, v any) *Details {
	if d.Extra == nil {
		d.Extra = map[string]any{}
	}
	d.Extra[k] = v
	return d
}

// Error makes Details usable as an error.
func (d *Details) Error() string {
	if d.Field != "" {
		return d.Field + ": " + d.Detail
	}
	return d.Detail
}

// standard are the members Details defines: an extension member may not take
// their names even when they are empty and so left out of the document.
var standard = map[string]bool{"type": true, "title": true, "status": true, "detail": true, "instance": true, "field": true}

// MarshalJSON flattens Extra into the document.
func (d *Details) MarshalJSON() ([]byte, error) {
	type plain Details
	b, err := json.Marshal((*plain)(d))
	if err != nil || len(d.Extra) == 0 {
		return b, err
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, v := range d.Extra {
		if !standard[k] {
			m[k] = v
		}
	}
	return json.Marshal(m)
}

// Write sends the problem as the response. A status that cannot end a
// response (none, 1xx, out of range) is sent as 500: WriteHeader would panic
// on the first and the others would not be a final answer.
func Write(w http.ResponseWriter, d *Details) {
	if d.Status < 200 || d.Status > 999 {
		c := *d
		c.Status, c.Title = http.StatusInternalServerError, http.StatusText(http.StatusInternalServerError)
		d = &c
	}
	b, err := json.Marshal(d)
	if err != nil {
		b = []byte(`{"title":"Internal Server Error","status":500}`)
		d = &Details{Status: http.StatusInternalServerError}
	}
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(d.Status)
	_, _ = w.Write(append(b, '\n'))
}

// Error writes a problem built from status, slug and detail.
func Error(w http.ResponseWriter, status int, slug, detail string) {
	Write(w, New(status, slug, detail))
}
