package memory

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/rempart/rempart/internal/session"
)

// interner gives the values of a small vocabulary (client IDs, AMR lists)
// 16-bit codes, so each session stores two bytes instead of a string or a
// slice. Codes are never freed: the vocabularies are the registered clients
// and the authentication methods, which a customer cannot grow. Code 0 is
// the zero value.
type interner[T any] struct {
	what  string
	mu    sync.RWMutex
	codes map[string]uint16
	// vals is replaced, never modified, so readers need no lock: sessions
	// are read far more often than a new value appears.
	vals atomic.Pointer[[]T]
}

func newInterner[T any](what string) *interner[T] {
	in := &interner[T]{what: what, codes: map[string]uint16{"": 0}}
	vals := make([]T, 1)
	in.vals.Store(&vals)
	return in
}

// code returns key's code, adding mk() as its value the first time.
func (in *interner[T]) code(key string, mk func() T) (uint16, error) {
	in.mu.RLock()
	c, ok := in.codes[key]
	in.mu.RUnlock()
	if ok {
		return c, nil
	}
	return in.add(key, mk)
}

// codeBytes is code for a key built in a scratch buffer: looking it up
// does not allocate.
func (in *interner[T]) codeBytes(key []byte, mk func() T) (uint16, error) {
	in.mu.RLock()
	c, ok := in.codes[string(key)]
	in.mu.RUnlock()
	if ok {
		return c, nil
	}
	return in.add(string(key), mk)
}

func (in *interner[T]) add(key string, mk func() T) (uint16, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if c, ok := in.codes[key]; ok {
		return c, nil
	}
	old := *in.vals.Load()
	if len(old) > math.MaxUint16 {
		return 0, fmt.Errorf("more than %d distinct %s: %w", math.MaxUint16, in.what, session.ErrInvalid)
	}
	vals := append(old[:len(old):len(old)], mk())
	c := uint16(len(vals) - 1)
	in.codes[key] = c
	in.vals.Store(&vals)
	return c, nil
}

func (in *interner[T]) value(c uint16) T {
	return (*in.vals.Load())[c]
}
