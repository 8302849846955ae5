package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/problem"
)

// seen is what the fake upstream received, sent back as JSON.
type seen struct {
	Method string
	Path   string
	Query  string
	Host   string
	Body   string
	Header http.Header
}

func echoUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-From-Upstream", "yes")
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Host, string(b), r.Header})
	}))
	t.Cleanup(up.Close)
	return up
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func front(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

func TestForward(t *testing.T) {
	up := echoUpstream(t)
	tests := []struct {
		name     string
		base     string
		path     string
		wantPath string
	}{
		{"root base", up.URL, "/v1/accounts/A-alice/balance?from=2024-01-01&limit=10", "/v1/accounts/A-alice/balance"},
		{"base with a path prefix", up.URL + "/bank/api", "/v1/accounts/A-alice/balance?from=2024-01-01&limit=10", "/bank/api/v1/accounts/A-alice/balance"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gw := front(t, New(mustURL(t, tt.base), 5*time.Second, nil))
			req, _ := http.NewRequest("POST", gw.URL+tt.path, strings.NewReader(`{"amount":3000}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Idempotency-Key", "k-1")
			req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
			req.Header.Set("X-Forwarded-For", "6.6.6.6") // forged by the caller
			res, err := gw.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			if res.StatusCode != http.StatusCreated || res.Header.Get("X-From-Upstream") != "yes" {
				t.Fatalf("response %d %v, want the upstream's 201 and headers", res.StatusCode, res.Header)
			}
			var s seen
			if err := json.NewDecoder(res.Body).Decode(&s); err != nil {
				t.Fatal(err)
			}
			checks := []struct{ what, got, want string }{
				{"method", s.Method, "POST"},
				{"path", s.Path, tt.wantPath},
				{"query", s.Query, "from=2024-01-01&limit=10"},
				{"host", s.Host, mustURL(t, up.URL).Host},
				{"body", s.Body, `{"amount":3000}`},
				{"Content-Type", s.Header.Get("Content-Type"), "application/json"},
				{"Idempotency-Key", s.Header.Get("Idempotency-Key"), "k-1"},
				{"Traceparent", s.Header.Get("Traceparent"), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
				// The gateway is the edge: a caller's own X-Forwarded-For is not trusted.
				{"X-Forwarded-For", s.Header.Get("X-Forwarded-For"), "127.0.0.1"},
				{"X-Forwarded-Host", s.Header.Get("X-Forwarded-Host"), mustURL(t, gw.URL).Host},
				{"X-Forwarded-Proto", s.Header.Get("X-Forwarded-Proto"), "http"},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("upstream got %s %q, want %q", c.what, c.got, c.want)
				}
			}
		})
	}
}

func getProblem(t *testing.T, client *http.Client, req *http.Request) (int, problem.Details) {
	t.Helper()
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != problem.ContentType {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("%d with Content-Type %q, want a problem: %s", res.StatusCode, ct, b)
	}
	var d problem.Details
	if err := json.NewDecoder(res.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, d
}

func TestUpstreamDown(t *testing.T) {
	// A port that was just free: nothing listens there any more.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	gw := front(t, New(mustURL(t, "http://"+addr), 5*time.Second, nil))
	req, _ := http.NewRequest("GET", gw.URL+"/v1/parcels/X1", nil)
	status, d := getProblem(t, gw.Client(), req)
	if status != http.StatusBadGateway || d.Type != problem.TypeBase+"upstream-unavailable" {
		t.Errorf("got %d %+v, want 502 upstream-unavailable", status, d)
	}
}

func TestUpstreamTimeout(t *testing.T) {
	release := make(chan struct{})
	tests := []struct {
		name    string
		cut     bool // headers got through, so only the body can be cut
		handler http.HandlerFunc
	}{
		{"no response headers", false, func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}},
		{"headers flushed, then nothing", true, func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}},
	}
	t.Cleanup(func() { close(release) })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := httptest.NewServer(tt.handler)
			t.Cleanup(up.Close)
			gw := front(t, New(mustURL(t, up.URL), 20*time.Millisecond, nil))
			req, _ := http.NewRequest("GET", gw.URL+"/v1/accounts/A1/balance", nil)
			if tt.cut {
				// The client must not see a cut response as complete.
				res, err := gw.Client().Do(req)
				if err == nil {
					_, err = io.ReadAll(res.Body)
					res.Body.Close()
				}
				if err == nil {
					t.Error("a response cut by the time-out looked complete")
				}
				return
			}
			status, d := getProblem(t, gw.Client(), req)
			if status != http.StatusGatewayTimeout || d.Type != problem.TypeBase+"upstream-timeout" {
				t.Errorf("got %d %+v, want 504 upstream-timeout", status, d)
			}
		})
	}
}

// TestBodyTooLarge forwards a body sent without a length through a
// MaxBytesReader, as the gateway installs one: the limit is found out while
// forwarding and must be a 413, not a 502 blaming the upstream.
func TestBodyTooLarge(t *testing.T) {
	up := echoUpstream(t)
	p := New(mustURL(t, up.URL), 5*time.Second, nil)
	gw := front(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 100)
		p.ServeHTTP(w, r)
	}))
	req, _ := http.NewRequest("POST", gw.URL+"/v1/transfers/instant",
		io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("x"), 10_000))))
	status, d := getProblem(t, gw.Client(), req)
	if status != http.StatusRequestEntityTooLarge || d.Type != problem.TypeBase+"body-too-large" {
		t.Errorf("got %d %+v, want 413 body-too-large", status, d)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestWriteUpstreamError(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		slug   string
	}{
		{"deadline", fmt.Errorf("round trip: %w", context.DeadlineExceeded), 504, "upstream-timeout"},
		{"net timeout", &net.OpError{Op: "dial", Err: timeoutErr{}}, 504, "upstream-timeout"},
		{"os deadline", os.ErrDeadlineExceeded, 504, "upstream-timeout"},
		{"client went away", context.Canceled, 499, "client-closed"},
		{"body too large", &http.MaxBytesError{Limit: 10}, 413, "body-too-large"},
		{"refused", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, 502, "upstream-unavailable"},
		{"anything else", io.ErrUnexpectedEOF, 502, "upstream-unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			writeUpstreamError(rec, tt.err)
			var d problem.Details
			if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
				t.Fatal(err)
			}
			if rec.Code != tt.status || d.Status != tt.status || d.Type != problem.TypeBase+tt.slug {
				t.Errorf("got %d %+v, want %d %s", rec.Code, d, tt.status, tt.slug)
			}
		})
	}
}

func TestWithTimeout(t *testing.T) {
	tests := []struct {
		name         string
		timeout      time.Duration
		wantDeadline bool
	}{
		{"bounded", time.Hour, true},
		{"zero means unbounded", 0, false},
		{"negative means unbounded", -time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var has bool
			h := WithTimeout(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, has = r.Context().Deadline()
			}), tt.timeout)
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
			if has != tt.wantDeadline {
				t.Errorf("deadline set = %v, want %v", has, tt.wantDeadline)
			}
		})
	}
}

func TestBufferPool(t *testing.T) {
	p := newBufferPool()
	b := p.Get()
	if len(b) != copyBufferSize {
		t.Fatalf("len %d, want %d", len(b), copyBufferSize)
	}
	p.Put(b)
	p.Put(make([]byte, 10)) // too small: dropped, not a panic
	if n := testing.AllocsPerRun(100, func() { p.Put(p.Get()) }); n != 0 {
		t.Errorf("Get+Put: %v allocations, want 0", n)
	}
}

// latencyWriter records what the proxy reports of the upstream's latency.
type latencyWriter struct {
	http.ResponseWriter
	got []time.Duration
}

func (w *latencyWriter) RecordUpstreamLatency(d time.Duration) { w.got = append(w.got, d) }

var _ LatencyRecorder = (*latencyWriter)(nil)

// wrapper hides a writer behind Unwrap, as the retrier's attemptWriter does.
type wrapper struct{ http.ResponseWriter }

func (w wrapper) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// TestUpstreamLatency: the proxy reports, to a LatencyRecorder found through
// Unwrap, the time the upstream took to its first byte, not the time spent
// streaming the rest of the answer, and nothing when the upstream did not
// answer.
func TestUpstreamLatency(t *testing.T) {
	const think, stream = 40 * time.Millisecond, 150 * time.Millisecond
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(think)
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		time.Sleep(stream) // the body's tail: the client's pace, not the upstream's latency
		io.WriteString(w, "done")
	}))
	t.Cleanup(up.Close)

	h := New(mustURL(t, up.URL), 5*time.Second, nil)
	rec := &latencyWriter{ResponseWriter: httptest.NewRecorder()}
	start := time.Now()
	h.ServeHTTP(wrapper{rec}, httptest.NewRequest(http.MethodGet, "/", nil))
	whole := time.Since(start)
	if len(rec.got) != 1 {
		t.Fatalf("recorded %d latencies, want 1", len(rec.got))
	}
	if d := rec.got[0]; d < think || d >= think+stream {
		t.Errorf("upstream latency %v, want at least %v and below %v (the whole call took %v)", d, think, think+stream, whole)
	}

	// An upstream that cannot be reached reports no latency.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	rec = &latencyWriter{ResponseWriter: httptest.NewRecorder()}
	New(mustURL(t, dead), time.Second, nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if len(rec.got) != 0 {
		t.Errorf("recorded %v for an upstream that never answered", rec.got)
	}
}

// TestSpanSettled: a span is lent again only once its one attempt's hooks
// have all fired; an answer that came before the request was noted written,
// or a second attempt, keeps it out of the pool (a late hook would time
// another request).
func TestSpanSettled(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		conns, writes, firsts int
		want                  bool
	}{
		{"one attempt, answered", 1, 1, 1, true},
		{"answered before the write was noted", 1, 0, 1, false},
		{"no answer", 1, 1, 0, false},
		{"retried on a second connection", 2, 2, 1, false},
		{"no connection", 0, 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSpan()
			for range tc.conns {
				s.hooks.GotConn(httptrace.GotConnInfo{})
			}
			for range tc.writes {
				s.hooks.WroteRequest(httptrace.WroteRequestInfo{})
			}
			for range tc.firsts {
				s.hooks.GotFirstResponseByte()
			}
			if got := s.settled(); got != tc.want {
				t.Fatalf("settled = %v, want %v", got, tc.want)
			}
			s.release()
			if tc.want && (s.wrote.Load() != 0 || s.conns.Load() != 0) {
				t.Fatal("a released span keeps its last request's timing")
			}
		})
	}
}
