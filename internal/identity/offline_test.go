package identity

import (
	"context"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/rempart/rempart/internal/session/memory"
)

// TestOfflineFirst switches the user directory stuck (the incident's
// deadlocked identity database): customers holding a grant keep refreshing
// tokens and reading userinfo, a browser with a session logs in to the app
// again without the form, and only a new login waits — and is told so.
func TestOfflineFirst(t *testing.T) {
	e := newEnv(t)
	b := e.browser(t)
	v := oauth2.GenerateVerifier()
	loc := e.loginForm(t, b, e.authURL(e.issuer+"/demo/callback", oauth2.S256ChallengeFromVerifier(v), "S256"), "alice", "alice-demo-2025")
	_, m := e.exchange(t, loc.Query().Get("code"), v)
	rt := m["refresh_token"].(string)

	e.users.SetStuck(true)
	defer e.users.SetStuck(false)

	start := time.Now()
	for range 3 {
		st, m := e.refresh(t, rt)
		if st != http.StatusOK {
			t.Fatalf("refresh with the directory stuck: %d %v", st, m)
		}
		rt = m["refresh_token"].(string)
		req, _ := http.NewRequest(http.MethodGet, e.issuer+PathUserinfo, nil)
		req.Header.Set("Authorization", "Bearer "+m["access_token"].(string))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if body := readAll(t, resp); resp.StatusCode != 200 {
			t.Fatalf("userinfo with the directory stuck: %d %s", resp.StatusCode, body)
		}
	}
	if d := time.Since(start); d > 150*time.Millisecond {
		t.Fatalf("refreshes took %v: they waited on the directory", d)
	}

	// Same browser, new authorization: the browser session answers.
	v2 := oauth2.GenerateVerifier()
	loc = e.loginForm(t, b, e.authURL(e.issuer+"/demo/callback", oauth2.S256ChallengeFromVerifier(v2), "S256"), "alice", "unused")
	if st, m := e.exchange(t, loc.Query().Get("code"), v2); st != 200 {
		t.Fatalf("SSO login with the directory stuck: %d %v", st, m)
	}

	// A new customer on a new browser waits LoginTimeout, then is told to
	// come back rather than left hanging.
	nb := e.browser(t)
	resp, err := nb.Get(e.authURL(e.issuer+"/demo/callback", oauth2.S256ChallengeFromVerifier(v), "S256"))
	if err != nil {
		t.Fatal(err)
	}
	id := idRe.FindStringSubmatch(readAll(t, resp))[1]
	resp, err = nb.PostForm(e.issuer+"/login/password", url.Values{"id": {id}, "username": {"bruno"}, "password": {"bruno-demo-2025"}})
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("new login with the directory stuck: %d, Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}

// TestGrantsSurviveRestart: with a durable session store and a data
// directory, a refresh token and an access token issued before a restart
// still work after it.
func TestGrantsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	open := func() *memory.Store {
		s, err := memory.Open(context.Background(), memory.Options{Dir: filepath.Join(dir, "sessions")})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s1 := open()
	e := newEnv(t, func(c *Config) { c.Sessions, c.DataDir = s1, dir })
	code, v := e.code(t)
	_, m := e.exchange(t, code, v)
	rt, at := m["refresh_token"].(string), m["access_token"].(string)
	e.p.Close()
	s1.Close()

	s2 := open()
	defer s2.Close()
	e2 := newEnv(t, func(c *Config) { c.Sessions, c.DataDir = s2, dir; c.Issuer = e.issuer })
	_ = e2
	// e2 listens on a new port but keeps e's issuer; call its handler directly.
	p2 := e2.p
	if _, err := p2.Verifier().Verify(context.Background(), at); err != nil {
		t.Fatalf("access token refused after restart: %v", err)
	}
	if _, err := p2.grants.lookup(context.Background(), rt); err != nil {
		t.Fatalf("refresh token lost in restart: %v", err)
	}
}
