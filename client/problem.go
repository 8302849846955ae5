package client

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// problemMediaType is RFC 9457's media type.
const problemMediaType = "application/problem+json"

// Problem is an RFC 9457 problem document (application/problem+json), the
// error shape rempart answers with, returned by PostJSON for any answer that
// is not 2xx. An answer that was not a problem document becomes one with the
// status and its text.
type Problem struct {
	Type     string `json:"type,omitempty"`
	Title    string `json:"title,omitempty"`
	Status   int    `json:"status,omitempty"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
	// Field names the request field at fault, when there is one
	// (for example "Idempotency-Key").
	Field string `json:"field,omitempty"`
	// Extensions holds the other members of the document, undecoded
	// (for example "ticket" and "position" of a waiting room).
	Extensions map[string]json.RawMessage `json:"-"`
	// RetryAfter is the answer's Retry-After, zero when it had none.
	RetryAfter time.Duration `json:"-"`
}

// Slug is the last path segment of Type ("idempotency-key-reused"), empty
// when there is no type.
func (p *Problem) Slug() string {
	return p.Type[strings.LastIndexByte(p.Type, '/')+1:]
}

func (p *Problem) Error() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(p.Status))
	if s := p.Slug(); s != "" {
		b.WriteString(" " + s)
	} else if p.Title != "" {
		b.WriteString(" " + strings.ToLower(p.Title))
	}
	if p.Field != "" {
		b.WriteString(": " + p.Field)
	}
	if p.Detail != "" {
		b.WriteString(": " + p.Detail)
	}
	return b.String()
}

// isProblem reports whether h declares a problem document.
func isProblem(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && mt == problemMediaType
}

// parseProblem builds the Problem of a non-2xx answer from its status,
// headers and body, received at now.
func parseProblem(status int, h http.Header, body []byte, now time.Time) *Problem {
	p := &Problem{}
	// Decoded aside: a document that fails half-way must not leave the
	// members read before the failure (a type, say) on the problem.
	var doc Problem
	if isProblem(h) && json.Unmarshal(body, &doc) == nil {
		*p = doc
		var all map[string]json.RawMessage
		if json.Unmarshal(body, &all) == nil {
			for _, k := range []string{"type", "title", "status", "detail", "instance", "field"} {
				delete(all, k)
			}
			if len(all) > 0 {
				p.Extensions = all
			}
		}
	} else if d := bytes.TrimSpace(body); len(d) > 0 {
		p.Detail = string(d[:min(len(d), 200)])
	}
	if p.Status == 0 {
		p.Status = status
	}
	if p.Title == "" {
		p.Title = http.StatusText(status)
	}
	p.RetryAfter, _ = retryAfter(h, now)
	return p
}

// extension decodes the extension member k into v, reporting whether it was
// there and of v's type.
func (p *Problem) extension(k string, v any) bool {
	raw, ok := p.Extensions[k]
	return ok && json.Unmarshal(raw, v) == nil
}

// retryAfter reads Retry-After: delay-seconds or an HTTP-date (RFC 9110
// section 10.2.3), as a wait from now. A date in the past is a zero wait.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(min(secs, maxRetryAfterSeconds)) * time.Second, true
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// maxRetryAfterSeconds keeps a hostile Retry-After from overflowing a Duration.
const maxRetryAfterSeconds = 1 << 31
