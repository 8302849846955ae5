package main

import (
	"context"
	"fmt"
	"os"

	"github.com/rempart/rempart/internal/identity/keys"
	keyspg "github.com/rempart/rempart/internal/identity/keys/postgres"
)

// openKeys returns the signing-key store identity.keys names (nil: the file
// in the data directory) and its key-encryption key from the environment.
// A store the nodes share is refused without a KEK: one node sealing with a
// key of its own would lock the others out, and a set in clear in a shared
// database is a set anyone who reads the database can sign with.
func (s *stack) openKeys(ctx context.Context) (keys.Store, []byte, error) {
	kc := s.cfg.Identity.Keys
	var kek []byte
	if v := os.Getenv(kc.KEKEnv); v != "" {
		var err error
		if kek, err = keys.ParseKEK(v); err != nil {
			return nil, nil, fmt.Errorf("identity.keys: %s: %w", kc.KEKEnv, err)
		}
	}
	if kc.Backend != "postgres" {
		return nil, kek, nil
	}
	if kek == nil {
		return nil, nil, fmt.Errorf("identity.keys: backend postgres needs a key-encryption key: set %s to base64 of 32 random bytes "+
			"(head -c 32 /dev/urandom | base64), the same on every node", kc.KEKEnv)
	}
	st, err := keyspg.Open(ctx, kc.DatabaseURL, keyspg.Options{})
	if err != nil {
		return nil, nil, fmt.Errorf("identity.keys: %w", err)
	}
	s.closers = append(s.closers, st.Close)
	return st, kek, nil
}
