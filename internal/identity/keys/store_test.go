package keys_test

import (
	"testing"

	"github.com/rempart/rempart/internal/identity/keys"
	"github.com/rempart/rempart/internal/identity/keys/keystest"
)

func TestMemoryConformance(t *testing.T) {
	keystest.RunTests(t, func(*testing.T) (keys.Store, func() keys.Store) {
		m := keys.NewMemory()
		return m, func() keys.Store { return m }
	})
}

func TestFileConformance(t *testing.T) {
	keystest.RunTests(t, func(t *testing.T) (keys.Store, func() keys.Store) {
		dir := t.TempDir()
		return keys.NewFile(dir), func() keys.Store { return keys.NewFile(dir) }
	})
}
