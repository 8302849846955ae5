package identity

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/rempart/rempart/internal/identity/keys"
)

// localKeys reads the provider's own key set: no I/O, but for a shared set's
// rate-limited reload on an unknown key id.
type localKeys struct{ set *keys.Set }

func (l localKeys) PublicKey(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	return l.set.PublicKey(ctx, kid)
}

// RemoteKeys fetches a provider's JWKS over HTTP and keeps it; an unknown
// key id triggers a refetch at most once per MinRefresh, so a flood of
// tokens with made-up key ids cannot turn into a flood of fetches.
type RemoteKeys struct {
	URL        string
	Client     *http.Client
	MinRefresh time.Duration

	mu      sync.Mutex
	keys    map[string]ed25519.PublicKey
	fetched time.Time
}

// NewRemoteKeys returns a key source for the JWKS at url.
func NewRemoteKeys(url string, client *http.Client) *RemoteKeys {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	return &RemoteKeys{URL: url, Client: client, MinRefresh: 10 * time.Second}
}

// PublicKey returns the key with the id, fetching the JWKS when it is unknown.
func (r *RemoteKeys) PublicKey(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if k, ok := r.keys[kid]; ok {
		return k, nil
	}
	if time.Since(r.fetched) < r.MinRefresh {
		return nil, keys.ErrUnknownKey
	}
	r.fetched = time.Now()
	if err := r.fetch(ctx); err != nil {
		return nil, err
	}
	if k, ok := r.keys[kid]; ok {
		return k, nil
	}
	return nil, keys.ErrUnknownKey
}

func (r *RemoteKeys) fetch(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL, nil)
	if err != nil {
		return err
	}
	resp, err := r.Client.Do(req)
	if err != nil {
		return fmt.Errorf("fetch jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch jwks: status %d", resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return fmt.Errorf("fetch jwks: %w", err)
	}
	m := map[string]ed25519.PublicKey{}
	for _, k := range set.Keys {
		if pub, ok := k.Key.(ed25519.PublicKey); ok && k.Use != "enc" {
			m[k.KeyID] = pub
		}
	}
	r.keys = m
	return nil
}
