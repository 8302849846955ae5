package postgres_test

import (
	"testing"

	"github.com/rempart/rempart/internal/identity/keys"
	"github.com/rempart/rempart/internal/identity/keys/keystest"
	"github.com/rempart/rempart/internal/identity/keys/postgres"
	"github.com/rempart/rempart/internal/pgtest"
)

func TestConformance(t *testing.T) {
	keystest.RunTests(t, func(t *testing.T) (keys.Store, func() keys.Store) {
		url, schema := pgtest.Schema(t, "keystest_", "key store")
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
