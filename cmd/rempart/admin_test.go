package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rempart/rempart/internal/identity/admin"
)

// enrolToken runs `rempart admin enrol-token` with args and returns what it
// printed on stdout and stderr.
func enrolToken(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRoot()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"admin", "enrol-token"}, args...))
	err = root.Execute()
	return out.String(), errOut.String(), err
}

var enrolTokenRE = regexp.MustCompile(`(?m)^enrol_[A-Za-z0-9_-]{43}$`)

func TestAdminEnrolToken(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "admin"), 0o700); err != nil {
		t.Fatal(err)
	}
	issue := func() string {
		t.Helper()
		out, _, err := enrolToken(t, "--data-dir", dir, "--ttl", "10m")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "http://localhost:9090/ops/admin/enrol") {
			t.Fatalf("no console URL in %q", out)
		}
		tok := enrolTokenRE.FindString(out)
		if tok == "" {
			t.Fatalf("no token in %q", out)
		}
		return tok
	}
	first, second := issue(), issue()
	if first == second {
		t.Fatal("the same token twice")
	}
	// Only the newest token is live, and only its hash is on disk.
	ents, err := os.ReadDir(filepath.Join(dir, "admin", "enrol"))
	if err != nil || len(ents) != 1 {
		t.Fatalf("enrol dir: %v %v", ents, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "admin", "enrol", ents[0].Name()))
	if strings.Contains(string(b), second) || strings.Contains(ents[0].Name(), second) {
		t.Fatal("the token is stored in clear")
	}
}

// TestAdminEnrolTokenFindsServer: the token goes to the directory of the
// server serve's own flags name, and the address printed is the one that
// server announced, not the default port.
func TestAdminEnrolTokenFindsServer(t *testing.T) {
	t.Run("no data directory", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "rempart-data")
		out, _, err := enrolToken(t, "--data-dir", missing)
		if err == nil || !strings.Contains(err.Error(), "--data-dir that serve runs with") {
			t.Fatalf("err %v, out %q; want the flags it needs", err, out)
		}
		if _, err := os.Stat(missing); !os.IsNotExist(err) {
			t.Fatalf("a data directory was created: %v", err)
		}
	})
	t.Run("config file", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "state")
		cfg := filepath.Join(t.TempDir(), "rempart.yaml")
		if err := os.WriteFile(cfg, []byte("data_dir: "+dir+"\nops_listen: 127.0.0.1:9444\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(dir, "admin"), 0o700)
		out, stderr, err := enrolToken(t, "--config", cfg)
		if err != nil || !strings.Contains(out, "http://localhost:9444/ops/admin/enrol") || enrolTokenRE.FindString(out) == "" {
			t.Fatalf("out %q, err %v", out, err)
		}
		if !strings.Contains(stderr, "no server answers at http://localhost:9444") {
			t.Fatalf("stderr %q: want the warning that nothing listens", stderr)
		}
	})
	t.Run("announced by serve", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		dir := t.TempDir()
		a, err := admin.Open(filepath.Join(dir, "admin"), admin.Options{Origins: []string{"http://localhost:" + port}})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Bootstrap(&bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		out, stderr, err := enrolToken(t, "--data-dir", dir)
		if err != nil || !strings.Contains(out, "http://localhost:"+port+"/ops/admin/enrol") {
			t.Fatalf("out %q, err %v", out, err)
		}
		if stderr != "" {
			t.Fatalf("stderr %q with the server listening", stderr)
		}
		out, _, _ = enrolToken(t, "--data-dir", dir, "--ops-listen", "127.0.0.1:9555")
		if !strings.Contains(out, "http://localhost:9555/ops/admin/enrol") {
			t.Fatalf("--ops-listen not followed: %q", out)
		}
	})
}
