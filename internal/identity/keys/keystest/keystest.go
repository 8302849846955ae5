// Package keystest is the conformance suite every keys.Store backend runs:
// the store's compare-and-swap contract, and key sets of several nodes on one
// store agreeing through it.
package keystest

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/identity/keys"
)

// KEK and OtherKEK are test key-encryption keys.
var (
	KEK      = bytes.Repeat([]byte{7}, keys.KEKSize)
	OtherKEK = bytes.Repeat([]byte{9}, keys.KEKSize)
)

// Clock is a fake clock shared by the nodes of a test.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock stopped at a fixed instant.
func NewClock() *Clock { return &Clock{t: time.Date(2025, 12, 22, 8, 0, 0, 0, time.UTC)} }

// Now implements keys.Clock.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Add moves the clock on.
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// RunTests runs the suite; newStore returns an empty store of the test's own
// (a fresh table, directory or instance), and may be called again for a
// second handle on the same store via reopen.
func RunTests(t *testing.T, newStore func(t *testing.T) (store keys.Store, reopen func() keys.Store)) {
	t.Run("CompareAndSwap", func(t *testing.T) { testCompareAndSwap(t, newStore) })
	t.Run("ConcurrentRotationAgrees", func(t *testing.T) { testConcurrentRotation(t, newStore) })
	t.Run("TokenOfOneNodeVerifiesOnAnother", func(t *testing.T) { testCrossNode(t, newStore) })
	t.Run("WrongKEK", func(t *testing.T) { testWrongKEK(t, newStore) })
	t.Run("SealedAtRest", func(t *testing.T) { testSealedAtRest(t, newStore) })
	t.Run("SharedNeedsKEK", func(t *testing.T) {
		st, _ := newStore(t)
		if _, err := keys.Open(t.Context(), keys.Options{Store: st, Shared: true}); !errors.Is(err, keys.ErrKEK) {
			t.Fatalf("shared store without a KEK: err = %v, want ErrKEK", err)
		}
	})
}

func open(t *testing.T, st keys.Store, clk keys.Clock, kek []byte) *keys.Set {
	t.Helper()
	s, err := keys.Open(t.Context(), keys.Options{Store: st, KEK: kek, Shared: true, ReloadEvery: -1,
		RotateEvery: time.Hour, RetainFor: 30 * time.Minute, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testCompareAndSwap(t *testing.T, newStore func(*testing.T) (keys.Store, func() keys.Store)) {
	st, reopen := newStore(t)
	ctx := t.Context()
	if _, err := st.Load(ctx); !errors.Is(err, keys.ErrNotFound) {
		t.Fatalf("Load of an empty store: err = %v, want ErrNotFound", err)
	}
	if err := st.Update(ctx, 1, []byte("x")); !errors.Is(err, keys.ErrConflict) {
		t.Fatalf("Update(1) of an empty store: err = %v, want ErrConflict", err)
	}
	if err := st.Update(ctx, 0, []byte("one")); err != nil {
		t.Fatal(err)
	}
	other := reopen()
	if err := other.Update(ctx, 0, []byte("again")); !errors.Is(err, keys.ErrConflict) {
		t.Fatalf("second create: err = %v, want ErrConflict", err)
	}
	rec, err := other.Load(ctx)
	if err != nil || rec.Version != 1 || string(rec.Data) != "one" {
		t.Fatalf("Load = %d %q, %v; want 1 \"one\"", rec.Version, rec.Data, err)
	}
	if err := other.Update(ctx, 1, []byte("two")); err != nil {
		t.Fatal(err)
	}
	if err := st.Update(ctx, 1, []byte("lost")); !errors.Is(err, keys.ErrConflict) {
		t.Fatalf("stale Update: err = %v, want ErrConflict", err)
	}
	if rec, err := st.Load(ctx); err != nil || rec.Version != 2 || string(rec.Data) != "two" {
		t.Fatalf("Load = %d %q, %v; want 2 \"two\"", rec.Version, rec.Data, err)
	}
}

// Nodes on one store: one concurrent rotation wins, the rest reload it.
func testConcurrentRotation(t *testing.T, newStore func(*testing.T) (keys.Store, func() keys.Store)) {
	st, reopen := newStore(t)
	clk := NewClock()
	a := open(t, st, clk, KEK)
	b := open(t, reopen(), clk, KEK)
	first, _ := a.Signing()
	if kb, _ := b.Signing(); kb.ID != first.ID {
		t.Fatalf("second node signs with %s, first with %s", kb.ID, first.ID)
	}
	if !bytes.Equal(a.DeviceKey(), b.DeviceKey()) || len(a.DeviceKey()) != keys.DeviceKeySize {
		t.Fatal("the nodes do not share one device key")
	}
	next := a.Published()[1]
	clk.Add(time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		set := a
		if i%2 == 1 {
			set = b
		}
		wg.Go(func() {
			if _, err := set.Rotate(t.Context(), false); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, n := range []*keys.Set{a, b} {
		if err := n.Reload(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	ka, _ := a.Signing()
	kb, _ := b.Signing()
	if ka.ID != next.ID || kb.ID != next.ID {
		t.Fatalf("after rotation the nodes sign with %s and %s, want the published next %s", ka.ID, kb.ID, next.ID)
	}
	if a.Version() != b.Version() || a.Version() != 2 {
		t.Fatalf("versions %d and %d, want both 2 (created, rotated once)", a.Version(), b.Version())
	}
	if !sameJWKS(a, b) {
		t.Fatal("the nodes publish different key sets")
	}
	if n := len(a.Published()); n != 3 {
		t.Fatalf("%d keys published, want 3 (current, next, one retired): rotated more than once", n)
	}
}

func sameJWKS(a, b *keys.Set) bool {
	ids := func(s *keys.Set) string {
		var out []string
		for _, k := range s.JWKS().Keys {
			out = append(out, k.KeyID)
		}
		return strings.Join(out, ",")
	}
	return ids(a) == ids(b)
}

// A token signed by node A after A rotated twice (a key B has never seen)
// verifies on B, which reloads on the unknown key id.
func testCrossNode(t *testing.T, newStore func(*testing.T) (keys.Store, func() keys.Store)) {
	st, reopen := newStore(t)
	clk := NewClock()
	a := open(t, st, clk, KEK)
	b := open(t, reopen(), clk, KEK)
	for range 2 {
		if _, err := a.Rotate(t.Context(), true); err != nil {
			t.Fatal(err)
		}
	}
	k, _ := a.Signing()
	if _, err := b.Lookup(k.ID); err == nil {
		t.Fatal("B knew the key without reloading: the test proves nothing")
	}
	msg := []byte("header.payload")
	sig := ed25519.Sign(k.Private, msg)
	pub, err := b.PublicKey(t.Context(), k.ID)
	if err != nil {
		t.Fatalf("B: %v", err)
	}
	if !ed25519.Verify(pub, msg, sig) {
		t.Fatal("B's key for the id does not verify A's signature")
	}
	if !sameJWKS(a, b) {
		t.Fatal("after the reload the nodes publish different key sets")
	}
	// A second unknown id inside MissReloadEvery does not reach the store.
	if _, err := b.PublicKey(t.Context(), "made-up"); !errors.Is(err, keys.ErrUnknownKey) {
		t.Fatalf("made-up key id: err = %v, want ErrUnknownKey", err)
	}
}

func testWrongKEK(t *testing.T, newStore func(*testing.T) (keys.Store, func() keys.Store)) {
	st, reopen := newStore(t)
	open(t, st, NewClock(), KEK)
	_, err := keys.Open(t.Context(), keys.Options{Store: reopen(), KEK: OtherKEK, Shared: true, ReloadEvery: -1})
	if !errors.Is(err, keys.ErrKEK) || !strings.Contains(err.Error(), "every node needs the same one") {
		t.Fatalf("Open with another KEK: err = %v, want ErrKEK saying every node needs the same one", err)
	}
	_, err = keys.Open(t.Context(), keys.Options{Store: reopen()})
	if !errors.Is(err, keys.ErrKEK) {
		t.Fatalf("Open of a sealed set without a KEK: err = %v, want ErrKEK", err)
	}
}

// The store holds no private key or device key in clear.
func testSealedAtRest(t *testing.T, newStore func(*testing.T) (keys.Store, func() keys.Store)) {
	st, _ := newStore(t)
	s := open(t, st, NewClock(), KEK)
	rec, err := st.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	secrets := [][]byte{s.DeviceKey()}
	for _, k := range s.Published() {
		secrets = append(secrets, k.Private.Seed())
	}
	for _, sec := range secrets {
		if bytes.Contains(rec.Data, sec) || bytes.Contains(rec.Data, []byte(base64.StdEncoding.EncodeToString(sec)[:20])) {
			t.Fatal("the stored set holds a secret in clear")
		}
	}
}
