package admin

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/identity/webauthntest"
)

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

type env struct {
	dir    string
	a      *Admins
	srv    *httptest.Server
	origin string
	clock  *testClock
	opts   Options
	logs   *bytes.Buffer
	logMu  sync.Mutex
}

// newEnv serves an ops mux — probes, a stand-in ops endpoint and the admin
// console — behind RequireAdmin, as serve wires it.
func newEnv(t *testing.T, mod ...func(*Options)) *env {
	t.Helper()
	e := &env{dir: t.TempDir(), clock: &testClock{t: time.Now()}, logs: &bytes.Buffer{}}
	e.srv = httptest.NewUnstartedServer(nil)
	e.origin = "http://localhost:" + strings.TrimPrefix(e.srv.Listener.Addr().String(), "127.0.0.1:")
	e.opts = Options{Required: true, Origins: []string{e.origin}, MachineToken: true, Now: e.clock.Now,
		Logger: slog.New(slog.NewTextHandler(lockedWriter{e}, nil))}
	for _, m := range mod {
		m(&e.opts)
	}
	e.open(t)
	e.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { e.handler().ServeHTTP(w, r) })
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}

type lockedWriter struct{ e *env }

func (l lockedWriter) Write(p []byte) (int, error) {
	l.e.logMu.Lock()
	defer l.e.logMu.Unlock()
	return l.e.logs.Write(p)
}

func (e *env) log() string {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	return e.logs.String()
}

func (e *env) open(t *testing.T) {
	t.Helper()
	a, err := Open(e.dir, e.opts)
	if err != nil {
		t.Fatal(err)
	}
	e.a = a
}

func (e *env) handler() http.Handler {
	ops := http.NewServeMux()
	ops.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	ops.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "# metrics") })
	ops.HandleFunc("/ops/estate/faults", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, `{"faults":{}}`) })
	ops.Handle(PathPrefix, e.a.Handler())
	return e.a.RequireAdmin(ops)
}

func (e *env) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (e *env) token(t *testing.T) string {
	t.Helper()
	tok, _, err := IssueEnrolToken(e.dir, e.opts.EnrolTokenTTL, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// call posts JSON (or GETs when body is nil) and decodes the answer.
func (e *env) call(t *testing.T, c *http.Client, path string, body any, hdr ...string) (int, map[string]json.RawMessage) {
	t.Helper()
	method, rd := http.MethodGet, io.Reader(nil)
	if body != nil {
		b, _ := json.Marshal(body)
		method, rd = http.MethodPost, bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	m := map[string]json.RawMessage{}
	if json.Unmarshal(raw, &m) != nil {
		m["raw"] = json.RawMessage(`""`)
	}
	return resp.StatusCode, m
}

func str(m map[string]json.RawMessage, k string) string {
	var s string
	_ = json.Unmarshal(m[k], &s)
	return s
}

// enrol runs an enrolment ceremony and returns the finish status.
func (e *env) enrol(t *testing.T, c *http.Client, auth *webauthntest.Authenticator, token, name string) (int, map[string]json.RawMessage) {
	t.Helper()
	st, begin := e.call(t, c, PathEnrolBegin, map[string]string{"token": token, "name": name})
	if st != http.StatusOK {
		return st, begin
	}
	cred, err := auth.Create(begin["publicKey"])
	if err != nil {
		t.Fatal(err)
	}
	return e.call(t, c, PathEnrolFinish, map[string]any{"ceremony": str(begin, "ceremony"), "credential": json.RawMessage(cred)})
}

// login runs a login ceremony and returns the finish status.
func (e *env) login(t *testing.T, c *http.Client, auth *webauthntest.Authenticator, name string) (int, map[string]json.RawMessage) {
	t.Helper()
	st, begin := e.call(t, c, PathLoginBegin, map[string]string{"name": name})
	if st != http.StatusOK {
		return st, begin
	}
	cred, err := auth.Get(begin["publicKey"])
	if err != nil {
		t.Fatal(err)
	}
	return e.call(t, c, PathLoginFinish, map[string]any{"ceremony": str(begin, "ceremony"), "credential": json.RawMessage(cred)})
}

// enrolled enrols "ada" with a fresh authenticator and returns both.
func (e *env) enrolled(t *testing.T) (*webauthntest.Authenticator, *http.Client) {
	t.Helper()
	auth := webauthntest.New(e.origin)
	c := e.client()
	if st, m := e.enrol(t, c, auth, e.token(t), "ada"); st != http.StatusOK {
		t.Fatalf("enrol: %d %s", st, m["detail"])
	}
	return auth, c
}
