package identity

import (
	"bytes"
	"context"
	"testing"

	"golang.org/x/oauth2"

	"github.com/rempart/rempart/internal/identity/keys"
)

// Two nodes on one key store (and one session store, one issuer, as a
// cluster behind a balancer): a token node a signs after rotating to a key
// node b has never loaded verifies on b, and a's device key is b's.
func TestNodesShareKeys(t *testing.T) {
	ks, kek := keys.NewMemory(), bytes.Repeat([]byte{1}, keys.KEKSize)
	a := newEnv(t, func(c *Config) { c.KeyStore, c.KeyKEK = ks, kek })
	b := newEnv(t, func(c *Config) { c.KeyStore, c.KeyKEK, c.Sessions, c.Issuer = ks, kek, a.p.sessions, a.issuer })
	if !bytes.Equal(a.p.deviceKey, b.p.deviceKey) {
		t.Fatal("the nodes have different device-cookie keys")
	}
	r := newRP(t, a)
	tok, _, _ := r.login(t, a.browser(t))
	for range 2 {
		if _, err := a.p.keys.Rotate(context.Background(), true); err != nil {
			t.Fatal(err)
		}
	}
	fresh, err := r.conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatal(err)
	}
	k, _ := a.p.keys.Signing()
	if _, err := b.p.keys.Lookup(k.ID); err == nil {
		t.Fatal("node b already knew a's new key: the test proves nothing")
	}
	if _, err := b.p.Verifier().Verify(context.Background(), fresh.AccessToken); err != nil {
		t.Fatalf("node b refuses a token node a signed after rotating: %v", err)
	}
	if _, err := b.p.Verifier().Verify(context.Background(), tok.AccessToken); err != nil {
		t.Fatalf("node b refuses a token signed before the rotation: %v", err)
	}
}
