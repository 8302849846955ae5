package journal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Entries carry card numbers (a stand-in's request and decision) and
// balances (the core's answer), so backends never store the byte fields of
// an entry in clear: each is sealed with AES-256-GCM under the journal key.

// KeySize is the length of a journal key in bytes (AES-256).
const KeySize = 32

// KeyFile is the name of the journal key in the data directory.
const KeyFile = "journal.key"

// ErrKey means the journal key is missing, malformed, too widely readable,
// or not the key the journal was written with.
var ErrKey = errors.New("journal key unusable")

// Fields of an entry that are sealed; each is bound to its field name, so a
// sealed decision cannot be read back as a request body.
const (
	FieldRequest  = "request"
	FieldDecision = "decision"
	FieldResult   = "result"
)

// sealVersion is the first byte of every sealed field. A new key or a new
// algorithm gets a new version, so a journal can hold both while it turns
// over.
const sealVersion = 1

// Overhead is how many bytes sealing adds to a field: the version, the
// random nonce and the GCM tag.
const Overhead = 1 + 12 + 16

// Sealer encrypts and authenticates the byte fields of entries. It is safe
// for concurrent use.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer returns a sealer for a KeySize-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("key is %d bytes, want %d: %w", len(key), KeySize, ErrKey)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// additional binds a sealed field to its entry and to the field it is: moved
// to another entry or another column, it no longer opens.
func additional(key, field string) []byte {
	return []byte("rempart-journal\x00" + field + "\x00" + key)
}

// Seal returns plaintext sealed for the field of the entry with key: the
// version, a random nonce, then the ciphertext and its tag. An empty field
// stays empty: it hides nothing, and backends read it back as nil.
func (s *Sealer) Seal(key, field string, plaintext []byte) []byte {
	if len(plaintext) == 0 {
		return nil
	}
	out := make([]byte, 1+s.aead.NonceSize(), Overhead+len(plaintext))
	out[0] = sealVersion
	// A 96-bit random nonce per field: under NIST's bound of 2^32 messages
	// per key, far above what a journal seals between key changes.
	if _, err := io.ReadFull(rand.Reader, out[1:]); err != nil {
		panic("journal: no randomness for a nonce: " + err.Error()) // crypto/rand never fails on Linux
	}
	return s.aead.Seal(out, out[1:], plaintext, additional(key, field))
}

// Open returns the plaintext of a field sealed by Seal for the same entry
// key and field, or an error wrapping ErrKey when it is not one: another
// key, another entry, altered bytes.
func (s *Sealer) Open(key, field string, sealed []byte) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, nil
	}
	n := s.aead.NonceSize()
	if len(sealed) < Overhead || sealed[0] != sealVersion {
		return nil, fmt.Errorf("entry %s: %s field is not sealed by this version: %w", key, field, ErrKey)
	}
	plain, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], additional(key, field))
	if err != nil {
		return nil, fmt.Errorf("entry %s: %s field does not open with this key: %w", key, field, ErrKey)
	}
	return plain, nil
}

// Sealed is the stored form of an entry's byte fields.
type Sealed struct {
	Request, Decision, Result []byte
}

// SealEntry seals the byte fields of e, for a backend to store.
func (s *Sealer) SealEntry(e Entry) Sealed {
	return Sealed{
		Request:  s.Seal(e.Key, FieldRequest, e.Request.Body),
		Decision: s.Seal(e.Key, FieldDecision, e.Decision),
		Result:   s.Seal(e.Key, FieldResult, e.Result.Body),
	}
}

// OpenEntry sets the byte fields of e from their stored form; e.Key must be
// set. An empty field is nil.
func (s *Sealer) OpenEntry(e *Entry, stored Sealed) error {
	var err error
	if e.Request.Body, err = s.Open(e.Key, FieldRequest, stored.Request); err != nil {
		return err
	}
	if e.Decision, err = s.Open(e.Key, FieldDecision, stored.Decision); err != nil {
		return err
	}
	e.Result.Body, err = s.Open(e.Key, FieldResult, stored.Result)
	return err
}

// ParseKey decodes a key given as standard base64 (REMPART_JOURNAL_KEY).
func ParseKey(b64 string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return nil, fmt.Errorf("key is not base64: %w", ErrKey)
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("key decodes to %d bytes, want %d: %w", len(key), KeySize, ErrKey)
	}
	return key, nil
}

// LoadKey reads a key file: exactly KeySize raw bytes, readable by its
// owner only. A file others may read is refused rather than used.
func LoadKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %#o, readable by others: chmod 600 it: %w", path, perm, ErrKey)
	}
	if !st.Mode().IsRegular() || st.Size() != KeySize {
		return nil, fmt.Errorf("key file %s is %d bytes, want a file of exactly %d: %w", path, st.Size(), KeySize, ErrKey)
	}
	key := make([]byte, KeySize)
	if _, err := io.ReadFull(f, key); err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return key, nil
}

// LoadOrCreateKey reads the key file at path, creating it (mode 0600, a
// fresh random key, synced to disk) if it does not exist yet. The key is
// written to a temporary file and linked into place, so a crash never
// leaves a short key file and two processes starting together share one.
func LoadOrCreateKey(path string) ([]byte, error) {
	key, err := LoadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key = make([]byte, KeySize)
	rand.Read(key)
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".journal-key-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("create key file: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(key)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("create key file %s: %w", path, err)
	}
	if err := os.Link(f.Name(), path); errors.Is(err, fs.ErrExist) {
		// Another process created it first: use theirs.
		return LoadKey(path)
	} else if err != nil {
		return nil, fmt.Errorf("create key file %s: %w", path, err)
	}
	// The key must outlive a power loss as surely as the entries it seals.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return key, nil
}
