package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/drill"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

const goldenSep = "-- want --\n"

// goldenNginx reads the cases of testdata/nginx: an nginxConfig in JSON,
// the separator, the nginx.conf it renders.
func goldenNginx(t *testing.T) map[string]nginxConfig {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "nginx", "*.golden"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	cases := make(map[string]nginxConfig)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		in, _, ok := bytes.Cut(raw, []byte(goldenSep))
		if !ok {
			t.Fatalf("%s: no %q separator", f, strings.TrimSpace(goldenSep))
		}
		var c nginxConfig
		if err := json.Unmarshal(in, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		cases[f] = c
	}
	return cases
}

func TestNginxConfigGolden(t *testing.T) {
	for file, c := range goldenNginx(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			in, want, _ := bytes.Cut(raw, []byte(goldenSep))
			got, err := c.render()
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(file, append(append(in, goldenSep...), got...), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !bytes.Equal(got, want) {
				t.Errorf("nginx.conf differs from %s (run with -update to accept):\n%s", file, got)
			}
		})
	}
}

// TestNginxConfigAccepted has nginx itself check every golden case's
// configuration (nginx -t), in a prefix of the test's own.
func TestNginxConfigAccepted(t *testing.T) {
	bin := findNginx()
	if bin == "" {
		t.Skip("nginx not installed (" + nginxInstall + ")")
	}
	for file, c := range goldenNginx(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			c.Dir, c.User = t.TempDir(), ""
			if os.Geteuid() == 0 {
				c.User = "root"
			}
			b, err := c.render()
			if err != nil {
				t.Fatal(err)
			}
			conf := filepath.Join(c.Dir, "nginx.conf")
			if err := os.WriteFile(conf, b, 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "-t", "-q", "-p", c.Dir, "-c", conf, "-e", "stderr").CombinedOutput()
			if err != nil {
				t.Fatalf("nginx -t: %v\n%s", err, out)
			}
		})
	}
}

func TestNewArmNginxAbsent(t *testing.T) {
	_, err := newArm("nginx", "rempart", "", 1000, "")
	if !errors.Is(err, errNoNginx) || !strings.Contains(err.Error(), "--arms") || !strings.Contains(err.Error(), nginxInstall) {
		t.Errorf("got %v, want one line naming --arms and %q", err, nginxInstall)
	}
	for nginx, want := range map[string]string{"": "2025,rempart", "/usr/sbin/nginx": "2025,nginx,rempart"} {
		if got := defaultArms(nginx); got != want {
			t.Errorf("defaultArms(%q) = %q, want %q", nginx, got, want)
		}
	}
}

// buildRempart builds this command into a temporary directory: the arms
// run it as their child process.
func buildRempart(ctx context.Context, t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "rempart")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestNginxArm starts the arm, sends requests through nginx from a
// customer's address and from the partners', restarts it and stops it.
func TestNginxArm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds rempart and starts two processes")
	}
	nginx := findNginx()
	if nginx == "" {
		t.Skip("nginx not installed (" + nginxInstall + ")")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a := &nginxArm{bin: buildRempart(ctx, t), nginx: nginx, customers: 1000, logDir: t.TempDir()}
	eps, err := a.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Stop(context.Background())
	if len(eps.PIDs) != 2 || eps.Ops != "http://"+a.backend.opsAddr || eps.Public != "http://"+a.proxy.public {
		t.Fatalf("endpoints %+v", eps)
	}
	if u, err := drill.ProcUsage(eps.PIDs); err != nil || u.RSS == 0 {
		t.Errorf("usage %+v, %v", u, err)
	}

	get := func(src, path string) (*http.Response, []byte) {
		t.Helper()
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: d.DialContext},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := hc.Get(eps.Public + path)
		if err != nil {
			t.Fatalf("GET %s from %s: %v", path, src, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	if resp, b := get("127.0.0.1", "/.well-known/openid-configuration"); resp.StatusCode != http.StatusOK || !bytes.Contains(b, []byte(`"issuer"`)) {
		t.Fatalf("discovery through nginx: %d %.200s", resp.StatusCode, b)
	}

	// The login page is the backend's (an expired-login page for a made-up
	// id), not nginx's redirect to /login/.
	if resp, b := get("127.64.0.8", "/login?id=none"); resp.StatusCode/100 == 3 || !bytes.Contains(b, []byte("<html")) {
		t.Errorf("GET /login through nginx: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// One customer address: the login zone lets 1 + burst through, then
	// answers 429 with a problem document and Retry-After.
	t.Run("login limit", func(t *testing.T) {
		var limited *http.Response
		var body []byte
		for range 20 {
			if resp, b := get("127.64.0.9", "/oauth/authorize"); resp.StatusCode == http.StatusTooManyRequests {
				limited, body = resp, b
				break
			}
		}
		if limited == nil {
			t.Fatal("20 authorize requests from one address, none limited")
		}
		if ct := limited.Header.Get("Content-Type"); ct != "application/problem+json" || limited.Header.Get("Retry-After") == "" || !json.Valid(body) {
			t.Errorf("429: Content-Type %q, Retry-After %q, body %s", ct, limited.Header.Get("Retry-After"), body)
		}
		for range 20 {
			if resp, _ := get("127.0.0.1", "/oauth/authorize"); resp.StatusCode == http.StatusTooManyRequests {
				t.Fatal("the partners' address was limited")
			}
		}
	})

	t.Run("kill and restart", func(t *testing.T) {
		pgid := a.proxy.cmd.Process.Pid
		eps2, err := a.KillRestart(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if eps2.Public != eps.Public || eps2.Ops != eps.Ops {
			t.Errorf("endpoints moved: %+v, was %+v", eps2, eps)
		}
		if groupRunning(pgid) {
			t.Error("the old nginx's workers are still running")
		}
		if resp, b := get("127.0.0.1", "/.well-known/openid-configuration"); resp.StatusCode != http.StatusOK {
			t.Errorf("after the restart: %d %.200s", resp.StatusCode, b)
		}
	})

	dirs := []string{a.proxy.dir, a.backend.dir}
	pgid := a.proxy.cmd.Process.Pid
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind (%v)", d, err)
		}
	}
	if groupRunning(pgid) {
		t.Error("nginx processes left after Stop")
	}
}
