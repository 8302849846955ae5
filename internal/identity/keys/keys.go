package keys

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Algorithm is the only signature algorithm the set signs with.
const Algorithm = jose.EdDSA

// DeviceKeySize is the length of the device-cookie key.
const DeviceKeySize = 32

// ErrUnknownKey means no published key has the key id.
var ErrUnknownKey = errors.New("unknown signing key")

// Clock tells the time; tests pass a fake.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Options configure a Set.
type Options struct {
	// Store keeps the set. Nil means a File in Dir, or Memory when Dir is
	// empty.
	Store Store
	// Dir, when Store is nil, is where the keys are kept (keys.json, mode
	// 0600), so a restart keeps verifying the tokens signed before it.
	// Empty keeps the keys in memory only.
	Dir string
	// KEK is the key-encryption key (KEKSize bytes) the set is sealed with
	// in the store (AES-256-GCM). Nil keeps it in clear, which only a store
	// of the node's own (a 0600 file) may do.
	KEK []byte
	// Shared says other nodes use the Store too: Open then refuses to run
	// without a KEK, and the set reloads every ReloadEvery and when asked
	// for an unknown key id (at most once per MissReloadEvery).
	Shared bool
	// ReloadEvery is how often a shared set reloads (and rotates when due).
	// Zero means one minute; negative never (tests drive Reload).
	ReloadEvery time.Duration
	// MissReloadEvery bounds the reloads an unknown key id triggers, so a
	// flood of tokens with made-up key ids cannot turn into a flood of
	// store reads. Zero means 5 seconds.
	MissReloadEvery time.Duration
	// DeviceKey is the device-cookie key to keep when the stored set has
	// none yet (a key file of an older rempart). Nil draws a new one.
	DeviceKey []byte
	// RotateEvery is how long a key signs before the next one takes over.
	// Zero means 24 hours.
	RotateEvery time.Duration
	// RetainFor is how long a retired key stays published: at least the
	// longest lifetime of anything it signed (access and ID tokens) plus
	// the verifiers' clock skew. Zero means one hour.
	RetainFor time.Duration
	// Clock tells the time; nil means the wall clock.
	Clock Clock
	// Logger hears of rotations and store failures; nil discards.
	Logger *slog.Logger
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
	Current Key    `json:"current"`
	Next    Key    `json:"next"`
	Retired []Key  `json:"retired,omitempty"`
	Device  []byte `json:"device_key,omitempty"`
}

func (st state) clone() state {
	st.Retired = slices.Clone(st.Retired)
	return st
}

// Set is the provider's key set. It is safe for concurrent use.
type Set struct {
	opts  Options
	seal  *sealer // nil: the set is stored in clear
	write sync.Mutex
	mu    sync.RWMutex
	st    state
	ver   uint64
	// pub is the published keys by id, rebuilt on every change so that
	// lookups on the verification path take only a read lock.
	pub map[string]ed25519.PublicKey

	missMu   sync.Mutex
	lastMiss time.Time

	stop chan struct{}
	done chan struct{}
}

// Open loads the set from the store, or creates it there. A shared set
// starts reloading in the background until Close.
func Open(ctx context.Context, opts Options) (*Set, error) {
	if opts.RotateEvery <= 0 {
		opts.RotateEvery = 24 * time.Hour
	}
	if opts.RetainFor <= 0 {
		opts.RetainFor = time.Hour
	}
	if opts.ReloadEvery == 0 {
		opts.ReloadEvery = time.Minute
	}
	if opts.MissReloadEvery <= 0 {
		opts.MissReloadEvery = 5 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Store == nil {
		if opts.Dir != "" {
			opts.Store = NewFile(opts.Dir)
		} else {
			opts.Store = NewMemory()
		}
	}
	s := &Set{opts: opts}
	if opts.KEK != nil {
		var err error
		if s.seal, err = newSealer(opts.KEK); err != nil {
			return nil, err
		}
	} else if opts.Shared {
		return nil, fmt.Errorf("a key store shared by several nodes needs a key-encryption key: %w", ErrKEK)
	}
	if err := s.loadOrCreate(ctx); err != nil {
		return nil, err
	}
	if _, err := s.Rotate(ctx, false); err != nil {
		return nil, err
	}
	if opts.Shared && opts.ReloadEvery > 0 {
		s.stop, s.done = make(chan struct{}), make(chan struct{})
		go s.reloadLoop()
	}
	return s, nil
}

func (s *Set) loadOrCreate(ctx context.Context) error {
	for {
		rec, err := s.opts.Store.Load(ctx)
		if errors.Is(err, ErrNotFound) {
			st, err := s.fresh()
			if err != nil {
				return err
			}
			data, err := s.encode(st)
			if err != nil {
				return err
			}
			err = s.opts.Store.Update(ctx, 0, data)
			if errors.Is(err, ErrConflict) {
				continue // another node created it first: use theirs
			}
			if err != nil {
				return fmt.Errorf("store signing keys: %w", err)
			}
			s.install(st, 1)
			return nil
		}
		if err != nil {
			return fmt.Errorf("load signing keys: %w", err)
		}
		st, err := s.decode(rec.Data)
		if err != nil {
			return err
		}
		s.install(st, rec.Version)
		// Upgrade in place: a set without a device key gets one, a set in
		// clear is sealed once a KEK is given.
		upgrade := len(st.Device) == 0 || (s.seal != nil && !sealed(rec.Data))
		if !upgrade {
			return nil
		}
		_, err = s.mutate(ctx, func(st *state, _ time.Time) (bool, error) {
			if len(st.Device) == 0 {
				if st.Device, err = s.deviceKey(); err != nil {
					return false, err
				}
			}
			return true, nil
		})
		return err
	}
}

func (s *Set) deviceKey() ([]byte, error) {
	if len(s.opts.DeviceKey) == DeviceKeySize {
		return s.opts.DeviceKey, nil
	}
	b := make([]byte, DeviceKeySize)
	_, err := rand.Read(b)
	return b, err
}

func (s *Set) fresh() (state, error) {
	now := s.opts.Clock.Now()
	cur, err := newKey(now)
	if err != nil {
		return state{}, err
	}
	next, err := newKey(now)
	if err != nil {
		return state{}, err
	}
	dev, err := s.deviceKey()
	if err != nil {
		return state{}, err
	}
	return state{Current: cur, Next: next, Device: dev}, nil
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

func (s *Set) encode(st state) ([]byte, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	if s.seal != nil {
		return s.seal.seal(b), nil
	}
	return b, nil
}

func (s *Set) decode(data []byte) (state, error) {
	if sealed(data) {
		if s.seal == nil {
			return state{}, fmt.Errorf("the stored signing keys are sealed and no key-encryption key is given: %w", ErrKEK)
		}
		var err error
		if data, err = s.seal.open(data); err != nil {
			return state{}, err
		}
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return state{}, fmt.Errorf("parse signing keys: %w", err)
	}
	for _, k := range append([]Key{st.Current, st.Next}, st.Retired...) {
		if len(k.Private) != ed25519.PrivateKeySize || k.ID == "" {
			return state{}, fmt.Errorf("parse signing keys: malformed key %q", k.ID)
		}
	}
	if len(st.Device) != 0 && len(st.Device) != DeviceKeySize {
		return state{}, fmt.Errorf("parse signing keys: device key of %d bytes", len(st.Device))
	}
	return st, nil
}

// install makes st the set's state at version ver.
func (s *Set) install(st state, ver uint64) {
	pub := make(map[string]ed25519.PublicKey, 2+len(st.Retired))
	for _, k := range append([]Key{st.Current, st.Next}, st.Retired...) {
		pub[k.ID] = k.Public()
	}
	s.mu.Lock()
	s.st, s.ver, s.pub = st, ver, pub
	s.mu.Unlock()
}

func (s *Set) snapshot() (state, uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.clone(), s.ver
}

// mutate applies change to a copy of the newest state and stores it with a
// compare-and-swap on the version. A node that loses the race reloads what
// the winner stored and applies change again, which finds nothing left to do
// when the winner did it (Dex does the same in server/signer/rotation.go).
// It reports whether change changed anything this node stored.
func (s *Set) mutate(ctx context.Context, change func(st *state, now time.Time) (bool, error)) (bool, error) {
	s.write.Lock()
	defer s.write.Unlock()
	for attempt := 0; ; attempt++ {
		st, ver := s.snapshot()
		changed, err := change(&st, s.opts.Clock.Now())
		if err != nil || !changed {
			return false, err
		}
		data, err := s.encode(st)
		if err != nil {
			return false, err
		}
		err = s.opts.Store.Update(ctx, ver, data)
		if err == nil {
			s.install(st, ver+1)
			return true, nil
		}
		if !errors.Is(err, ErrConflict) || attempt >= 10 {
			return false, fmt.Errorf("store signing keys: %w", err)
		}
		s.opts.Logger.Info("signing keys already changed by another instance; reloading", "version", ver)
		if err := s.reload(ctx); err != nil {
			return false, err
		}
	}
}

// Reload reads the set from the store and installs it when it is newer.
func (s *Set) Reload(ctx context.Context) error {
	s.write.Lock()
	defer s.write.Unlock()
	return s.reload(ctx)
}

// reload is Reload for a caller holding the write lock.
func (s *Set) reload(ctx context.Context) error {
	rec, err := s.opts.Store.Load(ctx)
	if err != nil {
		return fmt.Errorf("reload signing keys: %w", err)
	}
	s.mu.RLock()
	ver := s.ver
	s.mu.RUnlock()
	if rec.Version == ver {
		return nil
	}
	st, err := s.decode(rec.Data)
	if err != nil {
		return err
	}
	s.install(st, rec.Version)
	return nil
}

func (s *Set) reloadLoop() {
	defer close(s.done)
	t := time.NewTicker(s.opts.ReloadEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.Reload(ctx); err != nil {
			s.opts.Logger.Warn("signing keys not reloaded; publishing the last known set", "err", err)
		} else if _, err := s.Rotate(ctx, false); err != nil {
			s.opts.Logger.Warn("signing keys not rotated", "err", err)
		}
		cancel()
	}
}

// Close stops a shared set's background reloads.
func (s *Set) Close() error {
	if s.stop != nil {
		close(s.stop)
		<-s.done
		s.stop = nil
	}
	return nil
}

// Signing returns the key to sign with now, rotating first when the current
// one has signed for RotateEvery. When the store cannot take the rotation it
// keeps signing with the current key (still published everywhere) and logs.
func (s *Set) Signing() (Key, error) {
	s.mu.RLock()
	cur := s.st.Current
	s.mu.RUnlock()
	if s.opts.Clock.Now().Sub(cur.Created) < s.opts.RotateEvery {
		return cur, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.Rotate(ctx, false); err != nil {
		s.opts.Logger.Warn("signing key due for rotation kept", "kid", cur.ID, "err", err)
		return cur, nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.Current, nil
}

// Rotate makes the next key current when the current one is due (or at once
// when force is set), drops retired keys past RetainFor and stores the
// result. It reports whether the current key changed, here or by another
// instance that rotated first (which satisfies force too).
func (s *Set) Rotate(ctx context.Context, force bool) (bool, error) {
	s.mu.RLock()
	before := s.st.Current.ID
	s.mu.RUnlock()
	_, err := s.mutate(ctx, func(st *state, now time.Time) (bool, error) {
		changed := false
		if (force && st.Current.ID == before) || now.Sub(st.Current.Created) >= s.opts.RotateEvery {
			next, err := newKey(now)
			if err != nil {
				return false, err
			}
			old := st.Current
			old.RetiredAt = now.UTC()
			st.Retired = append(st.Retired, old)
			st.Current = st.Next
			// The next key starts its term now, not when it was generated.
			st.Current.Created = now.UTC()
			st.Next = next
			changed = true
		}
		kept := st.Retired[:0]
		for _, k := range st.Retired {
			if now.Sub(k.RetiredAt) < s.opts.RetainFor {
				kept = append(kept, k)
			} else {
				changed = true
			}
		}
		st.Retired = kept
		return changed, nil
	})
	s.mu.RLock()
	after := s.st.Current.ID
	s.mu.RUnlock()
	return after != before, err
}

// Version is the store version of the set this node holds.
func (s *Set) Version() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.ver
}

// DeviceKey returns the device-cookie MAC key, the same on every node
// sharing the store.
func (s *Set) DeviceKey() []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.Device
}

// Published returns every key a verifier must know: current, next and the
// retired ones still inside their retention.
func (s *Set) Published() []Key {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return append([]Key{s.st.Current, s.st.Next}, s.st.Retired...)
}

// JWKS returns the published keys as a JSON Web Key Set.
func (s *Set) JWKS() jose.JSONWebKeySet {
	var set jose.JSONWebKeySet
	for _, k := range s.Published() {
		set.Keys = append(set.Keys, k.JWK())
	}
	return set
}

// Lookup returns the published public key with the id, from memory only.
func (s *Set) Lookup(kid string) (ed25519.PublicKey, error) {
	s.mu.RLock()
	k, ok := s.pub[kid]
	s.mu.RUnlock()
	if !ok {
		return nil, ErrUnknownKey
	}
	return k, nil
}

// PublicKey is Lookup that, on a shared set, reloads once when the id is
// unknown (another node may have rotated since the last reload), at most
// once per MissReloadEvery across all callers.
func (s *Set) PublicKey(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	k, err := s.Lookup(kid)
	if err == nil || !s.opts.Shared {
		return k, err
	}
	// One caller reloads; the others, and every caller inside
	// MissReloadEvery, answer from memory without waiting for it.
	if !s.missMu.TryLock() {
		return s.Lookup(kid)
	}
	now := s.opts.Clock.Now()
	if !s.lastMiss.IsZero() && now.Sub(s.lastMiss) < s.opts.MissReloadEvery {
		s.missMu.Unlock()
		return s.Lookup(kid)
	}
	s.lastMiss = now
	defer s.missMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := s.Reload(ctx); err != nil {
		s.opts.Logger.Warn("signing keys not reloaded for an unknown key id", "err", err)
	}
	return s.Lookup(kid)
}
