package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/rempart/rempart/internal/config"
)

// roundRobin is a plain balancer: each request to the next live node, no
// affinity, as a bank's L4/L7 balancer without sticky sessions.
type roundRobin struct {
	mu    sync.Mutex
	nodes []*httputil.ReverseProxy
	urls  []string
	next  atomic.Uint64
	hits  []atomic.Int64
}

func (b *roundRobin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	n := len(b.nodes)
	i := int(b.next.Add(1)-1) % n
	p, u := b.nodes[i], b.urls[i]
	b.mu.Unlock()
	for j, v := range b.urls {
		if v == u {
			b.hits[j].Add(1)
		}
	}
	p.ServeHTTP(w, r)
}

// remove takes a node out of the rotation, as a balancer's health check
// does once the node stops answering.
func (b *roundRobin) remove(u string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, v := range b.urls {
		if v == u {
			b.nodes, b.urls = append(b.nodes[:i:i], b.nodes[i+1:]...), append(b.urls[:i:i], b.urls[i+1:]...)
			return
		}
	}
}

// clusterDB creates a database of the test's own on the PostgreSQL at
// DATABASE_URL, dropped when the test ends: the nodes' journal and key set
// use the default schema, which other tests share.
func clusterDB(t *testing.T, base string) string {
	t.Helper()
	name := "rempart_cluster_" + strings.ToLower(rand.Text()[:10])
	c, err := pgx.Connect(t.Context(), base)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(t.Context())
	if _, err := c.Exec(t.Context(), "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background() // the test's own context has ended
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// TestClusterRoundRobin runs three serve nodes on one Redis and one
// PostgreSQL behind a round-robin balancer with no affinity: a customer's
// login takes each of its steps on whichever node the balancer picks, the
// token it gets is honoured by every node, its refresh works on any node,
// and with one node stopped and out of the rotation the session carries on
// and new logins still complete.
func TestClusterRoundRobin(t *testing.T) {
	redisURL, dbURL := os.Getenv("REDIS_URL"), os.Getenv("DATABASE_URL")
	if redisURL == "" || dbURL == "" {
		t.Skip("REDIS_URL and DATABASE_URL not both set: skipping the three-node cluster test")
	}
	db := clusterDB(t, dbURL)
	key := make([]byte, 32)
	rand.Read(key)
	t.Setenv(journalKeyEnv, base64.StdEncoding.EncodeToString(key))
	rand.Read(key)
	t.Setenv("REMPART_KEYS_KEK", base64.StdEncoding.EncodeToString(key))

	lb := &roundRobin{hits: make([]atomic.Int64, 3)}
	front := httptest.NewServer(lb)
	t.Cleanup(front.Close)
	nodes := make([]*running, 3)
	for i := range nodes {
		cfg := config.Default()
		cfg.OpsTokenSMS = true // the test reads login codes from the outboxes
		cfg.Estate.Customers = 1000
		cfg.Identity.Issuer = front.URL // one issuer for the cluster
		cfg.Identity.Keys.Backend, cfg.Identity.Keys.DatabaseURL = "postgres", db
		cfg.Journal.Backend, cfg.Journal.DatabaseURL = "postgres", db
		cfg.Sessions.Backend, cfg.Sessions.RedisURL = "redis", redisURL
		cfg.Scrub.RedisURL = redisURL
		nodes[i] = startServe(t, cfg)
		u, _ := url.Parse(nodes[i].public)
		lb.nodes = append(lb.nodes, httputil.NewSingleHostReverseProxy(u))
		lb.urls = append(lb.urls, nodes[i].public)
	}
	c := &running{public: front.URL, client: &http.Client{Transport: &http.Transport{}}}
	const alicePhone = "+33 6 12 34 56 78"

	// Each step of the login through the balancer: six requests, two on
	// each node. The code goes out from whichever node took the password.
	login := func(live []*running) (access, refresh string) {
		t.Helper()
		before := make([]string, len(live))
		for i, n := range live {
			before[i] = n.lastSMS(t, alicePhone)
		}
		return c.fullLogin(t, "alice", "alice-demo-2025", func() string {
			for i, n := range live {
				if m := n.lastSMS(t, alicePhone); m != before[i] {
					return smsCodeRe.FindStringSubmatch(m)[1]
				}
			}
			t.Fatal("no node sent alice a code")
			return ""
		})
	}
	access, refresh := login(nodes)
	for i := range lb.hits {
		if lb.hits[i].Load() == 0 {
			t.Fatalf("node %d took no step of the login: the test proves nothing", i)
		}
	}
	// Every node honours the token (each verifies it against the shared key set).
	for i, n := range nodes {
		res, b := n.do(t, "GET", n.public+"/v1/accounts/A-alice/balance", "", map[string]string{"Authorization": "Bearer " + access})
		if res.StatusCode != http.StatusOK {
			t.Fatalf("node %d refuses the cluster's token: %d %s", i, res.StatusCode, b)
		}
	}
	refresh = c.refreshToken(t, refresh)

	// One node stops; the balancer takes it out of the rotation.
	if err := nodes[1].stop(); err != nil {
		t.Fatalf("stop node 1: %v", err)
	}
	lb.remove(nodes[1].public)
	live := []*running{nodes[0], nodes[2]}
	for range 2 { // on each remaining node
		refresh = c.refreshToken(t, refresh)
	}
	if access, _ = login(live); access == "" {
		t.Fatal("no login with a node down")
	}
}

// lastSMS is the newest message to phone in this node's outbox ("" if none).
func (s *running) lastSMS(t *testing.T, phone string) string {
	t.Helper()
	_, body := s.do(t, "GET", s.ops+"/ops/estate/sms?limit=1&to="+url.QueryEscape(phone), "", nil)
	var out struct {
		Messages []struct{ Text string } `json:"messages"`
	}
	decode(t, body, &out)
	if len(out.Messages) == 0 {
		return ""
	}
	return out.Messages[0].Text
}

// fullLogin is an app's whole login through s.public, one request after
// the other with no affinity: authorize (PKCE), the login page, the
// password, the code (from code()), the callback, the code exchange. It
// returns the access and refresh tokens.
func (s *running) fullLogin(t *testing.T, user, password string, code func() string) (string, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var raw [32]byte
	rand.Read(raw[:])
	verifier := base64.RawURLEncoding.EncodeToString(raw[:])
	sum := sha256.Sum256([]byte(verifier))
	const redirect = "http://127.0.0.1/callback"
	q := url.Values{"client_id": {"rempart-demo-app"}, "response_type": {"code"}, "scope": {"openid offline_access accounts"},
		"redirect_uri": {redirect}, "state": {"s"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	step := func(resp *http.Response, err error) (*http.Response, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return resp, readBody(t, resp)
	}
	resp, body := step(b.Get(s.public + "/oauth/authorize?" + q.Encode()))
	if loc, err := resp.Location(); err == nil && strings.HasPrefix(loc.Path, "/login") {
		resp, body = step(b.Get(s.public + loc.RequestURI()))
	}
	m := loginIDRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no login form: %d %s", resp.StatusCode, body)
	}
	if resp, body = step(b.PostForm(s.public+"/login/password", url.Values{"id": {m[1]}, "username": {user}, "password": {password}})); !strings.Contains(body, `name="code"`) {
		t.Fatalf("password step: %d %s", resp.StatusCode, body)
	}
	resp, body = step(b.PostForm(s.public+"/login/otp", url.Values{"id": {m[1]}, "code": {code()}}))
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("code step: %d %s", resp.StatusCode, body)
	}
	if loc.Query().Get("code") == "" { // the callback, on whichever node
		resp, body = step(b.Get(s.public + loc.RequestURI()))
		if loc, err = resp.Location(); err != nil || loc.Query().Get("code") == "" {
			t.Fatalf("callback: %d %s", resp.StatusCode, body)
		}
	}
	resp, body = step(b.PostForm(s.public+"/oauth/token", url.Values{"grant_type": {"authorization_code"},
		"code": {loc.Query().Get("code")}, "redirect_uri": {redirect}, "client_id": {"rempart-demo-app"},
		"code_verifier": {verifier}}))
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	decode(t, []byte(body), &tok)
	if resp.StatusCode != http.StatusOK || tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("code exchange: %d %s", resp.StatusCode, body)
	}
	return tok.AccessToken, tok.RefreshToken
}

// refreshToken exchanges a refresh token through s.public and returns the
// new one (the provider rotates them).
func (s *running) refreshToken(t *testing.T, refresh string) string {
	t.Helper()
	res, body := s.do(t, "POST", s.public+"/oauth/token", url.Values{"grant_type": {"refresh_token"},
		"refresh_token": {refresh}, "client_id": {"rempart-demo-app"}}.Encode(),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	var tok struct {
		RefreshToken string `json:"refresh_token"`
	}
	decode(t, body, &tok)
	if res.StatusCode != http.StatusOK || tok.RefreshToken == "" {
		t.Fatalf("refresh: %d %s", res.StatusCode, body)
	}
	return tok.RefreshToken
}
