//go:build unix

package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// port is a loopback port nothing listens on at the call (the process
// started with it binds it a moment later).
func port(t *testing.T) int {
	t.Helper()
	a, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(a)
	n, _ := strconv.Atoi(p)
	return n
}

// findHAProxy is HAProxy's path, or "".
func findHAProxy() string {
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	if st, err := os.Stat("/usr/sbin/haproxy"); err == nil && !st.IsDir() {
		return "/usr/sbin/haproxy"
	}
	return ""
}

// TestClusterKillNode runs three `rempart serve` processes on one Redis and
// one PostgreSQL database behind HAProxy (round robin, no affinity, health
// checks on /readyz), in front of one `rempart estate`, as a bank deploys
// them. A customer types her password, the node that checked it and sent her
// SMS code is SIGKILLed, and she types the code: the login finishes on the
// other nodes, because nothing of it lived only in the dead node. Her tokens
// work and refresh through the balancer afterwards, the bank's books hold,
// and a token revoked through the balancer is refused by every live node.
func TestClusterKillNode(t *testing.T) {
	redisURL, dbURL := os.Getenv("REDIS_URL"), os.Getenv("DATABASE_URL")
	haproxy := findHAProxy()
	switch {
	case testing.Short():
		t.Skip("builds rempart and starts four processes")
	case redisURL == "" || dbURL == "":
		t.Skip("REDIS_URL and DATABASE_URL not both set: skipping the three-process cluster test")
	case haproxy == "":
		t.Skip("haproxy not installed (apt-get install haproxy): skipping the three-process cluster test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := buildRempart(ctx, t)
	db := clusterDB(t, dbURL)
	key := make([]byte, 32)
	rand.Read(key)
	journalKey := base64.StdEncoding.EncodeToString(key)
	rand.Read(key)
	kek := base64.StdEncoding.EncodeToString(key)

	dir := t.TempDir()
	// The bank the three nodes front, once: a `rempart estate` of its own.
	bank, bankOps := port(t), port(t)
	ecfg := filepath.Join(dir, "estate.yaml")
	if err := os.WriteFile(ecfg, []byte("estate: {customers: 1000}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	est := exec.CommandContext(ctx, bin, "estate", "--config", ecfg, "--data-dir", filepath.Join(dir, "estate"),
		"--listen", fmt.Sprintf("127.0.0.1:%d", bank), "--ops-listen", fmt.Sprintf("127.0.0.1:%d", bankOps))
	estLog, err := os.Create(filepath.Join(dir, "estate.log"))
	if err != nil {
		t.Fatal(err)
	}
	est.Stdout, est.Stderr = estLog, estLog
	if err := est.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { est.Process.Kill(); est.Wait(); estLog.Close() })
	estOps := fmt.Sprintf("http://127.0.0.1:%d", bankOps)
	waitUp(ctx, t, estOps, 0)
	front := port(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d", front)
	type node struct {
		cmd         *exec.Cmd
		public, ops string
		s           *running
	}
	nodes := make([]*node, 3)
	var servers strings.Builder
	for i := range nodes {
		pub, ops := port(t), port(t)
		data := filepath.Join(dir, fmt.Sprintf("node%d", i))
		cfg := filepath.Join(dir, fmt.Sprintf("node%d.yaml", i))
		yaml := fmt.Sprintf(`listen: 127.0.0.1:%d
ops_listen: 127.0.0.1:%d
data_dir: %s
ops_token_sms: true
log_level: warn
estate: {enabled: false, ops_url: %s, customers: 1000}
upstreams: [{name: bank, url: "http://127.0.0.1:%d"}]
identity:
  issuer: %s
  keys: {backend: postgres, database_url: %q}
journal: {backend: postgres, database_url: %q}
sessions: {backend: redis, redis_url: %q}
scrub: {redis_url: %q}
standin: {nodes: 3}
`, pub, ops, data, estOps, bank, issuer, db, db, redisURL, redisURL)
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(ctx, bin, "serve", "--config", cfg)
		cmd.Env = append(os.Environ(), journalKeyEnv+"="+journalKey, "REMPART_KEYS_KEK="+kek)
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("node%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		n := &node{cmd: cmd, public: fmt.Sprintf("http://127.0.0.1:%d", pub), ops: fmt.Sprintf("http://127.0.0.1:%d", ops)}
		n.s = &running{dataDir: data, public: n.public, ops: n.ops, client: &http.Client{Transport: &http.Transport{}}}
		nodes[i] = n
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			logf.Close()
			if t.Failed() {
				b, _ := os.ReadFile(logf.Name())
				t.Logf("node %d's log:\n%s", i, b)
			}
		})
		fmt.Fprintf(&servers, "  server n%d 127.0.0.1:%d check port %d inter 200ms fall 1 rise 1\n", i, pub, ops)
	}
	for i, n := range nodes {
		waitUp(ctx, t, n.ops, i+1)
	}
	hcfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(hcfg, []byte(fmt.Sprintf(`global
  maxconn 256
defaults
  mode http
  timeout connect 1s
  timeout client 10s
  timeout server 10s
  retries 3
  option redispatch
frontend bank
  bind 127.0.0.1:%d
  default_backend rempart
backend rempart
  balance roundrobin
  option httpchk GET /readyz
%s`, front, servers.String())), 0o600); err != nil {
		t.Fatal(err)
	}
	lb := exec.CommandContext(ctx, haproxy, "-db", "-f", hcfg)
	var lbOut strings.Builder
	lb.Stdout, lb.Stderr = &lbOut, &lbOut
	if err := lb.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		lb.Process.Kill()
		lb.Wait()
		if t.Failed() {
			t.Logf("haproxy:\n%s", lbOut.String())
		}
	})
	waitUp(ctx, t, issuer, -1)

	c := &running{public: issuer, client: &http.Client{Transport: &http.Transport{}}}
	// The nodes' /ops/estate/ is the one bank's: its outbox has the code.
	bankView := nodes[0].s
	const alicePhone = "+33 6 12 34 56 78"
	before := bankView.lastSMS(t, alicePhone)
	killed := -1
	access, refresh := c.fullLogin(t, "alice", "alice-demo-2025", func() string {
		m := bankView.lastSMS(t, alicePhone)
		if m == before {
			t.Fatal("no code in the bank's outbox")
		}
		// Her phone has the code; the node that checked her password dies.
		for i, n := range nodes {
			_, metrics := n.s.do(t, "GET", n.ops+"/metrics", "", nil)
			if strings.Contains(string(metrics), `route="login-password"`) {
				if err := n.cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
				n.cmd.Wait()
				killed = i
				break
			}
		}
		return smsCodeRe.FindStringSubmatch(m)[1]
	})
	if killed < 0 {
		t.Fatal("no node was killed")
	}
	t.Logf("node %d, which checked the password and sent the code, was SIGKILLed before the code step", killed)
	for i, n := range nodes {
		if i == killed {
			continue
		}
		res, b := n.s.do(t, "GET", n.public+"/v1/accounts/A-alice/balance", "", map[string]string{"Authorization": "Bearer " + access})
		if res.StatusCode != http.StatusOK {
			t.Fatalf("node %d refuses the token: %d %s", i, res.StatusCode, b)
		}
	}
	for range 3 {
		refresh = c.refreshToken(t, refresh)
	}

	// Every live node's /ops/estate/ is the one bank's, whose books hold.
	for i, n := range nodes {
		if i == killed {
			continue
		}
		if res, b := n.s.do(t, "GET", n.ops+"/ops/estate/check", "", nil); res.StatusCode != http.StatusOK || !strings.Contains(string(b), `"ok":true`) {
			t.Fatalf("node %d's view of the bank's ledger: %d %s", i, res.StatusCode, b)
		}
	}

	// The app revokes the access token through the balancer; every live
	// node refuses it once the revocation has reached it over Redis.
	res, b := c.do(t, "POST", issuer+"/oauth/revoke", url.Values{"token": {access}, "client_id": {"rempart-demo-app"}}.Encode(),
		map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d %s", res.StatusCode, b)
	}
	revoked := time.Now()
	for i, n := range nodes {
		if i == killed {
			continue
		}
		for {
			res, _ := n.s.do(t, "GET", n.public+"/v1/accounts/A-alice/balance", "", map[string]string{"Authorization": "Bearer " + access})
			if res.StatusCode == http.StatusUnauthorized {
				t.Logf("node %d refuses the revoked token %v after the revocation", i, time.Since(revoked).Round(time.Millisecond))
				break
			}
			if time.Since(revoked) > 5*time.Second {
				t.Fatalf("node %d still honours the revoked token after 5 s: %d", i, res.StatusCode)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// waitUp polls base/readyz (or, for the balancer, node -1, /.well-known,
// which needs a live node behind it) until it answers 200; node names what
// is waited for in the failure (0 the estate, 1-3 the nodes).
func waitUp(ctx context.Context, t *testing.T, base string, node int) {
	t.Helper()
	path := "/readyz"
	if node < 0 {
		path = "/.well-known/openid-configuration"
	}
	for ctx.Err() == nil {
		if res, err := http.Get(base + path); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s%s never answered 200 (node %d)", base, path, node)
}
