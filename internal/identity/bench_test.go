package identity

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/identity/keys"
	"github.com/rempart/rempart/internal/identity/users"
)

func serve(b *testing.B, h http.Handler, form url.Values, user, pass string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, PathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 {
		b.Fatalf("%d %s", rec.Code, rec.Body)
	}
	return rec
}

// BenchmarkIssueClientCredentials: one client-credentials grant through the
// token endpoint's handler (no network): client auth, claims, EdDSA signature.
func BenchmarkIssueClientCredentials(b *testing.B) {
	e := newEnv(b)
	h := e.p.Handler()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"payments"}}
	b.ReportAllocs()
	for b.Loop() {
		serve(b, h, form, DemoServiceClient, DemoServiceSecret)
	}
}

// BenchmarkIssueRefresh: one refresh-token rotation through the handler:
// two session-store lookups, a delete, a create, a touch, an access token and
// an ID token.
func BenchmarkIssueRefresh(b *testing.B) {
	e := newEnv(b)
	code, v := e.code(b)
	_, m := e.exchange(b, code, v)
	rt := m["refresh_token"].(string)
	h := e.p.Handler()
	b.ReportAllocs()
	for b.Loop() {
		rec := serve(b, h, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {DemoAppClient}}, "", "")
		body := rec.Body.String()
		i := strings.Index(body, `"refresh_token":"`) + len(`"refresh_token":"`)
		rt = body[i : i+strings.IndexByte(body[i:], '"')]
	}
}

func benchToken(b *testing.B, cache int) (*Verifier, string) {
	set, err := keys.Open(context.Background(), keys.Options{})
	if err != nil {
		b.Fatal(err)
	}
	k, _ := set.Signing()
	tok, _ := signJWT(k.ID, k.Private, AccessTokenType, accessClaims{Issuer: "http://i", Subject: "alice",
		Audience: []string{"rempart"}, ClientID: DemoAppClient, Scope: "openid payments", ID: randomID(16),
		IssuedAt: time.Now().Unix(), Expiry: time.Now().Add(time.Hour).Unix(), Grant: randomID(16)})
	return NewVerifier(VerifierConfig{Issuer: "http://i", Audience: "rempart", Keys: localKeys{set}, CacheSize: cache}), tok
}

// BenchmarkVerifyRaw: a token the verifier has not seen (cache disabled).
func BenchmarkVerifyRaw(b *testing.B) {
	v, tok := benchToken(b, -1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCached: a token seen before (hash, LRU hit, revocation check).
func BenchmarkVerifyCached(b *testing.B) {
	v, tok := benchToken(b, 0)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCachedParallel: the cache under all cores.
func BenchmarkVerifyCachedParallel(b *testing.B) {
	v, tok := benchToken(b, 0)
	ctx := context.Background()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := v.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEd25519Verify is the baseline: crypto/ed25519's own verify of a
// message the size of a token's signing input.
func BenchmarkEd25519Verify(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	msg := []byte(strings.Repeat("x", 330))
	sig := ed25519.Sign(priv, msg)
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("bad")
		}
	}
}

// BenchmarkSnapshotMemory reports what a backup-login snapshot costs the
// embedded session store, beyond its verifier (the PHC string, which the
// directory holds anyway): heap in use after b.N snapshots of distinct
// customers, per snapshot.
func BenchmarkSnapshotMemory(b *testing.B) {
	e := newEnv(b)
	u := users.User{Name: "Client 00000042", Phone: "+33 7 00000042", Verifier: strings.Repeat("v", 97), Version: 7}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := range b.N {
		u.ID = fmt.Sprintf("C%08d", i)
		e.p.takeSnapshot(context.Background(), u, randomID(16))
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapInuse-before.HeapInuse) / float64(b.N)
	b.ReportMetric(per, "B/snapshot")
	b.ReportMetric(per-float64(len(u.Verifier)), "B/snapshot-beyond-verifier")
}

// BenchmarkLogin: one whole login of a fresh browser over loopback HTTP:
// authorize, login page, password (argon2id at the tests' cost), SMS code,
// callback, code exchange; logins in progress in the provider's own store.
func BenchmarkLogin(b *testing.B) {
	benchLogin(b, newEnv(b))
}

// BenchmarkLoginOnRedis: the same with logins in progress (and sessions) on
// Redis, as a cluster keeps them. Skipped without REDIS_URL.
func BenchmarkLoginOnRedis(b *testing.B) {
	url := os.Getenv("REDIS_URL")
	if url == "" {
		b.Skip("REDIS_URL not set: skipping the Redis login benchmark")
	}
	s := redisStore(b, url, "identity-bench")
	benchLogin(b, newEnv(b, func(c *Config) { c.Sessions, c.Logins = s, s }))
}

func benchLogin(b *testing.B, e *env) {
	b.ReportAllocs()
	for b.Loop() {
		code, v := e.code(b)
		if st, m := e.exchange(b, code, v); st != http.StatusOK {
			b.Fatalf("exchange: %d %v", st, m)
		}
	}
}
