package legacy

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/estate/core"
	"github.com/rempart/rempart/internal/identity"
	"github.com/rempart/rempart/internal/identity/users"
	"github.com/rempart/rempart/internal/session"
	"github.com/rempart/rempart/internal/session/memory"
	"github.com/rempart/rempart/internal/session/sessiontest"
)

// fastDB is an identity database that costs microseconds a call.
func fastDB() *DB {
	return NewDB(core.Config{Workers: 4, MedianService: time.Microsecond, LockTimeout: 10 * time.Millisecond})
}

// The session database is a session store like any other.
func TestConformance(t *testing.T) {
	sessiontest.RunTests(t, func(t *testing.T, clk *sessiontest.FakeClock) session.Store {
		inner, err := memory.Open(context.Background(), memory.Options{Clock: clk, PruneEvery: -1})
		if err != nil {
			t.Fatal(err)
		}
		s := NewSessionDB(inner, fastDB())
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestStuckDatabaseHangsSessionsAndDirectory(t *testing.T) {
	db := fastDB()
	inner, err := memory.Open(context.Background(), memory.Options{PruneEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	s := NewSessionDB(inner, db)
	defer s.Close()
	dir, err := users.NewMemory(users.Options{Params: users.Fast, Derived: 10})
	if err != nil {
		t.Fatal(err)
	}
	d := NewDirectory(dir, db)
	db.SetStuck(true)
	if !db.Stuck() {
		t.Fatal("Stuck() = false after SetStuck(true)")
	}
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"get", func(ctx context.Context) error { _, err := s.Get(ctx, "x"); return err }},
		{"create", func(ctx context.Context) error {
			now := time.Now()
			return s.Create(ctx, session.Session{ID: "a", Subject: "C00000001", CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
		}},
		{"authenticate", func(ctx context.Context) error {
			_, err := d.Authenticate(ctx, "C00000001", "demo-C00000001")
			return err
		}},
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			if err := c.call(ctx); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("stuck %s: err = %v, want a deadline exceeded", c.name, err)
			}
		})
	}
	db.SetStuck(false)
	if _, err := d.Authenticate(context.Background(), "C00000001", "demo-C00000001"); err != nil {
		t.Fatalf("freed directory: %v", err)
	}
	if _, err := s.Get(context.Background(), "a"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("freed store: Get of a session never created = %v, want ErrNotFound", err)
	}
}

// grantsFunc adapts a function to Grants.
type grantsFunc func(ctx context.Context, grant string) error

func (f grantsFunc) GrantLive(ctx context.Context, grant string) error { return f(ctx, grant) }

// noKeys is a key source that knows no key.
type noKeys struct{}

func (noKeys) PublicKey(context.Context, string) (ed25519.PublicKey, error) {
	return nil, errors.New("no such key")
}

func TestFrontRoutes(t *testing.T) {
	var checked int
	f := &Front{
		Verifier: identity.NewVerifier(identity.VerifierConfig{Issuer: "http://127.0.0.1", Audience: "rempart", Keys: noKeys{}}),
		IdP:      http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("idp")) }),
		Bank:     http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("bank")) }),
		Grants: grantsFunc(func(context.Context, string) error {
			checked++
			return nil
		}),
	}
	h := f.Handler()
	cases := []struct {
		name, method, path, auth string
		wantCode                 int
		wantBody                 string
	}{
		{"login page to the provider", "GET", "/login?id=x", "", 200, "idp"},
		{"token endpoint to the provider", "POST", "/oauth/token", "", 200, "idp"},
		{"anonymous read to the bank", "GET", "/v1/accounts/A00000001/balance", "", 200, "bank"},
		{"card payment skips the token check", "POST", "/v1/cards/authorize", "Bearer garbage", 200, "bank"},
		{"bad token on an app route", "GET", "/v1/accounts/A00000001/balance", "Bearer garbage", 401, "invalid-token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(c.method, c.path, nil)
			if c.auth != "" {
				r.Header.Set("Authorization", c.auth)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != c.wantCode || !strings.Contains(w.Body.String(), c.wantBody) {
				t.Fatalf("%s %s: %d %q, want %d containing %q", c.method, c.path, w.Code, w.Body, c.wantCode, c.wantBody)
			}
		})
	}
	if checked != 0 {
		t.Fatalf("the grant was looked up %d times for tokens that never verified", checked)
	}
}
