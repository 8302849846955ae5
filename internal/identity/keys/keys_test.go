package keys

import (
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestRotationKeepsRetiredKeysForRetention(t *testing.T) {
	clk := &fakeClock{t: time.Date(2025, 12, 22, 8, 0, 0, 0, time.UTC)}
	s, err := Open(Options{RotateEvery: time.Hour, RetainFor: 30 * time.Minute, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := s.Signing()
	next := s.Published()[1]
	if len(s.Published()) != 2 {
		t.Fatalf("published %d keys, want current and next", len(s.Published()))
	}
	clk.Add(time.Hour)
	second, _ := s.Signing()
	if second.ID == first.ID || second.ID != next.ID {
		t.Fatalf("after RotateEvery the next key should sign: got %s, first %s, next %s", second.ID, first.ID, next.ID)
	}
	if _, err := s.Lookup(first.ID); err != nil {
		t.Fatalf("retired key unpublished too early: %v", err)
	}
	clk.Add(29 * time.Minute)
	s.Rotate(false)
	if _, err := s.Lookup(first.ID); err != nil {
		t.Fatalf("retired key unpublished before RetainFor: %v", err)
	}
	clk.Add(2 * time.Minute)
	s.Rotate(false)
	if _, err := s.Lookup(first.ID); err == nil {
		t.Fatal("retired key still published after RetainFor")
	}
}

func TestPersistsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	a, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ka, _ := a.Signing()
	b, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := b.Signing()
	if ka.ID != kb.ID || !ka.Private.Equal(kb.Private) {
		t.Fatal("restart changed the signing key")
	}
	if len(b.JWKS().Keys) != 2 {
		t.Fatalf("JWKS has %d keys, want 2", len(b.JWKS().Keys))
	}
}
