package identity

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/oauth2"

	"github.com/rempart/rempart/internal/session"
)

// downStore is a session store that fails every call while down, as a
// stopped or stalled Redis does once its deadline passes.
type downStore struct {
	session.Store
	down atomic.Bool
}

var errDown = errors.New("redis get session: i/o timeout")

func (d *downStore) Get(ctx context.Context, id string) (session.Session, error) {
	if d.down.Load() {
		return session.Session{}, errDown
	}
	return d.Store.Get(ctx, id)
}

func (d *downStore) Delete(ctx context.Context, id string) error {
	if d.down.Load() {
		return errDown
	}
	return d.Store.Delete(ctx, id)
}

func (d *downStore) Create(ctx context.Context, s session.Session) error {
	if d.down.Load() {
		return errDown
	}
	return d.Store.Create(ctx, s)
}

// A refresh while the session store is out answers 503
// temporarily_unavailable with Retry-After, never invalid_grant (which
// would make the app throw the token away), and the same refresh token works
// once the store is back.
func TestRefreshDuringStoreOutage(t *testing.T) {
	var ds *downStore
	e := newEnv(t, func(c *Config) { ds = &downStore{Store: c.Sessions}; c.Sessions = ds })
	r := newRP(t, e)
	tok, _, _ := r.login(t, e.browser(t))
	refresh := func() (*http.Response, map[string]string) {
		t.Helper()
		resp, err := http.PostForm(e.issuer+PathToken, url.Values{"grant_type": {"refresh_token"},
			"refresh_token": {tok.RefreshToken}, "client_id": {DemoAppClient}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]string
		json.NewDecoder(resp.Body).Decode(&body)
		return resp, body
	}

	ds.down.Store(true)
	resp, body := refresh()
	if resp.StatusCode != http.StatusServiceUnavailable || body["error"] != "temporarily_unavailable" ||
		resp.Header.Get("Retry-After") == "" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("refresh during the outage: %d %v Retry-After %q", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if !strings.Contains(e.logs.String(), "session store unavailable") {
		t.Error("the outage was not logged")
	}

	ds.down.Store(false)
	fresh, err := r.conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("the refresh token did not survive the outage: %v", err)
	}
	if fresh.AccessToken == "" || fresh.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh after the outage: %+v", fresh)
	}
	// An unknown refresh token is still invalid_grant: only store failures
	// become 503.
	tok.RefreshToken = fresh.RefreshToken + "x"
	if resp, body := refresh(); resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("bad refresh token: %d %v", resp.StatusCode, body)
	}
}
