package users

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// cheap keeps the test fast; the property does not depend on the cost.
var cheap = Params{MemoryKiB: 8, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// TestOneHashPerCheck: every password check costs one hash, whether the id
// exists or not, whether a derived customer was seen before or not — the
// work, not the clock, is what the test holds equal.
func TestOneHashPerCheck(t *testing.T) {
	m, err := NewMemory(Options{Derived: 1000, Params: cheap})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name, id, password string
		want               error
	}{
		{"demo customer", "alice", "alice-demo-2025", nil},
		{"demo customer, wrong password", "alice", "guess", ErrBadPassword},
		{"derived customer, first login", "C00000042", DerivedPassword("C00000042"), nil},
		{"derived customer, again", "C00000042", DerivedPassword("C00000042"), nil},
		{"derived customer, wrong password after a login", "C00000042", "guess", ErrBadPassword},
		{"derived customer, wrong password first", "C00000043", "guess", ErrBadPassword},
		{"derived customer after a wrong one", "C00000043", DerivedPassword("C00000043"), nil},
		{"unknown id", "mallory", "guess", ErrNotFound},
		{"derived id out of range", "C00005000", DerivedPassword("C00005000"), ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := m.hashes.Load()
			_, err := m.Authenticate(ctx, tc.id, tc.password)
			if !errors.Is(err, tc.want) && !(err == nil && tc.want == nil) {
				t.Fatalf("Authenticate = %v, want %v", err, tc.want)
			}
			if n := m.hashes.Load() - before; n != 1 {
				t.Fatalf("the check cost %d hashes, want 1", n)
			}
		})
	}
}

// BenchmarkCheckByKindOfID shows the timing the test above guarantees in
// work: an unknown id, a demo customer and a derived customer seen for the
// first time cost the same (OWASP parameters).
func BenchmarkCheckByKindOfID(b *testing.B) {
	ctx := context.Background()
	for _, tc := range []struct{ name, id string }{
		{"unknown", "nobody-here"}, {"demo", "alice"}, {"derived-first-seen", ""},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m, err := NewMemory(Options{Derived: 10_000_000})
			if err != nil {
				b.Fatal(err)
			}
			i := 0
			for b.Loop() {
				id := tc.id
				if id == "" {
					i++
					id = fmt.Sprintf("C%08d", i) // a new customer every time: never cached
				}
				m.Authenticate(ctx, id, "wrong-password")
			}
		})
	}
}
