package users

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's cost parameters.
type Params struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
	KeyLen    uint32
	SaltLen   uint32
}

// OWASP are the parameters of the OWASP Password Storage Cheat Sheet's
// first argon2id option: m=19 MiB, t=2, p=1.
var OWASP = Params{MemoryKiB: 19 * 1024, Time: 2, Threads: 1, KeyLen: 32, SaltLen: 16}

// Fast are parameters for tests only: a hash in microseconds.
var Fast = Params{MemoryKiB: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

// ErrMalformedHash means an encoded hash is not in the PHC format Hash writes.
var ErrMalformedHash = errors.New("malformed argon2id hash")

// Hash returns password's argon2id hash in PHC string format
// ($argon2id$v=19$m=…,t=…,p=…$salt$key) with a fresh random salt.
func Hash(password string, p Params) (string, error) {
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return HashWithSalt(password, salt, p), nil
}

// HashWithSalt is Hash with a caller-chosen salt.
func HashWithSalt(password string, salt []byte, p Params) string {
	key := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, p.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// maxMemoryKiB bounds the memory a stored hash can make Verify allocate: a
// corrupted or hostile record must not exhaust the process (1 GiB).
const maxMemoryKiB = 1 << 20

// Decode parses a PHC argon2id string.
func Decode(encoded string) (p Params, salt, key []byte, err error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, ErrMalformedHash
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, nil, nil, ErrMalformedHash
	}
	var threads uint32
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &threads); err != nil || n != 3 {
		return p, nil, nil, ErrMalformedHash
	}
	if p.Time == 0 || p.Time > 64 || threads == 0 || threads > 255 || p.MemoryKiB < 8*threads || p.MemoryKiB > maxMemoryKiB {
		return p, nil, nil, ErrMalformedHash
	}
	p.Threads = uint8(threads)
	if salt, err = base64.RawStdEncoding.Strict().DecodeString(parts[4]); err != nil || len(salt) < 8 || len(salt) > 64 {
		return p, nil, nil, ErrMalformedHash
	}
	if key, err = base64.RawStdEncoding.Strict().DecodeString(parts[5]); err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, ErrMalformedHash
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	return p, salt, key, nil
}

// Verify reports whether password matches encoded, comparing in constant time.
func Verify(password, encoded string) (bool, error) {
	p, salt, key, err := Decode(encoded)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.MemoryKiB, p.Threads, p.KeyLen)
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// HashesPerSecond measures how many password checks at p procs processors
// can do a second: the fastest of three hashes, times procs (argon2id at one
// thread is one core's work). A waiting room in front of logins starts from
// it, so the first surge after a start meets the machine's capacity, not a
// guess.
func HashesPerSecond(p Params, procs int) float64 {
	salt := make([]byte, p.SaltLen)
	best := time.Duration(math.MaxInt64)
	for range 3 {
		start := time.Now()
		HashWithSalt("rempart capacity probe", salt, p)
		best = min(best, time.Since(start))
	}
	return float64(max(procs, 1)) / max(best.Seconds(), 1e-6)
}
