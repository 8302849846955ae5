package users

import (
	"context"
	"testing"

	"golang.org/x/crypto/argon2"
)

// BenchmarkLoginOWASP: one password check of a demo customer with the
// production parameters (m=19 MiB, t=2, p=1).
func BenchmarkLoginOWASP(b *testing.B) {
	m, err := NewMemory(Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for b.Loop() {
		if _, err := m.Authenticate(ctx, "alice", "alice-demo-2025"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkArgon2idRaw is the baseline: one argon2id hash with the same
// parameters, nothing else.
func BenchmarkArgon2idRaw(b *testing.B) {
	salt := make([]byte, 16)
	for b.Loop() {
		argon2.IDKey([]byte("alice-demo-2025"), salt, OWASP.Time, OWASP.MemoryKiB, OWASP.Threads, OWASP.KeyLen)
	}
}

// BenchmarkLoginOWASPParallel: logins per second across all cores, which is
// what caps a login surge (memory bandwidth, 19 MiB per hash).
func BenchmarkLoginOWASPParallel(b *testing.B) {
	m, err := NewMemory(Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := m.Authenticate(ctx, "alice", "alice-demo-2025"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
