package keys

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// KEKSize is the length of a key-encryption key in bytes (AES-256).
const KEKSize = 32

// ErrKEK means the key-encryption key is missing, malformed or not the one
// the stored set was sealed with.
var ErrKEK = errors.New("key-encryption key unusable")

// sealMagic starts a sealed set; a set in clear is JSON and starts with '{'.
var sealMagic = []byte("rempart-keys-v1\x00")

// sealAD binds the ciphertext to what it is.
var sealAD = []byte("rempart signing keys")

// ParseKEK decodes a key-encryption key given as standard base64.
func ParseKEK(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", ErrKEK)
	}
	if len(k) != KEKSize {
		return nil, fmt.Errorf("%d bytes, want %d: %w", len(k), KEKSize, ErrKEK)
	}
	return k, nil
}

type sealer struct{ aead cipher.AEAD }

func newSealer(kek []byte) (*sealer, error) {
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("key-encryption key is %d bytes, want %d: %w", len(kek), KEKSize, ErrKEK)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(plain []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	rand.Read(nonce)
	out := append(bytes.Clone(sealMagic), nonce...)
	return s.aead.Seal(out, nonce, plain, sealAD)
}

func sealed(b []byte) bool { return bytes.HasPrefix(b, sealMagic) }

func (s *sealer) open(b []byte) ([]byte, error) {
	b = b[len(sealMagic):]
	n := s.aead.NonceSize()
	if len(b) < n+s.aead.Overhead() {
		return nil, fmt.Errorf("sealed key set truncated: %w", ErrKEK)
	}
	plain, err := s.aead.Open(nil, b[:n], b[n:], sealAD)
	if err != nil {
		return nil, fmt.Errorf("the key-encryption key does not open the stored signing keys (every node needs the same one): %w", ErrKEK)
	}
	return plain, nil
}
