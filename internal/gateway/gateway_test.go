package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/rempart/rempart/internal/problem"
	"github.com/rempart/rempart/internal/request"
	"github.com/rempart/rempart/internal/telemetry"
	"github.com/rempart/rempart/internal/tier"
)

// echo is a fake upstream: it answers 200 and reports, in response headers,
// who it is and what it received, so tests read it from the client side.
type echo string

func (e echo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Upstream", string(e))
	h.Set("X-Got-Path", r.URL.Path)
	h.Set("X-Got-Traceparent", r.Header.Get("Traceparent"))
	h.Set("X-Got-Tracestate", r.Header.Get("Tracestate"))
	h.Set("X-Got-Request-Id", r.Header.Get("X-Request-Id"))
	if info := request.From(r.Context()); info != nil {
		h.Set("X-Info-Route", info.Route)
		h.Set("X-Info-Tier", info.Tier.String())
		h.Set("X-Info-Trace", info.Trace.String())
		h.Set("X-Info-Request-Id", info.ID)
	}
	if r.Method == http.MethodPost {
		if _, err := io.ReadAll(r.Body); err != nil {
			var mbe *http.MaxBytesError
			h.Set("X-Body-Error", err.Error())
			if errors.As(err, &mbe) {
				problem.Error(w, http.StatusRequestEntityTooLarge, "body-too-large", err.Error())
				return
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"ok":true}`+"\n")
}

// syncBuffer is a log sink tests can read while servers write to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type fixture struct {
	srv     *httptest.Server
	metrics *telemetry.Metrics
	logs    *syncBuffer
}

// start serves a gateway over the three routes below, plus any extra ones,
// on a real loopback listener.
func start(t *testing.T, maxBody int64, extra ...Route) *fixture {
	t.Helper()
	routes := append([]Route{
		{Name: "card-authorize", Pattern: "POST /v1/cards/authorize", Tier: tier.Critical, Upstream: echo("cards")},
		{Name: "balance", Pattern: "GET /v1/accounts/{account}/balance", Tier: tier.Normal, Upstream: echo("accounts")},
		{Name: "documents", Pattern: "GET /v1/customers/{customer}/documents", Tier: tier.Sheddable, Upstream: echo("vault")},
	}, extra...)
	f := &fixture{metrics: telemetry.NewMetrics(), logs: &syncBuffer{}}
	log := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	gw, err := New(routes, Options{Logger: log, Metrics: f.metrics, MaxBodyBytes: maxBody})
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(gw)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) do(t *testing.T, method, path string, body io.Reader, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return res, b
}

func decodeProblem(t *testing.T, res *http.Response, body []byte) problem.Details {
	t.Helper()
	if ct := res.Header.Get("Content-Type"); ct != problem.ContentType {
		t.Fatalf("Content-Type %q, want %q; body %s", ct, problem.ContentType, body)
	}
	var d problem.Details
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatalf("bad problem document %s: %v", body, err)
	}
	if d.Status != res.StatusCode {
		t.Errorf("problem status %d, response status %d", d.Status, res.StatusCode)
	}
	return d
}

func TestRouting(t *testing.T) {
	f := start(t, 0)
	tests := []struct {
		method, path string
		status       int
		upstream     string
		route, tier  string
	}{
		{"POST", "/v1/cards/authorize", 200, "cards", "card-authorize", "critical"},
		{"GET", "/v1/accounts/A-alice/balance", 200, "accounts", "balance", "normal"},
		{"HEAD", "/v1/accounts/A-alice/balance", 200, "accounts", "balance", "normal"},
		{"GET", "/v1/customers/C1/documents", 200, "vault", "documents", "sheddable"},
		{"GET", "/v1/cards/authorize", 404, "", "", ""},
		{"POST", "/v1/accounts/A-alice/balance", 404, "", "", ""},
		{"GET", "/v1/accounts/A-alice/balance/extra", 404, "", "", ""},
		{"GET", "/", 404, "", "", ""},
		{"DELETE", "/nowhere", 404, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			res, body := f.do(t, tt.method, tt.path, strings.NewReader(""), nil)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d; body %s", res.StatusCode, tt.status, body)
			}
			if got := res.Header.Get("X-Upstream"); got != tt.upstream {
				t.Errorf("served by %q, want %q", got, tt.upstream)
			}
			if tt.status == 404 {
				if tt.method == "HEAD" {
					return
				}
				d := decodeProblem(t, res, body)
				if d.Type != problem.TypeBase+"no-route" || !strings.Contains(d.Detail, tt.method+" "+tt.path) {
					t.Errorf("problem %+v", d)
				}
				return
			}
			if got := res.Header.Get("X-Info-Route"); got != tt.route {
				t.Errorf("Info.Route %q, want %q", got, tt.route)
			}
			if got := res.Header.Get("X-Info-Tier"); got != tt.tier {
				t.Errorf("Info.Tier %q, want %q", got, tt.tier)
			}
			if got := res.Header.Get("X-Got-Path"); got != tt.path {
				t.Errorf("upstream saw path %q, want %q", got, tt.path)
			}
		})
	}
}

func TestRequestID(t *testing.T) {
	f := start(t, 0)
	tests := []struct {
		name, sent string
		kept       bool
	}{
		{"absent", "", false},
		{"valid is echoed", "req-42:eu.1_a", true},
		{"invalid characters", "not/valid", false},
		{"too long", strings.Repeat("a", 129), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.sent != "" {
				hdr["X-Request-Id"] = tt.sent
			}
			res, body := f.do(t, "GET", "/v1/accounts/A1/balance", nil, hdr)
			if res.StatusCode != 200 {
				t.Fatalf("status %d: %s", res.StatusCode, body)
			}
			id := res.Header.Get("X-Request-Id")
			if tt.kept && id != tt.sent {
				t.Errorf("response id %q, want the caller's %q", id, tt.sent)
			}
			if !tt.kept && (id == tt.sent || len(id) != 32 || !telemetry.ValidRequestID(id)) {
				t.Errorf("response id %q, want a fresh 32-character id", id)
			}
			if got := res.Header.Get("X-Got-Request-Id"); got != id {
				t.Errorf("upstream got id %q, response says %q", got, id)
			}
			if got := res.Header.Get("X-Info-Request-Id"); got != id {
				t.Errorf("Info.RequestID %q, response says %q", got, id)
			}
		})
	}
	t.Run("unmatched requests get one too", func(t *testing.T) {
		res, _ := f.do(t, "GET", "/nope", nil, map[string]string{"X-Request-Id": "mine"})
		if got := res.Header.Get("X-Request-Id"); got != "mine" {
			t.Errorf("id %q, want mine", got)
		}
	})
}

func TestTraceparent(t *testing.T) {
	f := start(t, 0)
	const (
		callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		callerSpan  = "00f067aa0ba902b7"
		caller      = "00-" + callerTrace + "-" + callerSpan + "-01"
	)
	tests := []struct {
		name, traceparent, tracestate string
		keepsTrace                    bool
		wantState                     string
	}{
		{"valid parent is continued", caller, "vendor=1", true, "vendor=1"},
		{"unsampled parent keeps its flags", "00-" + callerTrace + "-" + callerSpan + "-00", "", true, ""},
		{"absent starts a trace", "", "", false, ""},
		{"uppercase is refused", strings.ToUpper(caller), "vendor=1", false, ""},
		{"all-zero trace id is refused", "00-00000000000000000000000000000000-" + callerSpan + "-01", "", false, ""},
		{"garbage is refused", "hello", "vendor=1", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			if tt.traceparent != "" {
				hdr["Traceparent"] = tt.traceparent
			}
			if tt.tracestate != "" {
				hdr["Tracestate"] = tt.tracestate
			}
			res, body := f.do(t, "GET", "/v1/accounts/A1/balance", nil, hdr)
			if res.StatusCode != 200 {
				t.Fatalf("status %d: %s", res.StatusCode, body)
			}
			got := res.Header.Get("X-Got-Traceparent")
			tc, ok := telemetry.ParseTraceparent(got)
			if !ok || !strings.HasPrefix(got, "00-") {
				t.Fatalf("upstream got traceparent %q, want a valid version-00 one", got)
			}
			if info := res.Header.Get("X-Info-Trace"); info != got {
				t.Errorf("Info.Trace %q, upstream header %q", info, got)
			}
			span := got[36:52]
			if span == callerSpan {
				t.Errorf("upstream got the caller's span id %s; the gateway's hop needs its own", span)
			}
			if tt.keepsTrace {
				if tc.TraceIDString() != callerTrace {
					t.Errorf("trace id %s, want the caller's %s", tc.TraceIDString(), callerTrace)
				}
				if got[53:] != tt.traceparent[53:] {
					t.Errorf("flags %s, want the caller's %s", got[53:], tt.traceparent[53:])
				}
			} else if tc.TraceIDString() == callerTrace {
				t.Errorf("trace id %s continued from a refused traceparent", callerTrace)
			}
			if st := res.Header.Get("X-Got-Tracestate"); st != tt.wantState {
				t.Errorf("upstream got tracestate %q, want %q", st, tt.wantState)
			}
		})
	}
}

func TestBodyLimit(t *testing.T) {
	const limit = 1024
	f := start(t, limit)
	tests := []struct {
		name     string
		size     int
		chunked  bool
		status   int
		upstream string // who answered
	}{
		{"at the limit", limit, false, 200, "cards"},
		{"over the limit with a length is refused before the upstream", limit + 1, false, 413, ""},
		{"over the limit chunked is cut while the upstream reads", 4 * limit, true, 413, "cards"},
		{"under the limit chunked", limit / 2, true, 200, "cards"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(bytes.Repeat([]byte("x"), tt.size))
			if tt.chunked {
				body = io.MultiReader(body) // hides the length: sent chunked
			}
			res, b := f.do(t, "POST", "/v1/cards/authorize", body, nil)
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tt.status, b)
			}
			if got := res.Header.Get("X-Upstream"); got != tt.upstream {
				t.Errorf("answered by upstream %q, want %q", got, tt.upstream)
			}
			if tt.status == 413 {
				d := decodeProblem(t, res, b)
				if d.Type != problem.TypeBase+"body-too-large" {
					t.Errorf("problem type %q", d.Type)
				}
			}
		})
	}
}

// gather returns the series of the named metric family.
func gather(t *testing.T, m *telemetry.Metrics, name string) []*dto.Metric {
	t.Helper()
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()
		}
	}
	return nil
}

// find returns the series whose labels are exactly want, or nil.
func find(series []*dto.Metric, want map[string]string) *dto.Metric {
	for _, s := range series {
		if len(s.GetLabel()) != len(want) {
			continue
		}
		match := true
		for _, lp := range s.GetLabel() {
			if want[lp.GetName()] != lp.GetValue() {
				match = false
			}
		}
		if match {
			return s
		}
	}
	return nil
}

func TestMetrics(t *testing.T) {
	f := start(t, 0)
	f.do(t, "POST", "/v1/cards/authorize", strings.NewReader("{}"), nil)
	f.do(t, "POST", "/v1/cards/authorize", strings.NewReader("{}"), nil)
	f.do(t, "GET", "/v1/accounts/A1/balance", nil, nil)
	f.do(t, "GET", "/nope", nil, nil)

	counts := []struct {
		route, tier, code string
		want              float64
	}{
		{"card-authorize", "critical", "200", 2},
		{"balance", "normal", "200", 1},
		{"unmatched", "sheddable", "404", 1},
	}
	requests := gather(t, f.metrics, "rempart_requests_total")
	for _, c := range counts {
		t.Run("requests "+c.route, func(t *testing.T) {
			s := find(requests, map[string]string{"route": c.route, "tier": c.tier, "code": c.code})
			if s == nil {
				t.Fatalf("no rempart_requests_total{route=%q,tier=%q,code=%q}", c.route, c.tier, c.code)
			}
			if got := s.GetCounter().GetValue(); got != c.want {
				t.Errorf("count %v, want %v", got, c.want)
			}
		})
	}

	durations := gather(t, f.metrics, "rempart_request_duration_seconds")
	histograms := []struct {
		route, tier string
		want        uint64
	}{
		{"card-authorize", "critical", 2},
		{"balance", "normal", 1},
		{"documents", "sheddable", 0}, // pre-created, so dashboards show it from the start
		{"unmatched", "sheddable", 1},
	}
	for _, h := range histograms {
		t.Run("duration "+h.route, func(t *testing.T) {
			s := find(durations, map[string]string{"route": h.route, "tier": h.tier})
			if s == nil {
				t.Fatalf("no rempart_request_duration_seconds{route=%q,tier=%q}", h.route, h.tier)
			}
			if got := s.GetHistogram().GetSampleCount(); got != h.want {
				t.Errorf("%d observations, want %d", got, h.want)
			}
		})
	}

	t.Run("nothing left in flight", func(t *testing.T) {
		for _, s := range gather(t, f.metrics, "rempart_requests_in_flight") {
			if v := s.GetGauge().GetValue(); v != 0 {
				t.Errorf("in flight %v: %v", s.GetLabel(), v)
			}
		}
	})
}

func TestPanickingUpstream(t *testing.T) {
	f := start(t, 0,
		Route{Name: "boom", Pattern: "GET /boom", Tier: tier.Normal, Upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip") // must not leak onto the problem
			panic("boom")
		})},
		Route{Name: "half", Pattern: "GET /half", Tier: tier.Normal, Upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			panic("after the headers")
		})},
		Route{Name: "abort", Pattern: "GET /abort", Tier: tier.Normal, Upstream: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			panic(http.ErrAbortHandler)
		})},
	)

	t.Run("before writing: 500 problem", func(t *testing.T) {
		res, body := f.do(t, "GET", "/boom", nil, map[string]string{"X-Request-Id": "panic-1"})
		if res.StatusCode != 500 {
			t.Fatalf("status %d: %s", res.StatusCode, body)
		}
		d := decodeProblem(t, res, body)
		if d.Type != problem.TypeBase+"internal" {
			t.Errorf("problem type %q", d.Type)
		}
		if res.Header.Get("Content-Encoding") != "" || res.Header.Get("X-Request-Id") != "panic-1" {
			t.Errorf("headers after a panic: %v", res.Header)
		}
		if logs := f.logs.String(); !strings.Contains(logs, `"msg":"upstream panic","panic":"boom"`) {
			t.Errorf("the panic is not logged:\n%s", logs)
		}
	})

	for _, path := range []string{"/half", "/abort"} {
		t.Run(path+": the client sees a broken response", func(t *testing.T) {
			res, err := f.srv.Client().Get(f.srv.URL + path)
			if err == nil {
				_, err = io.ReadAll(res.Body)
				res.Body.Close()
			}
			if err == nil {
				t.Fatal("the response looked complete")
			}
		})
	}

	t.Run("the server keeps serving", func(t *testing.T) {
		res, body := f.do(t, "GET", "/v1/accounts/A1/balance", nil, nil)
		if res.StatusCode != 200 {
			t.Fatalf("status %d: %s", res.StatusCode, body)
		}
	})

	t.Run("every one is counted", func(t *testing.T) {
		requests := gather(t, f.metrics, "rempart_requests_total")
		for _, want := range []map[string]string{
			{"route": "boom", "tier": "normal", "code": "500"},
			{"route": "half", "tier": "normal", "code": "200"},
			{"route": "abort", "tier": "normal", "code": "200"},
		} {
			if s := find(requests, want); s == nil || s.GetCounter().GetValue() != 1 {
				t.Errorf("rempart_requests_total%v = %v, want 1", want, s.GetCounter().GetValue())
			}
		}
	})
}

func TestNew(t *testing.T) {
	ok := echo("x")
	tests := []struct {
		name    string
		routes  []Route
		wantErr string
	}{
		{"no routes", nil, ""},
		{"catch-all route of its own", []Route{{Name: "all", Pattern: "/", Upstream: ok}}, ""},
		{"wildcard catch-all", []Route{{Name: "all", Pattern: "/{path...}", Upstream: ok}}, ""},
		{"missing upstream", []Route{{Name: "r", Pattern: "GET /r"}}, "route r: no upstream"},
		{"bad pattern", []Route{{Name: "r", Pattern: "GET /r/{x", Upstream: ok}}, "route r: pattern"},
		{"conflicting patterns", []Route{
			{Name: "a", Pattern: "GET /a/{x}", Upstream: ok},
			{Name: "b", Pattern: "GET /a/{y}", Upstream: ok},
		}, "route b: pattern"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := New(tt.routes, Options{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			g.ServeHTTP(rec, httptest.NewRequest("GET", "/anything", nil))
			want := 404
			if len(tt.routes) > 0 {
				want = 200 // the route's own catch-all answers
			}
			if rec.Code != want {
				t.Errorf("GET /anything: %d, want %d", rec.Code, want)
			}
		})
	}
}
