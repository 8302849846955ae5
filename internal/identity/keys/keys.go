package keys

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Algorithm is the only signature algorithm the set signs with.
const Algorithm = jose.EdDSA

// ErrUnknownKey means no published key has the key id.
var ErrUnknownKey = errors.New("unknown signing key")

// Clock tells the time; tests pass a fake.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Options configure a Set.
type Options struct {
	// Dir, when set, is where the keys are kept (keys.json, mode 0600), so a
	// restart keeps verifying the tokens signed before it. Empty keeps the
	// keys in memory only.
	Dir string
	// RotateEvery is how long a key signs before the next one takes over.
	// Zero means 24 hours.
	RotateEvery time.Duration
	// RetainFor is how long a retired key stays published: at least the
	// longest lifetime of anything it signed (access and ID tokens) plus
	// the verifiers' clock skew. Zero means one hour.
	RetainFor time.Duration
	// Clock tells the time; nil means the wall clock.
	Clock Clock
}

// Key is one Ed25519 key pair.
type Key struct {
	ID        string             `json:"kid"`
	Private   ed25519.PrivateKey `json:"private"`
	Created   time.Time          `json:"created"`
	RetiredAt time.Time          `json:"retired_at,omitzero"` // zero while current or next
}

// Public returns the key's public half.
func (k Key) Public() ed25519.PublicKey { return k.Private.Public().(ed25519.PublicKey) }

// JWK returns the public key as a JSON Web Key.
func (k Key) JWK() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.Public(), KeyID: k.ID, Algorithm: string(Algorithm), Use: "sig"}
}

type state struct {
	Current Key   `json:"current"`
	Next    Key   `json:"next"`
	Retired []Key `json:"retired,omitempty"`
}

// Set is the provider's key set. It is safe for concurrent use.
type Set struct {
	opts Options
	mu   sync.RWMutex
	st   state
	// pub is the published keys by id, rebuilt on every change so that
	// lookups on the verification path take only a read lock.
	pub map[string]ed25519.PublicKey
}

// Open loads the set from opts.Dir, or creates it.
func Open(opts Options) (*Set, error) {
	if opts.RotateEvery <= 0 {
		opts.RotateEvery = 24 * time.Hour
	}
	if opts.RetainFor <= 0 {
		opts.RetainFor = time.Hour
	}
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	s := &Set{opts: opts}
	loaded, err := s.load()
	if err != nil {
		return nil, err
	}
	if !loaded {
		now := opts.Clock.Now()
		cur, err := newKey(now)
		if err != nil {
			return nil, err
		}
		next, err := newKey(now)
		if err != nil {
			return nil, err
		}
		s.st = state{Current: cur, Next: next}
		if err := s.save(); err != nil {
			return nil, err
		}
	}
	s.index()
	if _, err := s.Rotate(false); err != nil {
		return nil, err
	}
	return s, nil
}

func newKey(now time.Time) (Key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("generate key: %w", err)
	}
	id := make([]byte, 12)
	if _, err := rand.Read(id); err != nil {
		return Key{}, err
	}
	return Key{ID: base64.RawURLEncoding.EncodeToString(id), Private: priv, Created: now.UTC()}, nil
}

// Signing returns the key to sign with now, rotating first when the current
// one has signed for RotateEvery.
func (s *Set) Signing() (Key, error) {
	s.mu.RLock()
	cur := s.st.Current
	s.mu.RUnlock()
	if s.opts.Clock.Now().Sub(cur.Created) < s.opts.RotateEvery {
		return cur, nil
	}
	if _, err := s.Rotate(false); err != nil {
		return Key{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.Current, nil
}

// Rotate makes the next key current when the current one is due (or at once
// when force is set), drops retired keys past RetainFor and persists the
// result. It reports whether the current key changed.
func (s *Set) Rotate(force bool) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Clock.Now()
	changed := false
	if force || now.Sub(s.st.Current.Created) >= s.opts.RotateEvery {
		next, err := newKey(now)
		if err != nil {
			return false, err
		}
		old := s.st.Current
		old.RetiredAt = now.UTC()
		s.st.Retired = append(s.st.Retired, old)
		s.st.Current = s.st.Next
		// The next key starts its term now, not when it was generated.
		s.st.Current.Created = now.UTC()
		s.st.Next = next
		changed = true
	}
	kept := s.st.Retired[:0]
	for _, k := range s.st.Retired {
		if now.Sub(k.RetiredAt) < s.opts.RetainFor {
			kept = append(kept, k)
		} else {
			changed = true
		}
	}
	s.st.Retired = kept
	if !changed {
		return false, nil
	}
	s.index()
	return true, s.save()
}

// index rebuilds the published-key map; the caller holds the write lock.
func (s *Set) index() {
	pub := make(map[string]ed25519.PublicKey, 2+len(s.st.Retired))
	for _, k := range s.published() {
		pub[k.ID] = k.Public()
	}
	s.pub = pub
}

func (s *Set) published() []Key {
	out := []Key{s.st.Current, s.st.Next}
	return append(out, s.st.Retired...)
}

// Published returns every key a verifier must know: current, next and the
// retired ones still inside their retention.
func (s *Set) Published() []Key {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.published()
}

// JWKS returns the published keys as a JSON Web Key Set.
func (s *Set) JWKS() jose.JSONWebKeySet {
	var set jose.JSONWebKeySet
	for _, k := range s.Published() {
		set.Keys = append(set.Keys, k.JWK())
	}
	return set
}

// Lookup returns the published public key with the id.
func (s *Set) Lookup(kid string) (ed25519.PublicKey, error) {
	s.mu.RLock()
	k, ok := s.pub[kid]
	s.mu.RUnlock()
	if !ok {
		return nil, ErrUnknownKey
	}
	return k, nil
}

func (s *Set) path() string { return filepath.Join(s.opts.Dir, "keys.json") }

func (s *Set) load() (bool, error) {
	if s.opts.Dir == "" {
		return false, nil
	}
	b, err := os.ReadFile(s.path())
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read signing keys: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return false, fmt.Errorf("parse %s: %w", s.path(), err)
	}
	for _, k := range append([]Key{st.Current, st.Next}, st.Retired...) {
		if len(k.Private) != ed25519.PrivateKeySize || k.ID == "" {
			return false, fmt.Errorf("parse %s: malformed key %q", s.path(), k.ID)
		}
	}
	s.st = st
	return true, nil
}

// save writes the state atomically (temporary file, fsync, rename); the
// caller holds the write lock or is the constructor.
func (s *Set) save() error {
	if s.opts.Dir == "" {
		return nil
	}
	if err := os.MkdirAll(s.opts.Dir, 0o700); err != nil {
		return fmt.Errorf("create key directory: %w", err)
	}
	b, err := json.Marshal(s.st)
	if err != nil {
		return err
	}
	tmp := s.path() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write signing keys: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write signing keys: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write signing keys: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write signing keys: %w", err)
	}
	if err := os.Rename(tmp, s.path()); err != nil {
		return fmt.Errorf("write signing keys: %w", err)
	}
	return nil
}
