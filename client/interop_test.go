package client_test

// Tests of the SDK against rempart's own proof-of-work verifier and
// scrubbing layer (internal/scrub). The SDK cannot import them; its tests
// can.

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rempart/rempart/client"
	"github.com/rempart/rempart/internal/scrub"
	"github.com/rempart/rempart/internal/scrub/pow"
)

// scrubber is a fake scrubbing layer that issues real challenges of the
// internal/scrub/pow wire format and checks solutions with that package:
// a request without a clearance is challenged (429, Rempart-Challenge); a
// valid Rempart-Solution is exchanged for a clearance; a request with the
// clearance goes through.
type scrubber struct {
	bits int
	key  []byte

	mu        sync.Mutex
	issued    int
	verified  int
	rejected  []string
	cleared   int
	clearance string
}

func (s *scrubber) challenge() string {
	c := pow.Challenge{Bits: s.bits, Expires: time.Now().Add(2 * time.Minute).Unix(),
		Prefix: netip.MustParsePrefix("127.0.0.0/24")}
	c.Nonce[0] = byte(s.issued)
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(c.Payload()))
	copy(c.MAC[:], m.Sum(nil))
	s.issued++
	return c.String()
}

// verify is the server's check, done with the real pow package.
func (s *scrubber) verify(sol string) string {
	chs, _, err := pow.ParseSolution(sol)
	if err != nil {
		return "malformed solution"
	}
	c, err := pow.ParseChallenge(chs)
	if err != nil {
		return "malformed challenge"
	}
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(c.Payload()))
	if !hmac.Equal(m.Sum(nil), c.MAC[:]) {
		return "bad mac"
	}
	if time.Now().Unix() >= c.Expires {
		return "expired"
	}
	if !pow.Enough(sol, c.Bits) {
		return "not enough work"
	}
	return ""
}

func (s *scrubber) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clearance != "" && r.Header.Get("Rempart-Clearance") == s.clearance {
		s.cleared++
		w.WriteHeader(http.StatusOK)
		return
	}
	if sol := r.Header.Get("Rempart-Solution"); sol != "" {
		if why := s.verify(sol); why != "" {
			s.rejected = append(s.rejected, why)
		} else {
			s.verified++
			s.clearance = "c1.clear-" + strings.Repeat("x", s.verified)
			w.Header().Set("Rempart-Clearance", s.clearance)
			w.WriteHeader(http.StatusOK)
			return
		}
	}
	w.Header().Set("Rempart-Challenge", s.challenge())
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(http.StatusTooManyRequests)
	w.Write([]byte(`{"type":"https://rempart.dev/problems/challenge","title":"Too Many Requests","status":429}`))
}

func TestProofOfWork(t *testing.T) {
	tests := []struct {
		name         string
		bits, limit  int
		wantStatus   int
		wantSolved   int64
		wantVerified int
	}{
		{"solved and cleared", 12, 24, 200, 1, 1},
		{"one bit", 1, 24, 200, 1, 1},
		{"harder than the client's limit: handed back", 20, 16, 429, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &scrubber{bits: tt.bits, key: []byte("0123456789abcdef0123456789abcdef")}
			srv := serve(t, s)
			c := client.New(srv.URL, client.WithClock(newFakeClock()), client.WithMaxProofOfWork(tt.limit))
			for range 3 {
				res, err := post(t, c, context.Background(), srv.URL+"/login")
				if err != nil {
					t.Fatal(err)
				}
				if res.StatusCode != tt.wantStatus {
					t.Fatalf("status %d, want %d", res.StatusCode, tt.wantStatus)
				}
			}
			st := c.Stats()
			if len(s.rejected) != 0 {
				t.Fatalf("server rejected solutions: %v", s.rejected)
			}
			if st.ChallengesSolved != tt.wantSolved || s.verified != tt.wantVerified || st.Retries != 0 {
				t.Errorf("stats %+v, server verified %d: want %d solved and verified, no retries", st, s.verified, tt.wantSolved)
			}
			if tt.wantStatus == 200 && s.cleared != 2 {
				t.Errorf("%d calls went through on the clearance, want the 2 after the first", s.cleared)
			}
		})
	}
}

// TestProofOfWorkAgainstScrubber runs the SDK against the real scrubbing
// layer with its route forced into the attack state: the first call is
// challenged, solved and cleared; later calls go through on the clearance.
func TestProofOfWorkAgainstScrubber(t *testing.T) {
	s, err := scrub.New(scrub.Options{PoW: scrub.PoW{BaseBits: 10, MaxBits: 12}})
	if err != nil {
		t.Fatal(err)
	}
	s.SetMode("unrouted", scrub.ModeAttack)
	var served atomic.Int64
	srv := serve(t, s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.WriteHeader(http.StatusOK)
	})))
	c := client.New(srv.URL, client.WithClock(newFakeClock()))
	for i := range 3 {
		res, err := post(t, c, context.Background(), srv.URL+"/login")
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("call %d: %v, want 200 through the scrubber", i, err)
		}
	}
	st := c.Stats()
	if st.ChallengesSolved != 1 || st.Attempts != 4 || served.Load() != 3 || st.Retries != 0 {
		t.Errorf("stats %+v, %d served: want one challenge solved, 4 attempts for 3 calls, no retries", st, served.Load())
	}
}
