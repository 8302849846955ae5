package identity

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/identity/users"
	"github.com/rempart/rempart/internal/journal"
	"github.com/rempart/rempart/internal/journal/sqlite"
)

// queuedEnv is backupEnv with the directory writes of logins queued in a
// SQLite journal at path.
func queuedEnv(t *testing.T, path string) (*env, journal.Store) {
	t.Helper()
	j, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	e := backupEnv(t)
	e.p.cfg.DirectoryWrites = NewJournalWrites(j)
	return e, j
}

// loginThroughOutage is the login history the tests queue: alice logs in
// from her phone while the directory answers, then, with it stuck, types a
// wrong password and logs in through the backup path.
func loginThroughOutage(t *testing.T, e *env) {
	t.Helper()
	phone := e.browser(t)
	if st, _ := e.relogin(t, phone, "alice", "alice-demo-2025"); st != http.StatusOK {
		t.Fatalf("first login: %d", st)
	}
	e.users.SetStuck(true)
	if st, _ := e.relogin(t, phone, "alice", "wrong-password"); st != http.StatusUnauthorized {
		t.Fatalf("wrong password against the snapshot: %d", st)
	}
	if st, _ := e.relogin(t, phone, "alice", "alice-demo-2025"); st != http.StatusOK {
		t.Fatalf("backup login: %d", st)
	}
}

// wantOutageActivity is what the directory holds once loginThroughOutage's
// writes are applied, each once.
func wantOutageActivity(t *testing.T, d *users.Memory) {
	t.Helper()
	a, err := d.ActivityOf(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if a.Logins != 2 || a.FailedPasswords != 1 || a.FailedCodes != 0 || len(a.Devices) != 1 {
		t.Fatalf("alice's activity %+v: want 2 logins, 1 wrong password, from 1 device", a)
	}
}

// TestDirectoryWritesQueued: while the directory hangs, what logins write
// to it waits in the journal, and the logins do not wait for it; once it
// answers, a replay applies each write once, and a write delivered again
// (its first answer lost) changes nothing.
func TestDirectoryWritesQueued(t *testing.T) {
	e, j := queuedEnv(t, filepath.Join(t.TempDir(), "journal.db"))
	loginThroughOutage(t, e)
	c, err := j.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.Pending[KindDirectory] != 3 {
		t.Fatalf("journal %+v: want the 3 writes (2 logins, 1 wrong password) pending", c)
	}
	e.users.SetStuck(false)
	if a, _ := e.users.ActivityOf(context.Background(), "alice"); a.Logins != 0 {
		t.Fatalf("the directory has %+v before any replay: the writes did not wait", a)
	}
	rp, err := journal.NewReplayer(journal.ReplayerConfig{Store: j, Upstream: DirectoryUpstream, Owner: "node-1",
		Handler: e.p.DirectoryEventsHandler(e.users)})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := rp.Drain(context.Background()); err != nil || p.Replayed != 3 || p.Failed != 0 {
		t.Fatalf("replay: %+v %v", p, err)
	}
	wantOutageActivity(t, e.users)

	// The first answer lost, the replay sends a write again: counted once.
	done, err := j.List(context.Background(), journal.Filter{Kind: KindDirectory, State: journal.Done, Limit: 10})
	if err != nil || len(done) != 3 {
		t.Fatalf("done writes: %d %v", len(done), err)
	}
	req := httptest.NewRequest(http.MethodPost, PathDirectoryEvents, strings.NewReader(string(done[0].Request.Body)))
	req.Header.Set("Idempotency-Key", done[0].Key)
	rec := httptest.NewRecorder()
	e.p.DirectoryEventsHandler(e.users).ServeHTTP(rec, req)
	if rec.Code != http.StatusNoContent {
		t.Fatalf("a write delivered again: %d %s", rec.Code, rec.Body)
	}
	wantOutageActivity(t, e.users)
	var ev users.Event
	if err := json.Unmarshal(done[0].Request.Body, &ev); err != nil {
		t.Fatal(err)
	}
	if got := counterVal(t, e.p.dirWrites.WithLabelValues(ev.Kind, "duplicate")); got != 1 {
		t.Errorf("duplicates counted %v, want 1", got)
	}
}

// TestDirectoryEventsRefused: the replay's endpoint takes only well-formed
// events for customers the directory has; its refusals are final (the
// replayer drops them), a stuck directory's answer is not.
func TestDirectoryEventsRefused(t *testing.T) {
	e := backupEnv(t)
	h := e.p.DirectoryEventsHandler(e.users)
	for _, tc := range []struct {
		name, key, body string
		stuck           bool
		want            int
	}{
		{"not json", "k1", `{"id":`, false, http.StatusBadRequest},
		{"unknown field", "k1", `{"id":"k1","kind":"login","account":"alice","at":"2026-12-03T10:00:00Z","admin":true}`, false, http.StatusBadRequest},
		{"unknown kind", "k1", `{"id":"k1","kind":"unblock","account":"alice","at":"2026-12-03T10:00:00Z"}`, false, http.StatusBadRequest},
		{"key is not the id", "k2", `{"id":"k1","kind":"login","account":"alice","at":"2026-12-03T10:00:00Z"}`, false, http.StatusBadRequest},
		{"no time", "k1", `{"id":"k1","kind":"login","account":"alice"}`, false, http.StatusBadRequest},
		{"no such customer", "k1", `{"id":"k1","kind":"login","account":"mallory","at":"2026-12-03T10:00:00Z"}`, false, http.StatusNotFound},
		{"directory stuck", "k1", `{"id":"k1","kind":"login","account":"alice","at":"2026-12-03T10:00:00Z"}`, true, http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.users.SetStuck(tc.stuck)
			defer e.users.SetStuck(false)
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			req := httptest.NewRequestWithContext(ctx, http.MethodPost, PathDirectoryEvents, strings.NewReader(tc.body))
			req.Header.Set("Idempotency-Key", tc.key)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("%d %s, want %d", rec.Code, rec.Body, tc.want)
			}
		})
	}
	if a, _ := e.users.ActivityOf(context.Background(), "alice"); a.Logins != 0 {
		t.Fatalf("a refused event changed the directory: %+v", a)
	}
}

// TestReplayProbesTheBreaker: with the directory's breaker open, the queue
// waits without calling the directory; once the directory is back and the
// breaker's delay over, a replayed write is the probe that closes it, no
// login needed.
func TestReplayProbesTheBreaker(t *testing.T) {
	e, j := queuedEnv(t, filepath.Join(t.TempDir(), "journal.db"))
	loginThroughOutage(t, e) // the directory is left stuck
	for i := range 5 {
		if st, _ := e.relogin(t, e.browser(t), "bruno", "bruno-demo-2025"); st != http.StatusServiceUnavailable {
			t.Fatalf("login %d with the directory stuck: %d", i, st)
		}
	}
	if !e.p.backup.cb.IsOpen() {
		t.Fatalf("breaker %v, want open", e.p.backup.cb.State())
	}
	rp, err := journal.NewReplayer(journal.ReplayerConfig{Store: j, Upstream: DirectoryUpstream, Owner: "node-1",
		Handler: e.p.DirectoryEventsHandler(e.users)})
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := rp.Drain(context.Background()); p.Replayed != 0 {
		t.Fatalf("replayed %+v with the breaker open", p)
	}
	e.users.SetStuck(false)
	time.Sleep(60 * time.Millisecond) // the breaker's delay (50 ms in backupEnv)
	for range 3 {
		if p, _ := rp.Drain(context.Background()); p.Replayed == 3 {
			break
		}
	}
	if !e.p.backup.cb.IsClosed() {
		t.Fatalf("breaker %v after the replay, want closed", e.p.backup.cb.State())
	}
	wantOutageActivity(t, e.users)
}
