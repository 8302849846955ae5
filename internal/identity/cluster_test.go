package identity

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	goredis "github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"

	"github.com/rempart/rempart/internal/identity/keys"
	"github.com/rempart/rempart/internal/session"
	"github.com/rempart/rempart/internal/session/memory"
	sessionredis "github.com/rempart/rempart/internal/session/redis"
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

// clusterStores returns the stores a cluster's nodes share for sessions and
// for logins in progress: one embedded store handed to both providers, and
// Redis when REDIS_URL is set (as `serve` with sessions on Redis does).
func clusterStores(t *testing.T) map[string]func(t *testing.T) session.Store {
	kinds := map[string]func(t *testing.T) session.Store{
		"memory": func(t *testing.T) session.Store {
			s, err := memory.Open(context.Background(), memory.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
	url := os.Getenv("REDIS_URL")
	if url == "" {
		t.Log("REDIS_URL not set: the cluster tests run on the embedded store only")
		return kinds
	}
	kinds["redis"] = func(t *testing.T) session.Store {
		return redisStore(t, url, "identity-cluster")
	}
	return kinds
}

// cluster is two nodes on one key store, one session store and one logins
// store, with one issuer, behind a balancer the test steers.
type cluster struct {
	a, b *env
	to   atomic.Pointer[env] // the node the balancer sends the next request to
}

func newCluster(t *testing.T, store session.Store) *cluster {
	ks, kek := keys.NewMemory(), bytes.Repeat([]byte{1}, keys.KEKSize)
	c := &cluster{}
	c.a = newEnv(t, func(cfg *Config) { cfg.KeyStore, cfg.KeyKEK, cfg.Sessions, cfg.Logins = ks, kek, store, store })
	c.b = newEnv(t, func(cfg *Config) {
		cfg.KeyStore, cfg.KeyKEK, cfg.Sessions, cfg.Logins = ks, kek, store, store
		cfg.Issuer, cfg.SMS = c.a.issuer, c.a.sms // one issuer, one phone
	})
	return c
}

// browser is a browser that reaches the cluster through its balancer: every
// request goes to the issuer's name, and lands on the node c.to names.
func (c *cluster) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Transport: c,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (c *cluster) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Host = strings.TrimPrefix(c.to.Load().srv.URL, "http://")
	return http.DefaultTransport.RoundTrip(r)
}

// on sends the browser's next requests to node e.
func (c *cluster) on(e *env) { c.to.Store(e) }

// exchange trades a code for tokens on node e.
func (c *cluster) exchange(t *testing.T, e *env, code, verifier string) (int, map[string]any) {
	return e.post(t, PathToken, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {c.a.issuer + "/demo/callback"}, "client_id": {DemoAppClient}, "code_verifier": {verifier}})
}

// toCode takes a login from the authorization request on node from to the
// SMS-code step through the login page and the password on node pw, and
// returns the login's id.
func (c *cluster) toCode(t *testing.T, b *http.Client, verifier string, from, pw *env) string {
	t.Helper()
	c.on(from)
	st, loc, body := get(t, b, c.a.authURL(c.a.issuer+"/demo/callback", oauth2.S256ChallengeFromVerifier(verifier), "S256"))
	if st != http.StatusFound || loc == nil || loc.Path != PathLogin {
		t.Fatalf("authorize: %d %v %.200s", st, loc, body)
	}
	c.on(pw)
	if st, _, body := get(t, b, c.a.issuer+loc.RequestURI()); st != http.StatusOK || !strings.Contains(body, `name="password"`) {
		t.Fatalf("login page on the other node: %d %.300s", st, body)
	}
	id := loc.Query().Get("id")
	resp, err := b.PostForm(c.a.issuer+"/login/password", url.Values{"id": {id}, "username": {"alice"}, "password": {"alice-demo-2025"}})
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="code"`) {
		t.Fatalf("password on the other node: %d %.300s", resp.StatusCode, body)
	}
	return id
}

func (c *cluster) typeCode(t *testing.T, b *http.Client, id, code string) *http.Response {
	t.Helper()
	resp, err := b.PostForm(c.a.issuer+"/login/otp", url.Values{"id": {id}, "code": {code}})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	return resp
}

// TestLoginHopsNodes sends each step of a login to the other node, as a
// round-robin balancer does: authorize on a, login page and password on b,
// SMS code and the redirect with the authorization code on a, code exchange
// on b. Replaying the code on a is refused and revokes what b issued.
func TestLoginHopsNodes(t *testing.T) {
	for name, open := range clusterStores(t) {
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, open(t))
			b := c.browser()
			v := oauth2.GenerateVerifier()
			id := c.toCode(t, b, v, c.a, c.b)
			c.on(c.a)
			resp := c.typeCode(t, b, id, c.a.sms.lastCode(t))
			loc, err := resp.Location()
			if err != nil || loc.Path != PathAuthorize+"/callback" {
				t.Fatalf("code on a: %d %v", resp.StatusCode, loc)
			}
			st, loc, body := get(t, b, c.a.issuer+loc.RequestURI())
			code := ""
			if loc != nil {
				code = loc.Query().Get("code")
			}
			if st != http.StatusFound || code == "" {
				t.Fatalf("callback on a: %d %v %.200s", st, loc, body)
			}
			st, m := c.exchange(t, c.b, code, v)
			if st != http.StatusOK {
				t.Fatalf("code exchange on b: %d %v", st, m)
			}
			at, rt := m["access_token"].(string), m["refresh_token"].(string)
			if _, err := c.a.p.Verifier().Verify(context.Background(), at); err != nil {
				t.Fatalf("node a refuses b's token: %v", err)
			}
			st, m = c.exchange(t, c.a, code, v)
			wantOAuthError(t, st, m, "invalid_grant")
			if _, err := c.a.p.Verifier().Verify(context.Background(), at); !errors.Is(err, ErrRevoked) {
				t.Fatalf("access token of a code replayed on the other node still accepted: %v", err)
			}
			st, m = c.b.refresh(t, rt)
			wantOAuthError(t, st, m, "invalid_grant")
		})
	}
}

// TestCodeExchangedOnceAcrossNodes exchanges one code on both nodes at
// once, many times over: exactly one exchange succeeds each time.
func TestCodeExchangedOnceAcrossNodes(t *testing.T) {
	for name, open := range clusterStores(t) {
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, open(t))
			for range 10 {
				code, v := c.a.code(t)
				var wins atomic.Int32
				var wg sync.WaitGroup
				for _, e := range []*env{c.a, c.b, c.a, c.b} {
					wg.Go(func() {
						if st, _ := c.exchange(t, e, code, v); st == http.StatusOK {
							wins.Add(1)
						}
					})
				}
				wg.Wait()
				if n := wins.Load(); n != 1 {
					t.Fatalf("%d exchanges of one code succeeded", n)
				}
			}
		})
	}
}

// TestCodeAttemptsCountedAcrossNodes types wrong SMS codes on both nodes,
// one after the other and then all at once: the login's attempts add up
// across the cluster, so after maxOTPAttempts wrong ones the right code is
// refused (start again with the password).
func TestCodeAttemptsCountedAcrossNodes(t *testing.T) {
	for name, open := range clusterStores(t) {
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, open(t))
			nodes := []*env{c.a, c.b}
			for _, parallel := range []bool{false, true} {
				b := c.browser()
				id := c.toCode(t, b, oauth2.GenerateVerifier(), c.a, c.b)
				right := c.a.sms.lastCode(t)
				wrong := fmt.Sprintf("%06d", (mustAtoi(t, right)+1)%1_000_000)
				u, _ := url.Parse(c.a.issuer)
				cookies := b.Jar.Cookies(u)
				var wg sync.WaitGroup
				for i := range maxOTPAttempts {
					e := nodes[i%2]
					send := func() {
						req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/login/otp",
							strings.NewReader(url.Values{"id": {id}, "code": {wrong}}.Encode()))
						req.Header.Set("Content-Type", formType)
						for _, ck := range cookies {
							req.AddCookie(ck)
						}
						resp, err := http.DefaultClient.Do(req)
						if err != nil {
							t.Error(err)
							return
						}
						readAll(t, resp)
						if resp.StatusCode != http.StatusUnauthorized {
							t.Errorf("wrong code on %s: %d", e.srv.URL, resp.StatusCode)
						}
					}
					if parallel {
						wg.Go(send)
					} else {
						send()
					}
				}
				wg.Wait()
				c.on(c.b)
				if resp := c.typeCode(t, b, id, right); resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("parallel=%v: the right code after %d wrong ones on two nodes: %d, want 401 (start again)",
						parallel, maxOTPAttempts, resp.StatusCode)
				}
			}
		})
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// redisStore opens a session store on the Redis at url under a key prefix
// of its own, deleted when the test ends.
func redisStore(t testing.TB, url, name string) session.Store {
	t.Helper()
	prefix := "rempart-test:" + name + ":" + rand.Text()[:10] + ":"
	s, err := sessionredis.Open(context.Background(), url, sessionredis.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		o, _ := goredis.ParseURL(url)
		c := goredis.NewClient(o)
		defer c.Close()
		ctx := context.Background()
		for it := c.Scan(ctx, 0, prefix+"*", 1000).Iterator(); it.Next(ctx); {
			c.Del(ctx, it.Val())
		}
		s.Close()
	})
	return s
}
