package client

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The SDK reads answers from a server it cannot trust to be well-formed (a
// proxy in between, a compromised upstream, a bug): these targets feed its
// parsers what such a server could send.

var fuzzNow = time.Date(2025, 12, 22, 8, 0, 0, 0, time.UTC)

func fuzzHeader(contentType, retry string) http.Header {
	h := http.Header{}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	if retry != "" {
		h.Set("Retry-After", retry)
	}
	return h
}

// fuzzStatus maps any int onto an error status, what parseProblem is given.
func fuzzStatus(n int) int {
	if n < 0 {
		n = -(n + 1)
	}
	return 400 + n%200
}

// encodeProblem writes p back as a problem document: its members, then
// its extensions.
func encodeProblem(p *Problem) []byte {
	m := map[string]any{}
	for k, v := range p.Extensions {
		m[k] = v
	}
	for k, v := range map[string]string{"type": p.Type, "title": p.Title, "detail": p.Detail,
		"instance": p.Instance, "field": p.Field} {
		if v != "" {
			m[k] = v
		}
	}
	if p.Status != 0 {
		m["status"] = p.Status
	}
	b, _ := json.Marshal(m)
	return b
}

// FuzzParseProblem parses error answers. It always yields a problem with a
// status, a title when the status has a name, and a wait that is not
// negative; an answer that is not
// a problem document (or does not decode as one) yields its status and at
// most 200 bytes of its text, nothing else; the standard members never show
// up again among the extensions; and a problem written back as a document
// parses to the same problem.
func FuzzParseProblem(f *testing.F) {
	const pj = "application/problem+json"
	for _, s := range []struct {
		status int
		ct, ra string
		body   string
	}{
		{409, pj, "", `{"type":"https://rempart.example/problems/idempotency-key-reused","title":"Conflict","status":409,"detail":"the key was used for another request","field":"Idempotency-Key"}`},
		{503, pj + "; charset=utf-8", "3", `{"type":"https://rempart.example/problems/waiting-room","title":"Waiting room","status":503,"ticket":"AQVsb2dpbg","position":12,"estimated_wait_seconds":4.2,"poll_after_seconds":2}`},
		{429, pj, "Mon, 22 Dec 2025 08:00:30 GMT", `{"type":"about:blank","status":429}`},
		{500, "text/html", "", "<html><body>Internal Server Error</body></html>"},
		{502, "", "", strings.Repeat("x", 300)},
		{503, pj, "-1", `{"type":"x/waiting-room","status":"503"}`},
		{400, pj, "99999999999999999999", `{"type":"a","TYPE":"b","Status":0,"title":null}`},
		{400, pj, "", `{"type":"x","status":"bad","ticket":"t"}`},
		{400, pj, "", `[1,2]`},
		{400, pj, "", `{"detail":"\ud800","extra":{"a":[1,{"b":null}]}}`},
		{400, pj, "", `{}{}`},
		{400, "application/problem+json;;", "", `{}`},
	} {
		f.Add(s.status, s.ct, s.ra, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, contentType, retry string, body []byte) {
		st := fuzzStatus(status)
		h := fuzzHeader(contentType, retry)
		p := parseProblem(st, h, body, fuzzNow)
		if p.Status == 0 || p.Title == "" && http.StatusText(st) != "" || p.RetryAfter < 0 || strings.Contains(p.Slug(), "/") ||
			!strings.HasPrefix(p.Error(), strconv.Itoa(p.Status)) {
			t.Fatalf("%d %q %q: %+v (%s)", st, contentType, body, p, p.Error())
		}
		var doc map[string]json.RawMessage
		if !isProblem(h) || json.Unmarshal(body, &Problem{}) != nil || json.Unmarshal(body, &doc) != nil {
			want := &Problem{Status: st, Title: http.StatusText(st), RetryAfter: p.RetryAfter}
			if d := bytes.TrimSpace(body); len(d) > 0 {
				want.Detail = string(d[:min(len(d), 200)])
			}
			if p.Type != "" || p.Instance != "" || p.Field != "" || p.Extensions != nil || p.Status != want.Status || p.Title != want.Title || p.Detail != want.Detail || p.RetryAfter != want.RetryAfter {
				t.Fatalf("%q (not a problem document) parsed as %+v, want %+v", body, p, want)
			}
			return
		}
		for _, k := range []string{"type", "title", "status", "detail", "instance", "field"} {
			if _, ok := p.Extensions[k]; ok {
				t.Fatalf("%q: member %q kept as an extension", body, k)
			}
		}
		again := parseProblem(st, h, encodeProblem(p), fuzzNow)
		if again.Type != p.Type || again.Title != p.Title || again.Status != p.Status || again.Detail != p.Detail ||
			again.Instance != p.Instance || again.Field != p.Field || len(again.Extensions) != len(p.Extensions) {
			t.Fatalf("%q parsed as %+v, written back as %s parsed as %+v", body, p, encodeProblem(p), again)
		}
		for k, v := range p.Extensions {
			var a, b any
			if json.Unmarshal(v, &a) != nil || json.Unmarshal(again.Extensions[k], &b) != nil || !jsonEqual(a, b) {
				t.Fatalf("%q: extension %q %s came back as %s", body, k, v, again.Extensions[k])
			}
		}
	})
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
