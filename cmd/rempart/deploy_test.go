package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rempart/rempart/internal/config"
	"github.com/rempart/rempart/internal/estate/customer"
)

// TestDeployNodeConfig: the cluster node's config in deploy/ is one rempart
// accepts, and it is the cluster the README describes (shared sessions,
// journal and keys; persistence required; the balancer trusted).
func TestDeployNodeConfig(t *testing.T) {
	cfg, err := config.Load(filepath.Join("..", "..", "deploy", "node.yaml"))
	if err != nil {
		t.Fatalf("deploy/node.yaml: %v", err)
	}
	switch {
	case cfg.Sessions.Backend != "redis" || !cfg.Sessions.RequirePersistence:
		t.Errorf("sessions %+v: want redis with persistence required", cfg.Sessions)
	case cfg.Journal.Backend != "postgres" || cfg.Identity.Keys.Backend != "postgres":
		t.Errorf("journal %q, keys %q: want both on postgres", cfg.Journal.Backend, cfg.Identity.Keys.Backend)
	case cfg.Identity.Keys.DatabaseURL != cfg.Journal.DatabaseURL:
		t.Errorf("keys on %q, journal on %q: want one database", cfg.Identity.Keys.DatabaseURL, cfg.Journal.DatabaseURL)
	case cfg.StandIn.Nodes != 3:
		t.Errorf("standin.nodes %d, want the 3 nodes of deploy/haproxy.cfg", cfg.StandIn.Nodes)
	}
}

// TestDeployHAProxyConfig: HAProxy accepts deploy/haproxy.cfg (with stand-in
// certificate files where it names the bank's own).
func TestDeployHAProxyConfig(t *testing.T) {
	haproxy := findHAProxy()
	if haproxy == "" {
		t.Skip("haproxy not installed (apt-get install haproxy): skipping the check of deploy/haproxy.cfg")
	}
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "login.bank.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	pair := append(append([]byte{}, cert...), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})...)
	for name, b := range map[string][]byte{"bank.pem": pair, "partners-ca.pem": cert} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(strings.ReplaceAll(string(raw), "/etc/haproxy/", dir+"/")), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(haproxy, "-c", "-f", cfg).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c deploy/haproxy.cfg: %v\n%s", err, out)
	}
}

// TestDeployKubernetes: deploy/kubernetes.yaml runs deploy/node.yaml as is,
// probes the ops listener that file opens, exposes its public listener, and
// runs as many replicas as standin.nodes divides the limits by.
func TestDeployKubernetes(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "kubernetes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	node, err := os.ReadFile(filepath.Join("..", "..", "deploy", "node.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(filepath.Join("..", "..", "deploy", "node.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	type probe struct {
		HTTPGet struct {
			Path string `yaml:"path"`
			Port int    `yaml:"port"`
		} `yaml:"httpGet"`
	}
	var (
		configMap string
		replicas  int
		ready     probe
		ports     []int
	)
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	for {
		var doc struct {
			Kind string `yaml:"kind"`
			Data struct {
				Config string `yaml:"rempart.yaml"`
			} `yaml:"data"`
			Spec struct {
				Replicas int `yaml:"replicas"`
				Template struct {
					Spec struct {
						Containers []struct {
							Ports []struct {
								ContainerPort int `yaml:"containerPort"`
							} `yaml:"ports"`
							ReadinessProbe probe `yaml:"readinessProbe"`
						} `yaml:"containers"`
					} `yaml:"spec"`
				} `yaml:"template"`
			} `yaml:"spec"`
		}
		if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("deploy/kubernetes.yaml: %v", err)
		}
		switch doc.Kind {
		case "ConfigMap":
			configMap = doc.Data.Config
		case "Deployment":
			replicas = doc.Spec.Replicas
			for _, c := range doc.Spec.Template.Spec.Containers {
				ready = c.ReadinessProbe
				for _, p := range c.Ports {
					ports = append(ports, p.ContainerPort)
				}
			}
		}
	}
	if configMap != string(node) {
		t.Error("the ConfigMap's rempart.yaml is not deploy/node.yaml")
	}
	if replicas != cfg.StandIn.Nodes {
		t.Errorf("%d replicas, standin.nodes %d", replicas, cfg.StandIn.Nodes)
	}
	portOf := func(addr string) int {
		_, p, _ := net.SplitHostPort(addr)
		n, _ := strconv.Atoi(p)
		return n
	}
	if ready.HTTPGet.Path != "/readyz" || ready.HTTPGet.Port != portOf(cfg.OpsListen) {
		t.Errorf("readiness probe %+v, want /readyz on the ops listener %s", ready.HTTPGet, cfg.OpsListen)
	}
	if !slices.Contains(ports, portOf(cfg.Listen)) || !slices.Contains(ports, portOf(cfg.OpsListen)) {
		t.Errorf("container ports %v, want the listeners of node.yaml", ports)
	}
}

// TestDeployGrafanaDashboard: every series deploy/grafana-dashboard.json
// queries is one a running serve exports, once it has seen a login, a card
// payment on stand-in with the core down, and a status page.
func TestDeployGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("deploy/grafana-dashboard.json: %v", err)
	}
	cfg := config.Default()
	cfg.OpsTokenSMS = true // the test reads login codes from the outbox
	cfg.Estate.Customers = 1000
	// The dependencies' series exist where there are dependencies: with
	// REDIS_URL (CI) the sessions go to Redis, as in deploy/node.yaml.
	shared := os.Getenv("REDIS_URL")
	if shared != "" {
		cfg.Sessions.Backend, cfg.Sessions.RedisURL = "redis", shared
	}
	s := startServe(t, cfg)
	s.login(t, "alice", "alice-demo-2025", "+33 6 12 34 56 78")
	s.setCoreDown(t, true)
	// Payments until one is approved on stand-in: the first ones may
	// still meet the core's refusals before its breaker opens (seen in CI
	// under the race detector).
	// A card of its own each run: on Redis, the stand-in's daily limits
	// per card are the cluster's, shared with every other test of the day.
	card := customer.New(cfg.Estate.Seed, cfg.Estate.Customers).Nth(3 + mrand.IntN(cfg.Estate.Customers-3)).Card
	scheme := s.as(t, "card-schemes")
	for i := 0; ; i++ {
		res, b := scheme.do(t, "POST", scheme.public+"/v1/cards/authorize",
			`{"card":"`+card+`","amount":1500,"merchant":"Boulangerie","channel":"shop"}`,
			map[string]string{"Content-Type": "application/json", "Idempotency-Key": fmt.Sprintf("dash-%s-%d", card, i)})
		var d struct {
			Approved bool `json:"approved"`
			StandIn  bool `json:"stand_in"`
		}
		if res.StatusCode == http.StatusOK && json.Unmarshal(b, &d) == nil && d.Approved && d.StandIn {
			break
		}
		if i == 25 {
			t.Fatalf("no stand-in approval in 25 payments with the core down: last %d %s", res.StatusCode, b)
		}
	}
	s.setCoreDown(t, false)
	s.do(t, "GET", s.public+"/status.json", "", nil)
	_, metrics := s.do(t, "GET", s.ops+"/metrics", "", nil)
	exported := map[string]bool{}
	for _, line := range strings.Split(string(metrics), "\n") {
		if name, _, ok := strings.Cut(line, " "); ok && !strings.HasPrefix(line, "#") {
			name, _, _ = strings.Cut(name, "{")
			exported[name] = true
		}
	}
	series := regexp.MustCompile(`rempart_[a-z0-9_]+`)
	n := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, q := range p.Targets {
			for _, name := range series.FindAllString(q.Expr, -1) {
				n++
				switch {
				case exported[name]:
				case name == "rempart_dependency_up" && shared == "":
					t.Logf("%s not checked: REDIS_URL not set, serve has no shared dependency", name)
				default:
					t.Errorf("panel %q queries %s, which serve does not export", p.Title, name)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("the dashboard queries no rempart series: the test proves nothing")
	}
}

// TestDeployLocalCluster: the files run-cluster.sh starts three nodes and
// HAProxy with are ones rempart and HAProxy accept.
func TestDeployLocalCluster(t *testing.T) {
	if _, err := config.Load(filepath.Join("..", "..", "deploy", "local", "node.yaml")); err != nil {
		t.Fatalf("deploy/local/node.yaml: %v", err)
	}
	haproxy := findHAProxy()
	if haproxy == "" {
		t.Skip("haproxy not installed (apt-get install haproxy): skipping the check of deploy/local/haproxy.cfg")
	}
	if out, err := exec.Command(haproxy, "-c", "-f", filepath.Join("..", "..", "deploy", "local", "haproxy.cfg")).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c deploy/local/haproxy.cfg: %v\n%s", err, out)
	}
}
