package keys

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
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
	s, err := Open(t.Context(), Options{RotateEvery: time.Hour, RetainFor: 30 * time.Minute, Clock: clk})
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
	s.Rotate(t.Context(), false)
	if _, err := s.Lookup(first.ID); err != nil {
		t.Fatalf("retired key unpublished before RetainFor: %v", err)
	}
	clk.Add(2 * time.Minute)
	s.Rotate(t.Context(), false)
	if _, err := s.Lookup(first.ID); err == nil {
		t.Fatal("retired key still published after RetainFor")
	}
}

func TestPersistsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	a, err := Open(t.Context(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ka, _ := a.Signing()
	b, err := Open(t.Context(), Options{Dir: dir})
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

// A keys.json of an older rempart (the set in clear, no version, no device
// key) keeps its keys, takes the device key given and is sealed once a KEK is.
func TestLegacyFileUpgraded(t *testing.T) {
	dir := t.TempDir()
	old, err := Open(t.Context(), Options{Store: NewMemory()})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := old.snapshot()
	st.Device = nil
	b, _ := json.Marshal(st)
	if err := os.WriteFile(filepath.Join(dir, "keys.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	dev := bytes.Repeat([]byte{3}, DeviceKeySize)
	kek := bytes.Repeat([]byte{5}, KEKSize)
	s, err := Open(t.Context(), Options{Dir: dir, DeviceKey: dev, KEK: kek})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := s.Signing()
	if k.ID != st.Current.ID || !bytes.Equal(s.DeviceKey(), dev) {
		t.Fatal("the upgrade lost the signing key or the device key")
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "keys.json"))
	if bytes.Contains(raw, []byte(st.Current.ID)) {
		t.Fatal("keys.json still in clear after the upgrade with a KEK")
	}
}
