package scrub

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/request"
	"github.com/rempart/rempart/internal/scrub/pow"
	"github.com/rempart/rempart/internal/scrub/ratelimit"
)

// discardWriter is the cheapest ResponseWriter, so benchmarks measure the
// scrubber rather than the recorder.
type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }

func benchRequest(remote string, hdr map[string]string) (*http.Request, *request.Info) {
	req := httptest.NewRequest(http.MethodPost, "/login", nil)
	req.RemoteAddr = remote
	req.Header.Set("User-Agent", "python-requests/2.32")
	req.Header.Set("Accept", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	info := &request.Info{Route: "login"}
	return req.WithContext(request.With(req.Context(), info)), info
}

// BenchmarkReject measures what refusing a bot costs the gateway: run it
// with -cpu 1 and read 1e9 / (ns/op) as rejected requests per core-second.
func BenchmarkReject(b *testing.B) {
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { b.Fatal("rejected request reached the upstream") })
	cases := []struct {
		name   string
		mutate func(*Options)
		setup  func(*Scrubber, http.Handler, *http.Request)
		want   int
	}{
		{"limited", nil, func(s *Scrubber, h http.Handler, r *http.Request) {
			// Spend the address's challenge budget first.
			for range 20 {
				h.ServeHTTP(&discardWriter{h: http.Header{}}, r)
			}
		}, http.StatusTooManyRequests},
		{"challenged", func(o *Options) {
			o.Limits.Address = ratelimit.Limit{Rate: 1e9, Burst: 1e9}
		}, nil, http.StatusTooManyRequests},
		{"blocked", nil, func(s *Scrubber, _ http.Handler, _ *http.Request) {
			s.Block(netip.MustParsePrefix("198.51.100.0/24"), time.Hour, "bench")
		}, http.StatusForbidden},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			s, _ := newTestScrubber(b, tc.mutate)
			s.SetMode("login", ModeAttack)
			h := s.Middleware(ok)
			req, _ := benchRequest("198.51.100.7:4711", nil)
			if tc.setup != nil {
				tc.setup(s, h, req)
			}
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				h.ServeHTTP(w, req)
			}
			if w.code != tc.want {
				b.Fatalf("status %d, want %d", w.code, tc.want)
			}
		})
	}
}

// BenchmarkPassCleared is the cost the scrubber adds to a customer holding a
// clearance, under attack.
func BenchmarkPassCleared(b *testing.B) {
	s, clk := newTestScrubber(b, func(o *Options) {
		o.KnownAddress = ratelimit.Limit{Rate: 1e9, Burst: 1e9} // the fake clock stands still
	})
	s.SetMode("login", ModeAttack)
	p := netip.MustParsePrefix("198.51.100.0/24")
	tok := s.mintClearance(p, agentFingerprint(http.Header{"User-Agent": {"python-requests/2.32"}}), clk.Now().Add(time.Hour))
	h := s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	req, _ := benchRequest("198.51.100.7:4711", map[string]string{HeaderClearance: tok})
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
	if w.code != http.StatusOK {
		b.Fatalf("status %d", w.code)
	}
}

// BenchmarkClearanceCheck is one clearance verification: a parse, one
// HMAC-SHA-256 and a constant-time compare.
func BenchmarkClearanceCheck(b *testing.B) {
	s, clk := newTestScrubber(b, nil)
	p := netip.MustParsePrefix("198.51.100.0/24")
	tok := s.mintClearance(p, 42, clk.Now().Add(time.Hour))
	now := clk.Now()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.verifyClearance(tok, p, 42, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPoWVerify is one solution verification: parse, MAC, one SHA-256
// of the work, and the replay check (which refuses every repeat here after
// the first, having done all the rest).
func BenchmarkPoWVerify(b *testing.B) {
	s, clk := newTestScrubber(b, nil)
	p := netip.MustParsePrefix("198.51.100.0/24")
	sol, err := pow.Solve(context.Background(), s.issueChallenge(p, 16, clk.Now()).String())
	if err != nil {
		b.Fatal(err)
	}
	now := clk.Now()
	if _, err := s.verifySolution(sol, p, now); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.verifySolution(sol, p, now); err != errReplayed {
			b.Fatal(err)
		}
	}
}
