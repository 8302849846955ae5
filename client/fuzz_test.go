package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
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

// FuzzRetryAfter reads Retry-After values. A wait is never negative nor
// past the cap; delay-seconds mean what they say; and a wait written as
// delay-seconds or as an HTTP-date reads back as itself (to the second).
func FuzzRetryAfter(f *testing.F) {
	for _, v := range []string{"0", "120", " 7 ", "-1", "1.5", "+3", "0x10", "99999999999999999999",
		"Mon, 22 Dec 2025 08:00:30 GMT", "Monday, 22-Dec-25 08:00:30 GMT", "Mon Dec 22 08:00:30 2025",
		"Mon, 22 Dec 2025 07:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT", ""} {
		f.Add(v, int64(30))
	}
	f.Add("", int64(-5))
	f.Add("", int64(1<<40))
	f.Fuzz(func(t *testing.T, v string, n int64) {
		d, ok := retryAfter(fuzzHeader("", v), fuzzNow)
		if d < 0 || !ok && d != 0 {
			t.Fatalf("%q: %v, %v", v, d, ok)
		}
		if secs, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			if want := time.Duration(min(secs, maxRetryAfterSeconds)) * time.Second; ok != (secs >= 0) || ok && d != want {
				t.Fatalf("%q: %v, %v, want %v", v, d, ok, want)
			}
		}
		if n >= 0 {
			d, ok := retryAfter(fuzzHeader("", strconv.FormatInt(n, 10)), fuzzNow)
			if want := time.Duration(min(n, maxRetryAfterSeconds)) * time.Second; !ok || d != want {
				t.Fatalf("Retry-After: %d reads as %v, %v", n, d, ok)
			}
		}
		wait := time.Duration(n%(400*24*3600)) * time.Second
		date := fuzzNow.Add(wait).Format(http.TimeFormat)
		if d, ok := retryAfter(fuzzHeader("", date), fuzzNow); !ok || d != max(wait, 0) {
			t.Fatalf("Retry-After: %s (in %v) reads as %v, %v", date, wait, d, ok)
		}
	})
}

// FuzzParseWaitingRoom parses 503 answers. Only a 503 with a ticket is a
// place in line; the ticket in the header wins over the body's; the poll
// interval is at least minPoll and the estimate within [0, a day].
func FuzzParseWaitingRoom(f *testing.F) {
	const pj = "application/problem+json"
	room := `{"type":"https://rempart.example/problems/waiting-room","title":"Waiting room","status":503,"detail":"you are number 12 in line","ticket":"AQVsb2dpbg","position":12,"estimated_wait_seconds":4.2,"poll_after_seconds":2}`
	for _, s := range []struct {
		status               int
		ticket, ct, ra, body string
	}{
		{503, "AQVsb2dpbg", pj, "2", room},
		{503, "", pj, "", room},
		{503, "other", pj, "", room},
		{502, "AQVsb2dpbg", pj, "2", room},
		{503, "", pj, "5", `{"type":"x/waiting-room","ticket":"t"}`},
		{503, "", pj, "", `{"type":"x/waiting-room","ticket":""}`},
		{503, "", pj, "", `{"type":"x/waiting-room","ticket":7}`},
		{503, "", pj, "", `{"type":"x/waiting-room-full","poll_after_seconds":3}`},
		{503, "", pj, "", `{"type":"x/waiting-room","ticket":"t","position":-1,"estimated_wait_seconds":-3,"poll_after_seconds":0}`},
		{503, "", pj, "", `{"type":"x/waiting-room","ticket":"t","estimated_wait_seconds":1e308,"poll_after_seconds":1e308}`},
		{503, "", pj, "Fri, 31 Dec 9999 23:59:59 GMT", `{"type":"x/waiting-room","ticket":"t","poll_after_seconds":"2"}`},
		{503, "t", "text/html", "", "<html>wait</html>"},
		{503, "", "", "", ""},
	} {
		f.Add(s.status, s.ticket, s.ct, s.ra, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, ticket, contentType, retry string, body []byte) {
		st := fuzzStatus(status)
		res := &http.Response{StatusCode: st, Header: fuzzHeader(contentType, retry)}
		if ticket != "" {
			res.Header.Set(TicketHeader, ticket)
		}
		wr, ok := parseWaitingRoom(res, body, fuzzNow)
		if !ok {
			if wr.ticket != "" && st != http.StatusServiceUnavailable {
				t.Fatalf("%d: %+v", st, wr)
			}
			return
		}
		if st != http.StatusServiceUnavailable || wr.ticket == "" ||
			res.Header.Get(TicketHeader) != "" && wr.ticket != res.Header.Get(TicketHeader) {
			t.Fatalf("%d %q %q: in line with %+v", st, res.Header.Get(TicketHeader), body, wr)
		}
		if wr.poll < minPoll || wr.eta < 0 || wr.eta > 24*time.Hour {
			t.Fatalf("%q %q: waits out of bounds: %+v", retry, body, wr)
		}
	})
}

// FuzzSolve solves challenges as a server (or anything pretending to be
// one) sends them. Only the documented format is worked on, never harder
// than the client's limit; a solution is the challenge, a dot and a
// counter, whose SHA-256 starts with the challenge's number of zero bits,
// and fits the server's 256 bytes.
func FuzzSolve(f *testing.F) {
	for _, c := range []string{"1.8.AAAAAAAAAAAAAAAAAAAAAA.GMYzZAA.x", "1.12.n.e.m", "1.13.n.e.m", "1.08.n.e.m",
		"1.0.n", "2.8.n", "1.8", "1..", "1.-1.x", "1.+8.x", "1.8." + strings.Repeat("a", 300), ""} {
		f.Add(c)
	}
	const maxBits = 12 // a few thousand hashes: fast enough to fuzz
	f.Fuzz(func(t *testing.T, challenge string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sol, err := solve(ctx, challenge, maxBits)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("%q: not solved in 10 s", challenge)
			}
			return
		}
		fields := strings.SplitN(challenge, ".", 3)
		bits, _ := strconv.Atoi(fields[1])
		counter, ok := strings.CutPrefix(sol, challenge+".")
		if _, err := strconv.ParseUint(counter, 10, 64); !ok || err != nil || fields[0] != "1" ||
			bits < 1 || bits > maxBits || strconv.Itoa(bits) != fields[1] || len(sol) > 256 {
			t.Fatalf("%q solved as %q", challenge, sol)
		}
		sum := sha256.Sum256([]byte(sol))
		if binary.BigEndian.Uint32(sum[:4])>>(32-bits) != 0 {
			t.Fatalf("%q: %q has fewer than %d zero bits", challenge, sol, bits)
		}
	})
}
