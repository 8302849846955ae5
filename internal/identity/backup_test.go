package identity

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/oauth2"
)

// backupEnv is a provider with short backup timings; its directory is
// e.users, which tests switch stuck.
func backupEnv(t *testing.T) *env {
	return newEnv(t, func(c *Config) {
		c.BackupAfter = 20 * time.Millisecond
		c.DirectoryBreakerDelay = 50 * time.Millisecond
	})
}

// relogin logs user in again from browser b (prompt=login, so the SSO
// session does not skip the form) and returns the status of the password
// step and, when it reached the code step and the code was accepted, the
// tokens' amr.
func (e *env) relogin(t *testing.T, b *http.Client, user, password string) (int, []string) {
	t.Helper()
	v := oauth2.GenerateVerifier()
	st, _, body := get(t, b, e.authURL(e.issuer+"/demo/callback", oauth2.S256ChallengeFromVerifier(v), "S256")+"&prompt=login")
	m := idRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no login form: %d %.300s", st, body)
	}
	resp, err := b.PostForm(e.issuer+"/login/password", url.Values{"id": {m[1]}, "username": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="code"`) {
		return resp.StatusCode, nil
	}
	resp, err = b.PostForm(e.issuer+"/login/otp", url.Values{"id": {m[1]}, "code": {e.sms.lastCode(t)}})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	loc, _ := resp.Location()
	if loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("code step: %d", resp.StatusCode)
	}
	st, tok := e.exchange(t, loc.Query().Get("code"), v)
	if st != http.StatusOK {
		t.Fatalf("exchange: %d %v", st, tok)
	}
	claims := decodeClaims(t, tok["access_token"].(string))
	var amr []string
	for _, a := range claims["amr"].([]any) {
		amr = append(amr, a.(string))
	}
	return http.StatusOK, amr
}

// TestBackupLogin: with the directory stuck, a customer logging in again
// from the device of an earlier login gets in, checked against that
// device's snapshot, with tokens that say so; a wrong password is still
// wrong, and a browser without a snapshot gets the honest busy answer.
func TestBackupLogin(t *testing.T) {
	e := backupEnv(t)
	phone := e.browser(t)
	if st, amr := e.relogin(t, phone, "alice", "alice-demo-2025"); st != http.StatusOK || slices.Contains(amr, amrBackup) {
		t.Fatalf("first login: %d %v", st, amr)
	}
	e.users.SetStuck(true)
	defer e.users.SetStuck(false)

	if st, amr := e.relogin(t, phone, "alice", "alice-demo-2025"); st != http.StatusOK || !slices.Contains(amr, amrBackup) || !slices.Contains(amr, "otp") {
		t.Fatalf("alice's phone, directory stuck: %d amr %v, want a login marked backup", st, amr)
	}
	// Again: the device kept its cookie and its snapshot.
	if st, _ := e.relogin(t, phone, "alice", "alice-demo-2025"); st != http.StatusOK {
		t.Fatalf("alice's phone, second backup login: %d", st)
	}
	if st, _ := e.relogin(t, phone, "alice", "wrong-password"); st != http.StatusUnauthorized {
		t.Fatalf("wrong password against the snapshot: %d, want 401", st)
	}
	// Another browser has no snapshot: the busy answer, not a login.
	if st, _ := e.relogin(t, e.browser(t), "alice", "alice-demo-2025"); st != http.StatusServiceUnavailable {
		t.Fatalf("a new browser while the directory is stuck: %d, want 503", st)
	}
	// Nor does alice's phone for bruno.
	if st, _ := e.relogin(t, phone, "bruno", "bruno-demo-2025"); st != http.StatusServiceUnavailable {
		t.Fatalf("alice's phone logging in as bruno: %d, want 503", st)
	}
	if got := counterVal(t, e.p.backup.logins.WithLabelValues("backup")); got != 2 {
		t.Errorf("backup logins counted %v, want 2", got)
	}
}

// TestBackupPolicyWins: a block, a password change or a phone change in
// the directory ends the customer's backup path at once; a snapshot never
// outlives its window.
func TestBackupPolicyWins(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(e *env) error
	}{
		{"blocked", func(e *env) error { return e.users.Block("alice", true) }},
		{"password changed", func(e *env) error { return e.users.SetPassword("alice", "a-new-password-2026") }},
		{"phone changed", func(e *env) error { return e.users.SetPhone("alice", "+33 6 99 99 99 99") }},
		{"window over", func(e *env) error { e.clock.Add(72*time.Hour + time.Minute); return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := backupEnv(t)
			phone := e.browser(t)
			if st, _ := e.relogin(t, phone, "alice", "alice-demo-2025"); st != http.StatusOK {
				t.Fatalf("first login: %d", st)
			}
			if err := tc.change(e); err != nil {
				t.Fatal(err)
			}
			e.users.SetStuck(true)
			defer e.users.SetStuck(false)
			if st, amr := e.relogin(t, phone, "alice", "alice-demo-2025"); st == http.StatusOK {
				t.Fatalf("alice got in through the backup path (amr %v) after the directory changed", amr)
			}
		})
	}
}

// TestBlockedRefused: a blocked customer with the right password is told
// so, not logged in.
func TestBlockedRefused(t *testing.T) {
	e := newEnv(t)
	if err := e.users.Block("bruno", true); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.relogin(t, e.browser(t), "bruno", "bruno-demo-2025"); st != http.StatusForbidden {
		t.Fatalf("blocked customer: %d, want 403", st)
	}
}

// TestDirectoryBreaker: five directory time-outs open the breaker, so the
// next logins do not wait on the directory at all; once the directory is
// back, one login after the breaker's delay closes it.
func TestDirectoryBreaker(t *testing.T) {
	e := backupEnv(t)
	e.users.SetStuck(true)
	for i := range 5 {
		if st, _ := e.relogin(t, e.browser(t), "bruno", "bruno-demo-2025"); st != http.StatusServiceUnavailable {
			t.Fatalf("login %d with the directory stuck: %d", i, st)
		}
	}
	if !e.p.backup.cb.IsOpen() || e.p.DirectoryBreakerState() != "open" {
		t.Fatalf("breaker %v (%q) after five time-outs, want open", e.p.backup.cb.State(), e.p.DirectoryBreakerState())
	}
	// Open: answered without the directory (which would hold it for
	// LoginTimeout, then fail).
	if st, _ := e.relogin(t, e.browser(t), "bruno", "bruno-demo-2025"); st != http.StatusServiceUnavailable {
		t.Fatalf("with the breaker open: %d", st)
	}
	e.users.SetStuck(false)
	time.Sleep(60 * time.Millisecond) // the breaker's delay (50 ms in backupEnv)
	if st, _ := e.relogin(t, e.browser(t), "bruno", "bruno-demo-2025"); st != http.StatusOK {
		t.Fatalf("after the directory came back: %d", st)
	}
	if !e.p.backup.cb.IsClosed() || e.p.DirectoryBreakerState() != "closed" {
		t.Fatalf("breaker %v (%q) after a good login, want closed", e.p.backup.cb.State(), e.p.DirectoryBreakerState())
	}
}

// decodeClaims reads a JWT's claims without verifying it (the provider's
// own token, just issued).
func decodeClaims(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	b, err := b64.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func counterVal(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
