package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/config"
	"github.com/rempart/rempart/internal/pki"
)

// running is a running serve(): its addresses and how to stop it.
type running struct {
	dataDir     string
	public, ops string // http://host:port
	client      *http.Client
	stop        func() error // cancels serve and returns its result
}

// startServe runs serve(ctx, cfg, started) on loopback ports and waits until
// /readyz answers 200.
func startServe(t *testing.T, cfg *config.Config) *running {
	t.Helper()
	return startServeOn(t, cfg, "127.0.0.1:0")
}

// startServeOn is startServe with the public listener on listen, for tests
// whose pages must name their own address (the issuer a browser is sent
// back to).
func startServeOn(t *testing.T, cfg *config.Config, listen string) *running {
	t.Helper()
	return startServeAt(t, cfg, listen, "127.0.0.1:0")
}

// startServeAt is startServeOn with the ops listener on ops, for tests whose
// admin must log in with WebAuthn (the console's origin names its port).
func startServeAt(t *testing.T, cfg *config.Config, listen, ops string) *running {
	t.Helper()
	cfg.Listen, cfg.OpsListen = listen, ops
	cfg.DataDir = t.TempDir()
	cfg.LogLevel = "error" // keep the test output to failures

	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, func(public, ops string) { addrs <- [2]string{public, ops} })
	}()
	var a [2]string
	select {
	case a = <-addrs:
	case err := <-done:
		cancel()
		t.Fatalf("serve returned before listening: %v", err)
	}
	s := &running{dataDir: cfg.DataDir, public: "http://" + a[0], ops: "http://" + a[1], client: &http.Client{Transport: &http.Transport{}}}
	var once bool
	var result error
	s.stop = func() error {
		if !once {
			once = true
			cancel()
			result = <-done
			s.client.CloseIdleConnections()
		}
		return result
	}
	t.Cleanup(func() { s.stop() })

	// The listeners accept before Run marks the server ready: poll, and let
	// the test's -timeout catch a server that never gets there.
	for {
		res, err := s.client.Get(s.ops + "/readyz")
		if err != nil {
			t.Fatalf("readyz: %v", err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			return s
		}
		time.Sleep(time.Millisecond)
	}
}

func (s *running) do(t *testing.T, method, url, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if strings.HasPrefix(url, s.ops+"/ops/") && req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+s.opsToken(t))
	}
	res, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

func TestServeEndToEnd(t *testing.T) {
	cfg := config.Default()
	cfg.Estate.Customers = 100_000
	s := startServe(t, cfg)

	scheme := s.as(t, "card-schemes")
	authorize := func(key string) (int, map[string]any) {
		res, body := scheme.do(t, "POST", scheme.public+"/v1/cards/authorize",
			`{"card":"4971111111111110","amount":3000,"merchant":"Boulangerie","channel":"shop"}`,
			map[string]string{"Content-Type": "application/json", "Idempotency-Key": key})
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("%d %s: %v", res.StatusCode, body, err)
		}
		if res.Header.Get("X-Request-Id") == "" {
			t.Error("no X-Request-Id on the response")
		}
		// A retry is answered by the gateway's replay cache (header) or, if
		// it reached the estate, by the ledger (body): either way, once.
		if res.Header.Get("Idempotent-Replayed") == "true" {
			m["replayed"] = true
		}
		return res.StatusCode, m
	}

	t.Run("card authorisation for alice is approved", func(t *testing.T) {
		status, d := authorize("e2e-card-1")
		if status != http.StatusOK || d["approved"] != true || d["amount"] != 3000.0 {
			t.Fatalf("got %d %v, want 200 approved for 3000", status, d)
		}
		// alice opens with 2,500.00 EUR.
		if d["balance"] != 2_500_00.0-3000 {
			t.Errorf("balance %v, want %d", d["balance"], 2_500_00-3000)
		}
	})

	t.Run("a retry with the same key is answered, not applied again", func(t *testing.T) {
		status, d := authorize("e2e-card-1")
		if status != http.StatusOK || d["replayed"] != true || d["balance"] != 2_500_00.0-3000 {
			t.Fatalf("got %d %v, want 200 replayed with the first balance", status, d)
		}
	})

	t.Run("unmatched path is a 404 problem", func(t *testing.T) {
		res, body := s.do(t, "GET", s.public+"/v2/nothing", "", nil)
		if res.StatusCode != 404 || res.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("got %d %s %s", res.StatusCode, res.Header.Get("Content-Type"), body)
		}
	})

	t.Run("metrics carry route and tier", func(t *testing.T) {
		res, body := s.do(t, "GET", s.ops+"/metrics", "", nil)
		if res.StatusCode != 200 {
			t.Fatalf("metrics: %d", res.StatusCode)
		}
		for _, want := range []string{
			`rempart_requests_total{code="200",route="card-authorize",tier="critical"} 2`,
			`rempart_request_duration_seconds_count{route="card-authorize",tier="critical"} 2`,
			`rempart_request_duration_seconds_bucket{route="card-authorize",tier="critical",le="+Inf"} 2`,
			// every estate channel is routed, and shows from the start
			`rempart_request_duration_seconds_count{route="parcel",tier="sheddable"} 0`,
			`rempart_requests_total{code="404",route="unmatched",tier="sheddable"} 1`,
		} {
			if !bytes.Contains(body, []byte(want)) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})

	t.Run("healthz", func(t *testing.T) {
		if res, body := s.do(t, "GET", s.ops+"/healthz", "", nil); res.StatusCode != 200 {
			t.Errorf("healthz: %d %s", res.StatusCode, body)
		}
	})

	if err := s.stop(); err != nil {
		t.Errorf("serve returned %v after cancel, want nil", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "ledger.db")); err != nil {
		t.Errorf("no ledger in the data dir: %v", err)
	}
}

func TestServeRemoteUpstream(t *testing.T) {
	type got struct{ path, requestID, traceparent string }
	seen := make(chan got, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- got{r.URL.Path, r.Header.Get("X-Request-Id"), r.Header.Get("Traceparent")}
		w.Header().Set("X-Backend", "remote")
		io.WriteString(w, "parcel in transit\n")
	}))
	t.Cleanup(backend.Close)

	path := filepath.Join(t.TempDir(), "rempart.yaml")
	yaml := `# a gateway in front of a remote bank only
upstreams:
  - name: remote-bank
    url: ` + backend.URL + `
    timeout: 5s
routes:
  - name: parcel
    match: GET /v1/parcels/{tracking}
    tier: sheddable
    upstream: remote-bank
`
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(newServeCmd(), serveFlags{config: path})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.EstateEnabled() {
		t.Fatal("a config with only a remote upstream runs the in-process estate")
	}
	s := startServe(t, cfg)

	res, body := s.do(t, "GET", s.public+"/v1/parcels/P123", "", map[string]string{"X-Request-Id": "e2e-remote"})
	if res.StatusCode != 200 || res.Header.Get("X-Backend") != "remote" || string(body) != "parcel in transit\n" {
		t.Fatalf("got %d %v %q, want the remote backend's answer", res.StatusCode, res.Header, body)
	}
	g := <-seen
	if g.path != "/v1/parcels/P123" || g.requestID != "e2e-remote" || g.traceparent == "" {
		t.Errorf("backend got %+v", g)
	}

	// Only configured routes exist: the estate's channels are not served.
	res, _ = s.do(t, "POST", s.public+"/v1/cards/authorize", "{}", nil)
	if res.StatusCode != 404 {
		t.Errorf("card authorisation without a route: %d, want 404", res.StatusCode)
	}
	if err := s.stop(); err != nil {
		t.Errorf("serve returned %v after cancel, want nil", err)
	}
}

func TestServeListenError(t *testing.T) {
	cfg := config.Default()
	cfg.Listen, cfg.OpsListen = "127.0.0.1:0", "127.0.0.1:bad"
	cfg.DataDir = t.TempDir()
	cfg.LogLevel = "error"
	err := serve(context.Background(), cfg, func(string, string) { t.Error("started called") })
	if err == nil || !strings.Contains(err.Error(), "ops listener") {
		t.Errorf("serve = %v, want an ops listener error", err)
	}
}

func TestRootHelp(t *testing.T) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"serve", "estate", "version"} {
		if !strings.Contains(out.String(), "\n  "+cmd+" ") {
			t.Errorf("--help does not list %s:\n%s", cmd, out.String())
		}
	}
}

func TestVersion(t *testing.T) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"version"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "rempart "+version) {
		t.Errorf("version printed %q", out.String())
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("listen: 127.0.0.1:18080\nlog_format: json\n"), 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("listen: 127.0.0.1:18080\nlog_levle: debug\n"), 0o644)

	tests := []struct {
		name    string
		flags   serveFlags
		wantErr string // the whole message
		check   func(t *testing.T, c *config.Config)
	}{
		{name: "no flags: defaults", check: func(t *testing.T, c *config.Config) {
			if c.Listen != "127.0.0.1:8080" || c.LogFormat != "text" || !c.EstateEnabled() {
				t.Errorf("defaults %+v", c)
			}
		}},
		{name: "flags override the defaults", flags: serveFlags{listen: ":1", opsListen: ":2", dataDir: "/d", logFormat: "json"},
			check: func(t *testing.T, c *config.Config) {
				if c.Listen != ":1" || c.OpsListen != ":2" || c.DataDir != "/d" || c.LogFormat != "json" {
					t.Errorf("got %+v", c)
				}
			}},
		{name: "flags override the file", flags: serveFlags{config: good, logFormat: "text"},
			check: func(t *testing.T, c *config.Config) {
				if c.Listen != "127.0.0.1:18080" || c.LogFormat != "text" {
					t.Errorf("got listen %q log format %q", c.Listen, c.LogFormat)
				}
			}},
		{name: "bad log format", flags: serveFlags{logFormat: "xml"},
			wantErr: `--log-format: "xml" must be text or json`},
		{name: "bad config file", flags: serveFlags{config: bad},
			wantErr: bad + ":2: field log_levle: unknown field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := loadConfig(newServeCmd(), tt.flags)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %s", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is not one line: %q", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

// opsToken is the ops API's automation token, as a script would read it.
func (s *running) opsToken(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dataDir, "admin", "ops-token"))
	if err != nil {
		t.Fatalf("ops token: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// as returns s speaking TLS to the public listener with the demo certificate
// of partner, as the card schemes, the ATM network, the 3-D Secure server and
// the instant-payment scheme reach a bank.
func (s *running) as(t *testing.T, partner string) *running {
	t.Helper()
	c := *s
	c.client = partnerClient(t, pki.Demo{Dir: filepath.Join(s.dataDir, "pki")}, partner)
	c.public = "https://" + strings.TrimPrefix(s.public, "http://")
	t.Cleanup(c.client.CloseIdleConnections)
	return &c
}

// partnerClient is an https client trusting the demo CA and presenting
// partner's certificate ("" for none).
func partnerClient(t *testing.T, d pki.Demo, partner string) *http.Client {
	t.Helper()
	cfg, err := d.ClientTLS(partner)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}
