package gateway

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rempart/rempart/internal/request"
	"github.com/rempart/rempart/internal/tier"
)

type fakeVerifier map[string]string // token -> subject

func (f fakeVerifier) VerifyRequest(r *http.Request) (string, error) {
	if sub, ok := f[r.Header.Get("Authorization")]; ok {
		return sub, nil
	}
	return "", errors.New("invalid token")
}

func TestAuthenticate(t *testing.T) {
	v := fakeVerifier{"Bearer good": "alice"}
	cases := []struct {
		name     string
		mode     AuthMode
		route    tier.Tier
		auth     string
		status   int
		session  bool
		priority tier.Tier
	}{
		{"none ignores tokens", AuthNone, tier.Normal, "Bearer bad", 200, false, tier.Normal},
		{"optional without token", AuthOptional, tier.Normal, "", 200, false, tier.Normal},
		{"optional with session raises normal", AuthOptional, tier.Normal, "Bearer good", 200, true, tier.Important},
		{"optional with session keeps critical", AuthOptional, tier.Critical, "Bearer good", 200, true, tier.Critical},
		{"optional with bad token", AuthOptional, tier.Normal, "Bearer bad", 401, false, tier.Normal},
		{"required without token", AuthRequired, tier.Normal, "", 401, false, tier.Normal},
		{"required with token", AuthRequired, tier.Sheddable, "Bearer good", 200, true, tier.Important},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var seen *request.Info
			h := Authenticate(v, tc.mode)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = request.From(r.Context())
			}))
			info := &request.Info{Tier: tc.route, Priority: tc.route}
			r := httptest.NewRequest("GET", "/", nil).WithContext(request.With(t.Context(), info))
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d", w.Code, tc.status)
			}
			if tc.status == 401 {
				if seen != nil || w.Header().Get("WWW-Authenticate") == "" {
					t.Errorf("401 must not reach the upstream and must say how to authenticate")
				}
				return
			}
			if info.Session != tc.session || info.Priority != tc.priority {
				t.Errorf("session %v priority %v, want %v %v", info.Session, info.Priority, tc.session, tc.priority)
			}
			if tc.session && info.Subject != "alice" {
				t.Errorf("subject %q", info.Subject)
			}
		})
	}
}

func TestDeadlineHeader(t *testing.T) {
	var seen *request.Info
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = request.From(r.Context()) })
	g, err := New([]Route{{Name: "r", Pattern: "GET /r", Tier: tier.Normal, Upstream: up}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, header, value string
		status              int
		deadline            bool
	}{
		{"none", "", "", 200, false},
		{"grpc timeout", "Grpc-Timeout", "250m", 200, true},
		{"unix millis", "X-Request-Deadline", "4102444800000", 200, true},
		{"malformed", "X-Request-Deadline", "tomorrow", 400, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen = nil
			r := httptest.NewRequest("GET", "/r", nil)
			if tc.header != "" {
				r.Header.Set(tc.header, tc.value)
			}
			w := httptest.NewRecorder()
			g.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.status == 200 && (seen == nil || !seen.Deadline.IsZero() != tc.deadline) {
				t.Errorf("deadline recorded: %+v", seen)
			}
		})
	}
}
