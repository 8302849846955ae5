package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/rempart/rempart/internal/journal"
	"github.com/rempart/rempart/internal/journal/journaltest"
	"github.com/rempart/rempart/internal/journal/sqlite"
)

func TestConformance(t *testing.T) {
	journaltest.RunTests(t, func(t *testing.T) journal.Store {
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "journal.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
