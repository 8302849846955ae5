package users

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestAuthenticate(t *testing.T) {
	m, err := NewMemory(Options{Params: Fast, Derived: 100})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name, id, pw string
		want         error
	}{
		{"demo", "alice", "alice-demo-2025", nil},
		{"wrong password", "alice", "alice-demo-2024", ErrBadPassword},
		{"derived", "C00000042", "demo-C00000042", nil},
		{"derived wrong", "C00000042", "demo-C00000043", ErrBadPassword},
		{"derived out of range", "C00000100", "demo-C00000100", ErrNotFound},
		{"unknown", "mallory", "x", ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := m.Authenticate(ctx, tc.id, tc.pw)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if err == nil && (u.ID != tc.id || u.Phone == "") {
				t.Fatalf("user = %+v", u)
			}
		})
	}
}

func TestStuckWaitsForContext(t *testing.T) {
	m, _ := NewMemory(Options{Params: Fast})
	m.SetStuck(true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := m.Authenticate(ctx, "alice", "alice-demo-2025"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stuck directory answered: %v", err)
	}
	m.SetStuck(false)
	if _, err := m.Authenticate(context.Background(), "alice", "alice-demo-2025"); err != nil {
		t.Fatal(err)
	}
}

func TestHashFormatAndOWASPDefaults(t *testing.T) {
	h, err := Hash("pw", OWASP)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q does not carry the OWASP parameters", h)
	}
	if ok, err := Verify("pw", h); !ok || err != nil {
		t.Fatalf("Verify = %v, %v", ok, err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(HashWithSalt("pw", []byte("0123456789abcdef"), Fast))
	f.Add("$argon2id$v=19$m=99999999,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2i$v=19$m=1,t=1,p=1$$")
	f.Fuzz(func(t *testing.T, s string) {
		p, salt, key, err := Decode(s)
		if err != nil {
			return
		}
		if p.MemoryKiB > maxMemoryKiB || len(salt) == 0 || len(key) == 0 {
			t.Fatalf("Decode accepted %q with %+v", s, p)
		}
	})
}

func TestSetStuckTwiceStaysStuck(t *testing.T) {
	m, _ := NewMemory(Options{Params: Fast})
	m.SetStuck(true)
	m.SetStuck(true)
	if !m.Stuck() {
		t.Fatal("not stuck")
	}
	m.SetStuck(false)
	if m.Stuck() {
		t.Fatal("still stuck")
	}
}

// TestHashesPerSecond compares costs, not times: a hash of 64 times the
// memory is far slower on any machine.
func TestHashesPerSecond(t *testing.T) {
	heavy := Fast
	heavy.MemoryKiB *= 64
	fast, slow := HashesPerSecond(Fast, 1), HashesPerSecond(heavy, 1)
	if !(fast > 4*slow) || slow <= 0 {
		t.Errorf("%.0f hashes/s at %d KiB, %.0f at %d KiB: want the first well above the second", fast, Fast.MemoryKiB, slow, heavy.MemoryKiB)
	}
}

// TestMaxHashes holds the only hash slot: a login waits for it, until its
// context ends, and goes through once the slot is free.
func TestMaxHashes(t *testing.T) {
	m, err := NewMemory(Options{Params: Fast, Derived: 10, MaxHashes: 1})
	if err != nil {
		t.Fatal(err)
	}
	m.hashing <- struct{}{} // a check under way
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := m.Authenticate(ctx, "C00000001", DerivedPassword("C00000001")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("with the slot taken: %v, want the context's deadline", err)
	}
	<-m.hashing
	if _, err := m.Authenticate(context.Background(), "C00000001", DerivedPassword("C00000001")); err != nil {
		t.Fatalf("with the slot free: %v", err)
	}
	if len(m.hashing) != 0 {
		t.Error("the slot was not given back")
	}
}
