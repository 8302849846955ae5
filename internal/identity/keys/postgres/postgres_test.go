package postgres_test

import (
	"context"
	"crypto/rand"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/rempart/rempart/internal/identity/keys"
	"github.com/rempart/rempart/internal/identity/keys/keystest"
	"github.com/rempart/rempart/internal/identity/keys/postgres"
)

func TestConformance(t *testing.T) {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		t.Skip("DATABASE_URL not set: skipping PostgreSQL key store tests")
	}
	keystest.RunTests(t, func(t *testing.T) (keys.Store, func() keys.Store) {
		schema := "keystest_" + strings.ToLower(rand.Text()[:12])
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
		open := func() keys.Store {
			s, err := postgres.Open(t.Context(), url, postgres.Options{Schema: schema})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		return open(), open
	})
}
