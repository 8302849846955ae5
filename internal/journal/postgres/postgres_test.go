package postgres_test

import (
	"os"
	"testing"

	"github.com/rempart/rempart/internal/journal"
	"github.com/rempart/rempart/internal/journal/journaltest"
	"github.com/rempart/rempart/internal/journal/postgres"
	"github.com/rempart/rempart/internal/pgtest"
)

// testKey seals every test journal.
var testKey = []byte("0123456789abcdef0123456789abcdef")

// newSchema names a schema of the test's own, dropped when the test ends.
func newSchema(t *testing.T) (url, schema string) {
	return pgtest.Schema(t, "journaltest_", "journal")
}

// newStore opens a store in a schema of its own.
func newStore(t *testing.T) journal.Store {
	url, schema := newSchema(t)
	s, err := postgres.Open(t.Context(), url, postgres.Options{Schema: schema, Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	if os.Getenv("DATABASE_URL") == "" {
		t.Skip("DATABASE_URL not set: skipping PostgreSQL journal tests")
	}
	journaltest.RunTests(t, newStore)
}
