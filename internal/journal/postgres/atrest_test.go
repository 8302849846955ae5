package postgres_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rempart/rempart/internal/journal"
	"github.com/rempart/rempart/internal/journal/postgres"
)

const pan = "4971111111111110"

func standIn(key string) journal.Entry {
	return journal.Entry{Key: key, Kind: journal.KindStandIn, Upstream: "estate",
		Request: journal.Request{Method: "POST", Path: "/v1/cards/authorize", ContentType: "application/json",
			Body: []byte(`{"card":"` + pan + `","amount":3000,"merchant":"Boulangerie","channel":"shop"}`)},
		Decision: []byte(`{"key":"` + key + `","kind":"card","card":"` + pan + `","amount":3000,"approved":true}`),
		Created:  time.Now()}
}

// rawRows returns every row of the journal table as PostgreSQL prints it,
// bytea columns included.
func rawRows(t *testing.T, url, schema string) []string {
	t.Helper()
	c, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(t.Context())
	rows, err := c.Query(t.Context(), `SELECT t::text FROM `+pgx.Identifier{schema, "journal"}.Sanitize()+` t`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func noCardNumber(t *testing.T, url, schema string, want int) {
	t.Helper()
	rows := rawRows(t, url, schema)
	if len(rows) != want {
		t.Fatalf("%d rows, want %d", len(rows), want)
	}
	// A bytea prints as hex: look for the number in hex too.
	hexPAN := []byte{}
	for _, c := range []byte(pan) {
		hexPAN = append(hexPAN, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
	}
	for _, r := range rows {
		if strings.Contains(r, pan) || strings.Contains(r, string(hexPAN)) {
			t.Errorf("a row holds the card number in clear: %s", r)
		}
	}
}

func TestNoCardNumberAtRest(t *testing.T) {
	url, schema := newSchema(t)
	s, err := postgres.Open(t.Context(), url, postgres.Options{Schema: schema, Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
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
	noCardNumber(t, url, schema, 1)
}

func TestKeyRefused(t *testing.T) {
	url, schema := newSchema(t)
	if _, err := postgres.Open(t.Context(), url, postgres.Options{Schema: schema}); !errors.Is(err, journal.ErrKey) {
		t.Fatalf("Open without a key: err = %v, want ErrKey", err)
	}
	s, err := postgres.Open(t.Context(), url, postgres.Options{Schema: schema, Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(t.Context(), standIn("k")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	other := bytes.Repeat([]byte{9}, journal.KeySize)
	if _, err := postgres.Open(t.Context(), url, postgres.Options{Schema: schema, Key: other}); !errors.Is(err, journal.ErrKey) ||
		!strings.Contains(err.Error(), "every node needs the same one") {
		t.Fatalf("Open with another node's key: err = %v, want ErrKey", err)
	}
}

// TestLegacyTableSealed opens a table of the first layout, in clear.
func TestLegacyTableSealed(t *testing.T) {
	url, schema := newSchema(t)
	c, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(t.Context())
	table := pgx.Identifier{schema, "journal"}.Sanitize()
	for _, q := range []string{
		`CREATE SCHEMA ` + pgx.Identifier{schema}.Sanitize(),
		`CREATE TABLE ` + table + ` (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
			key TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, upstream TEXT NOT NULL, method TEXT NOT NULL,
			path TEXT NOT NULL, content_type TEXT NOT NULL, body BYTEA NOT NULL, decision BYTEA NOT NULL,
			state TEXT NOT NULL CHECK (state IN ('pending', 'done')), created BIGINT NOT NULL,
			completed BIGINT NOT NULL DEFAULT 0, result_status INTEGER NOT NULL DEFAULT 0,
			result_type TEXT NOT NULL DEFAULT '', result_body BYTEA NOT NULL DEFAULT ''::bytea)`,
	} {
		if _, err := c.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	old := standIn("old-pending")
	if _, err := c.Exec(t.Context(), `INSERT INTO `+table+` (key, kind, upstream, method, path, content_type,
		body, decision, state, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9)`,
		old.Key, old.Kind, old.Upstream, old.Request.Method, old.Request.Path, old.Request.ContentType,
		old.Request.Body, old.Decision, old.Created.UnixNano()); err != nil {
		t.Fatal(err)
	}
	if rows := rawRows(t, url, schema); len(rows) != 1 || !strings.Contains(rows[0], "card") {
		t.Fatalf("the legacy row is not in clear, the test proves nothing: %v", rows)
	}

	s, err := postgres.Open(t.Context(), url, postgres.Options{Schema: schema, Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.List(t.Context(), journal.Filter{State: journal.Pending, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !bytes.Equal(got[0].Request.Body, old.Request.Body) || !bytes.Equal(got[0].Decision, old.Decision) {
		t.Fatalf("pending after migration: %+v", got)
	}
	noCardNumber(t, url, schema, 1)
	// An older rempart, reading or writing the clear column, now fails.
	if _, err := c.Exec(t.Context(), `SELECT body FROM `+table); err == nil {
		t.Fatal("the clear column is still there")
	}
	// A second node opening the table finds nothing to migrate.
	again, err := postgres.Open(t.Context(), url, postgres.Options{Schema: schema, Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	again.Close()
}
