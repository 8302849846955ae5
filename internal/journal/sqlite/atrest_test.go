package sqlite_test

import (
	"bytes"
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/journal"
	"github.com/rempart/rempart/internal/journal/sqlite"
)

const pan = "4971111111111110"

// standIn is a stand-in entry as the gateway journals it: the card number
// is in the request body and in the decision.
func standIn(key string) journal.Entry {
	return journal.Entry{Key: key, Kind: journal.KindStandIn, Upstream: "estate",
		Request: journal.Request{Method: "POST", Path: "/v1/cards/authorize", ContentType: "application/json",
			Body: []byte(`{"card":"` + pan + `","amount":3000,"merchant":"Boulangerie","channel":"shop"}`)},
		Decision: []byte(`{"key":"` + key + `","kind":"card","card":"` + pan + `","amount":3000,"approved":true}`),
		Created:  time.Now()}
}

// journalFiles returns the bytes of the journal and of its companions.
func journalFiles(t *testing.T, path string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

func noCardNumber(t *testing.T, when, path string) {
	t.Helper()
	files := journalFiles(t, path)
	if len(files) == 0 {
		t.Fatalf("%s: no journal file at %s", when, path)
	}
	for name, b := range files {
		if bytes.Contains(b, []byte(pan)) {
			t.Errorf("%s: %s holds the card number in clear", when, name)
		}
	}
}

func TestNoCardNumberAtRest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(t.Context(), standIn("k-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Complete(t.Context(), "k-1", journal.Result{Status: 200, Body: []byte(`{"card":"` + pan + `"}`)},
		time.Now()); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(t.Context(), "k-1")
	if err != nil || !bytes.Contains(got.Request.Body, []byte(pan)) {
		t.Fatalf("Get = %q, %v; want the body back in clear", got.Request.Body, err)
	}
	noCardNumber(t, "open", path) // the commit is in the WAL
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	noCardNumber(t, "closed", path) // and now checkpointed into the file
}

func TestFileModes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing os.FileMode // 0: no file yet
	}{
		{"new journal", 0},
		{"journal of an earlier version, world-readable", 0o644},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "journal.db")
			if tc.existing != 0 {
				for _, p := range []string{path, path + "-wal", path + "-shm"} {
					if err := os.WriteFile(p, nil, tc.existing); err != nil {
						t.Fatal(err)
					}
					os.Chmod(p, tc.existing) // past the umask
				}
			}
			s, err := sqlite.Open(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.Append(t.Context(), standIn("k")); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"journal.db", "journal.db-wal", "journal.db-shm", journal.KeyFile} {
				st, err := os.Stat(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != 0o600 {
					t.Errorf("%s has mode %#o, want 0600", name, st.Mode().Perm())
				}
			}
		})
	}
}

func TestKeyRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []byte
		mode os.FileMode
		want string
	}{
		{"readable by others", bytes.Repeat([]byte{1}, journal.KeySize), 0o644, "mode 0644"},
		{"short", []byte("short"), 0o600, "is 5 bytes"},
		{"another key than the journal's", bytes.Repeat([]byte{2}, journal.KeySize), 0o600, "another key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "journal.db")
			s, err := sqlite.Open(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Append(t.Context(), standIn("k")); err != nil {
				t.Fatal(err)
			}
			s.Close()
			keyFile := filepath.Join(dir, journal.KeyFile)
			if err := os.WriteFile(keyFile, tc.key, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(keyFile, tc.mode); err != nil {
				t.Fatal(err)
			}
			s, err = sqlite.Open(t.Context(), path)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, journal.ErrKey) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v; want ErrKey saying %q", err, tc.want)
			}
		})
	}
}

// legacySchema is the layout of journals written before sealing.
const legacySchema = `
CREATE TABLE journal (
	seq INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, upstream TEXT NOT NULL,
	method TEXT NOT NULL, path TEXT NOT NULL, content_type TEXT NOT NULL, body BLOB NOT NULL,
	decision BLOB NOT NULL, state TEXT NOT NULL CHECK (state IN ('pending', 'done')),
	created INTEGER NOT NULL, completed INTEGER NOT NULL DEFAULT 0, result_status INTEGER NOT NULL DEFAULT 0,
	result_type TEXT NOT NULL DEFAULT '', result_body BLOB NOT NULL DEFAULT x'');
CREATE INDEX journal_state ON journal (state, seq);
CREATE INDEX journal_created ON journal (created);`

// TestLegacyJournalSealed opens a journal of the first layout, in clear:
// its entries stay readable (a pending one is still replayed), and no card
// number remains in the files.
func TestLegacyJournalSealed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal.db")
	db, err := sql.Open("sqlite", path+"?_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(legacySchema); err != nil {
		t.Fatal(err)
	}
	pending, done := standIn("old-pending"), standIn("old-done")
	for _, e := range []struct {
		journal.Entry
		state string
	}{{pending, "pending"}, {done, "done"}} {
		if _, err := db.Exec(`INSERT INTO journal (key, kind, upstream, method, path, content_type, body,
			decision, state, created, result_status, result_body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			e.Key, e.Kind, e.Upstream, e.Request.Method, e.Request.Path, e.Request.ContentType, e.Request.Body,
			e.Decision, e.state, e.Created.UnixNano(), 200, []byte(`{"approved":true}`)); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	if files := journalFiles(t, path); !bytes.Contains(files["journal.db"], []byte(pan)) {
		t.Fatal("the legacy journal was not written in clear: the test proves nothing")
	}

	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.List(t.Context(), journal.Filter{State: journal.Pending, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Key != "old-pending" || !bytes.Equal(got[0].Request.Body, pending.Request.Body) ||
		!bytes.Equal(got[0].Decision, pending.Decision) {
		t.Fatalf("pending after migration: %+v", got)
	}
	d, err := s.Get(t.Context(), "old-done")
	if err != nil || string(d.Result.Body) != `{"approved":true}` || d.State != journal.Done {
		t.Fatalf("done entry after migration: %+v, %v", d, err)
	}
	noCardNumber(t, "migrated", path)
	s.Close()
	noCardNumber(t, "migrated and closed", path)

	// A second open finds nothing to migrate and the same entries.
	s, err = sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Get(t.Context(), "old-pending"); err != nil {
		t.Fatal(err)
	}
}
