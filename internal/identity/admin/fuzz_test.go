package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/identity/webauthntest"
)

func FuzzParseSession(f *testing.F) {
	a := &Admins{key: make([]byte, 32), opts: Options{Now: time.Now, SessionTTL: time.Minute}}
	f.Add(a.sessionValue([]byte("admin-id"), time.Now().Add(time.Minute)))
	f.Add("")
	f.Add("..")
	f.Add("YQ.1.AAAA")
	f.Fuzz(func(t *testing.T, v string) {
		p, ok := parseSession(v)
		if !ok {
			return
		}
		if len(p.admin) == 0 || len(p.admin) > 64 || len(p.mac) != 32 || p.expires <= 0 {
			t.Fatalf("accepted %q as %+v", v, p)
		}
		// No admin exists here, so nothing verifies.
		if _, ok := a.verifySession(v); ok {
			t.Fatalf("verified %q", v)
		}
	})
}

func FuzzParseToken(f *testing.F) {
	tok, _ := randomToken(enrolPrefix)
	f.Add(tok)
	f.Add("enrol_")
	f.Add("ops_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range []string{enrolPrefix, opsPrefix} {
			if _, ok := parseToken(p, s); ok {
				if raw, err := b64.DecodeString(strings.TrimSpace(s)[len(p):]); err != nil || len(raw) != 32 {
					t.Fatalf("accepted %q", s)
				}
			}
		}
	})
}

// fuzzConsole is an admin directory and the ops handler as serve wires it,
// driven in-process (httptest.NewRecorder) so that a fuzz iteration costs
// a ceremony, not a connection.
type fuzzConsole struct {
	a      *Admins
	h      http.Handler
	dir    string
	origin string
}

func newFuzzConsole(f *testing.F) *fuzzConsole {
	c := &fuzzConsole{dir: f.TempDir(), origin: "http://localhost:9090"}
	a, err := Open(c.dir, Options{Required: true, Origins: []string{c.origin}, MachineToken: true})
	if err != nil {
		f.Fatal(err)
	}
	c.a = a
	ops := http.NewServeMux()
	ops.Handle(PathPrefix, a.Handler())
	c.h = a.RequireAdmin(ops)
	return c
}

func (c *fuzzConsole) post(path, contentType string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Origin", c.origin)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	rec := httptest.NewRecorder()
	c.h.ServeHTTP(rec, req)
	return rec
}

// begin starts a ceremony and returns its id and the options for the
// authenticator.
func (c *fuzzConsole) begin(t testing.TB, path string, body any) (string, json.RawMessage) {
	t.Helper()
	b, _ := json.Marshal(body)
	rec := c.post(path, "application/json", b)
	var out struct {
		Ceremony  string          `json:"ceremony"`
		PublicKey json.RawMessage `json:"publicKey"`
	}
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
		t.Fatalf("begin %s: %d %s", path, rec.Code, rec.Body)
	}
	return out.Ceremony, out.PublicKey
}

// drop forgets a ceremony a malformed body left open (it would expire in
// ceremonyTTL), so that the fuzzer's iterations do not fill the table.
func (c *fuzzConsole) drop(id string) {
	c.a.mu.Lock()
	delete(c.a.ceremonies, id)
	c.a.mu.Unlock()
}

// refusedCleanly checks the answer to a finish body that must not finish
// the ceremony: a 4xx problem document, and no admin session.
func refusedCleanly(t *testing.T, rec *httptest.ResponseRecorder, body []byte) {
	t.Helper()
	if rec.Code < 400 || rec.Code >= 500 {
		t.Fatalf("finish %q: %d %s, want a 4xx refusal", body, rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("finish %q: %d with Content-Type %q, want a problem document", body, rec.Code, ct)
	}
	if sc := rec.Header().Values("Set-Cookie"); len(sc) > 0 {
		t.Fatalf("finish %q refused with a cookie: %q", body, sc)
	}
}

// finishSeeds are finish bodies around a real authenticator answer: the
// answer itself (made for another ceremony, so it must fail), the shapes the
// handler refuses early, and broken variants of each member.
func finishSeeds(f *testing.F, cred []byte) {
	for _, s := range []string{
		`{"ceremony":"CEREMONY","credential":` + string(cred) + `}`,
		`{"ceremony":"CEREMONY","credential":` + string(cred) + `}{}`,
		`{"ceremony":"CEREMONY","credential":` + string(cred) + `,"admin":"ada"}`,
		`{"ceremony":"CEREMONY","credential":{}}`,
		`{"ceremony":"CEREMONY","credential":null}`,
		`{"ceremony":"CEREMONY","credential":"x"}`,
		`{"ceremony":"CEREMONY","credential":{"id":"","rawId":"","type":"public-key","response":{}}}`,
		`{"ceremony":"CEREMONY","credential":{"id":"AA","rawId":"AA","type":"public-key","response":{"clientDataJSON":"e30","attestationObject":"oA","authenticatorData":"AA","signature":"AA"}}}`,
		`{"ceremony":"CEREMONY","credential":{"id":"AA","rawId":"!!","type":"public-key","response":{"clientDataJSON":"%%%"}}}`,
		`{"ceremony":"other","credential":` + string(cred) + `}`,
		`{"ceremony":"CEREMONY"}`,
		`{}`,
		``,
		`[`,
		`{"ceremony":["CEREMONY"]}`,
		strings.Repeat(`[`, 10000),
	} {
		f.Add(s, "application/json")
	}
	f.Add(`{"ceremony":"CEREMONY","credential":`+string(cred)+`}`, "text/plain")
	f.Add(`{"ceremony":"CEREMONY","credential":`+string(cred)+`}`, "application/json; charset=utf-8")
	f.Add(`{"ceremony":"CEREMONY","credential":`+string(cred)+`}`, "")
}

// FuzzEnrolFinish drives the enrolment finish endpoint with bodies of a
// begun ceremony (CEREMONY in the body is replaced by its id). No body the
// fuzzer writes can answer the ceremony's fresh challenge, so each must be
// refused with a 4xx problem document, and leave no admin enrolled, no
// admins.json, no session and the enrolment token unspent.
func FuzzEnrolFinish(f *testing.F) {
	c := newFuzzConsole(f)
	tok, _, err := IssueEnrolToken(c.dir, time.Hour, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	h, _ := parseToken(enrolPrefix, tok)
	_, opts := c.begin(f, PathEnrolBegin, map[string]string{"token": tok, "name": "ada"})
	cred, err := webauthntest.New(c.origin).Create(opts)
	if err != nil {
		f.Fatal(err)
	}
	finishSeeds(f, cred)
	f.Fuzz(func(t *testing.T, body, contentType string) {
		id, _ := c.begin(t, PathEnrolBegin, map[string]string{"token": tok, "name": "ada"})
		defer c.drop(id)
		b := []byte(strings.ReplaceAll(body, "CEREMONY", id))
		refusedCleanly(t, c.post(PathEnrolFinish, contentType, b), b)
		if n := c.a.Enrolled(); n != 0 {
			t.Fatalf("finish %q enrolled %d admins", b, n)
		}
		if _, err := os.Stat(filepath.Join(c.dir, adminsFile)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("finish %q wrote %s: %v", b, adminsFile, err)
		}
		if err := checkEnrolToken(c.dir, h, time.Now()); err != nil {
			t.Fatalf("finish %q spent the enrolment token: %v", b, err)
		}
	})
}

// FuzzLoginFinish drives the login finish endpoint as FuzzEnrolFinish does
// the enrolment's, with an enrolled admin: every body is refused with a 4xx
// problem document, sets no session, and leaves admins.json (the stored
// signature counters) byte for byte as it was.
func FuzzLoginFinish(f *testing.F) {
	c := newFuzzConsole(f)
	tok, _, err := IssueEnrolToken(c.dir, time.Hour, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	auth := webauthntest.New(c.origin)
	id, opts := c.begin(f, PathEnrolBegin, map[string]string{"token": tok, "name": "ada"})
	cred, err := auth.Create(opts)
	if err != nil {
		f.Fatal(err)
	}
	fin, _ := json.Marshal(map[string]any{"ceremony": id, "credential": json.RawMessage(cred)})
	if rec := c.post(PathEnrolFinish, "application/json", fin); rec.Code != http.StatusOK {
		f.Fatalf("enrol: %d %s", rec.Code, rec.Body)
	}
	_, opts = c.begin(f, PathLoginBegin, map[string]string{"name": "ada"})
	assertion, err := auth.Get(opts)
	if err != nil {
		f.Fatal(err)
	}
	stored, err := os.ReadFile(filepath.Join(c.dir, adminsFile))
	if err != nil {
		f.Fatal(err)
	}
	finishSeeds(f, assertion)
	f.Fuzz(func(t *testing.T, body, contentType string) {
		id, _ := c.begin(t, PathLoginBegin, map[string]string{"name": "ada"})
		defer c.drop(id)
		b := []byte(strings.ReplaceAll(body, "CEREMONY", id))
		refusedCleanly(t, c.post(PathLoginFinish, contentType, b), b)
		now, err := os.ReadFile(filepath.Join(c.dir, adminsFile))
		if err != nil || !bytes.Equal(now, stored) {
			t.Fatalf("finish %q changed %s (%v)", b, adminsFile, err)
		}
	})
}
