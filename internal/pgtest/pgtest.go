// Package pgtest gives a test against the PostgreSQL at DATABASE_URL a
// schema of its own, dropped when the test ends; without DATABASE_URL the
// test skips with a one-line reason.
package pgtest

import (
	"context"
	"crypto/rand"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Schema returns DATABASE_URL and a fresh schema name starting with prefix,
// or skips t (what names the tests being skipped).
func Schema(t testing.TB, prefix, what string) (url, schema string) {
	t.Helper()
	url = os.Getenv("DATABASE_URL")
	if url == "" {
		t.Skip("DATABASE_URL not set: skipping PostgreSQL " + what + " tests")
	}
	schema = prefix + strings.ToLower(rand.Text()[:12])
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
