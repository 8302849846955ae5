package identity

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/identity/users"
	"github.com/rempart/rempart/internal/session/memory"
)

// fakeSMS records the messages instead of sending them.
type fakeSMS struct {
	mu   sync.Mutex
	msgs []struct{ phone, text string }
}

func (f *fakeSMS) Send(_ context.Context, phone, text string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, struct{ phone, text string }{phone, text})
	return nil
}

var otpRe = regexp.MustCompile(`\b(\d{6})\b`)

func (f *fakeSMS) lastCode(t testing.TB) string {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.msgs) == 0 {
		t.Fatal("no SMS sent")
	}
	m := otpRe.FindStringSubmatch(f.msgs[len(f.msgs)-1].text)
	if m == nil {
		t.Fatalf("no code in SMS %q", f.msgs[len(f.msgs)-1].text)
	}
	return m[1]
}

type observed struct {
	route, account string
	ok, device     bool
}

type fakeObserver struct {
	mu  sync.Mutex
	obs []observed
}

func (f *fakeObserver) ObserveLogin(route string, _ netip.Addr, account string, ok, device bool) {
	f.mu.Lock()
	f.obs = append(f.obs, observed{route, account, ok, device})
	f.mu.Unlock()
}

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	p      *Provider
	srv    *httptest.Server
	issuer string
	sms    *fakeSMS
	obs    *fakeObserver
	users  *users.Memory
	logs   *syncBuffer
	clock  *testClock
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newEnv starts a provider behind a loopback listener, with fast argon2
// parameters, a recording SMS sender and a captured debug log.
func newEnv(t testing.TB, mod ...func(*Config)) *env {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{issuer: "http://" + l.Addr().String(), sms: &fakeSMS{}, obs: &fakeObserver{}, logs: &syncBuffer{},
		clock: &testClock{t: time.Now()}}
	e.users, err = users.NewMemory(users.Options{Params: users.Fast, Derived: 1000})
	if err != nil {
		t.Fatal(err)
	}
	store, err := memory.Open(context.Background(), memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	cfg := Config{
		Issuer: e.issuer, Sessions: store, Users: e.users, SMS: e.sms, Observer: e.obs,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:    e.clock.Now, LoginTimeout: 200 * time.Millisecond,
	}
	for _, m := range mod {
		m(&cfg)
	}
	e.p, err = New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// op's handlers log through slog's default logger; capture it too so
	// the no-secrets-in-logs test sees everything.
	e.srv = httptest.NewUnstartedServer(e.p.Handler())
	e.srv.Listener.Close()
	e.srv.Listener = l
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	t.Cleanup(func() { e.p.Close() })
	return e
}

// browser is an HTTP client with cookies that stops at the redirect to the
// client's redirect URI, as a browser handing the code to an app would.
func (e *env) browser(t testing.TB) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if strings.HasSuffix(r.URL.Path, "/demo/callback") || strings.HasSuffix(r.URL.Path, "/callback") && !strings.Contains(r.URL.Path, "/oauth/") {
			return http.ErrUseLastResponse
		}
		return nil
	}}
}

var idRe = regexp.MustCompile(`name="id" value="([^"]+)"`)

// loginForm drives the login page from an authorization URL to the redirect
// carrying the code, and returns that redirect's URL.
func (e *env) loginForm(t testing.TB, b *http.Client, authURL, user, password string) *url.URL {
	t.Helper()
	resp, err := b.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther {
		loc, _ := resp.Location()
		return loc // a browser session skipped the form
	}
	m := idRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no login form (status %d): %s", resp.StatusCode, body)
	}
	id := m[1]
	resp, err = b.PostForm(e.issuer+"/login/password", url.Values{"id": {id}, "username": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="code"`) {
		t.Fatalf("password step: %d %s", resp.StatusCode, body)
	}
	resp, err = b.PostForm(e.issuer+"/login/otp", url.Values{"id": {id}, "code": {e.sms.lastCode(t)}})
	if err != nil {
		t.Fatal(err)
	}
	body = readAll(t, resp)
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("otp step: %d %s", resp.StatusCode, body)
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func readAll(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
