package postgres_test

import (
	"context"
	"crypto/rand"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/rempart/rempart/internal/journal"
	"github.com/rempart/rempart/internal/journal/journaltest"
	"github.com/rempart/rempart/internal/journal/postgres"
)

// testKey seals every test journal.
var testKey = []byte("0123456789abcdef0123456789abcdef")

// newSchema names a schema of the test's own, dropped when the test ends.
func newSchema(t *testing.T) (url, schema string) {
	url = os.Getenv("DATABASE_URL")
	if url == "" {
		t.Skip("DATABASE_URL not set: skipping PostgreSQL journal tests")
	}
	schema = "journaltest_" + rand.Text()[:12]
	t.Cleanup(func() {
		ctx := context.Background()
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return url, schema
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
