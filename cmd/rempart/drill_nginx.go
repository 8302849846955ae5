package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"text/template"

	"github.com/rempart/rempart/internal/drill"
)

// The nginx arm is the 2025 backend (`rempart legacy`, as the 2025 arm)
// behind nginx with per-address rate and connection limits on the login
// path and sensible time-outs: what a competent team would have put in
// front of it without rempart. Its CPU and memory are both programs'.

// nginxInstall is how to get nginx, for the messages that need it.
const nginxInstall = "apt-get install nginx"

// findNginx returns the nginx binary on PATH or in /usr/sbin (not on a
// normal user's PATH on Debian), or "" when there is none.
func findNginx() string {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	const sbin = "/usr/sbin/nginx"
	if st, err := os.Stat(sbin); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return sbin
	}
	return ""
}

// errNoNginx is why the nginx arm cannot run.
var errNoNginx = errors.New("--arms: the nginx arm needs nginx, which is neither on PATH nor in /usr/sbin (" + nginxInstall + ")")

//go:embed nginx.conf.tmpl
var nginxTemplate string

// nginxConfig is what the generated nginx.conf depends on.
type nginxConfig struct {
	Dir      string   `json:"dir"`      // prefix: pid and temp files
	Listen   string   `json:"listen"`   // public host:port
	Status   string   `json:"status"`   // readiness and stub_status host:port
	Upstream string   `json:"upstream"` // the backend's public host:port
	Partners []string `json:"partners"` // prefixes exempt from per-address limits
	User     string   `json:"user"`     // workers' user when nginx starts as root
}

// render writes nginx.conf.
func (c nginxConfig) render() ([]byte, error) {
	t, err := template.New("nginx.conf").Option("missingkey=error").Parse(nginxTemplate)
	if err != nil {
		return nil, fmt.Errorf("nginx.conf template: %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, c); err != nil {
		return nil, fmt.Errorf("nginx.conf template: %w", err)
	}
	return b.Bytes(), nil
}

// drillPartners are the partner networks' prefixes: see armConfig.
var drillPartners = []string{"127.0.0.1/32"}

// nginxArm runs the backend child and an nginx child in front of it.
type nginxArm struct {
	bin       string // rempart
	nginx     string
	customers int
	logDir    string
	backend   *child
	proxy     *child
}

func (a *nginxArm) Name() string { return "nginx" }

func (a *nginxArm) Start(ctx context.Context) (drill.Endpoints, error) {
	b, err := newChild("nginx-backend", a.bin, "legacy", a.logDir, armConfig(a.customers))
	if err != nil {
		return drill.Endpoints{}, err
	}
	a.backend = b
	p, err := newNginxChild(a.nginx, a.logDir, b.public)
	if err != nil {
		return drill.Endpoints{}, err
	}
	a.proxy = p
	return a.start(ctx)
}

// newNginxChild prepares nginx: a prefix directory with the generated
// nginx.conf, a public port and a status port (the child's ops address).
func newNginxChild(bin, logDir, upstream string) (*child, error) {
	c, err := prepareChild("nginx", bin, logDir)
	if err != nil {
		return nil, err
	}
	cfg := nginxConfig{Dir: c.dir, Listen: c.public, Status: c.opsAddr, Upstream: upstream, Partners: drillPartners}
	if os.Geteuid() == 0 {
		cfg.User = "root"
	}
	conf, err := cfg.render()
	if err != nil {
		return nil, err
	}
	confPath := filepath.Join(c.dir, "nginx.conf")
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
		return nil, err
	}
	// -e: nginx opens its compiled-in error log before it reads the
	// configuration's. Its own process group: SIGKILL reaches the workers.
	c.args, c.group = []string{"-p", c.dir, "-c", confPath, "-e", "stderr"}, true
	return c, nil
}

// start starts the backend, then nginx once the backend is ready. Public is
// nginx; Ops is the backend's own ops API, so the drill's faults and ledger
// check never pass nginx's limits.
func (a *nginxArm) start(ctx context.Context) (drill.Endpoints, error) {
	be, err := a.backend.start(ctx)
	if err != nil {
		return drill.Endpoints{}, err
	}
	pe, err := a.proxy.start(ctx)
	if err != nil {
		a.backend.kill()
		return drill.Endpoints{}, err
	}
	return drill.Endpoints{Public: pe.Public, Ops: be.Ops, PIDs: append(pe.PIDs, be.PIDs...)}, nil
}

func (a *nginxArm) Stop(ctx context.Context) error {
	var errs []error
	for _, c := range []*child{a.proxy, a.backend} {
		if c != nil {
			errs = append(errs, c.stop(ctx))
		}
	}
	return errors.Join(errs...)
}

// Switch takes the identity store fault on the backend, as the 2025 arm.
func (a *nginxArm) Switch(ctx context.Context, fault string, on bool) error {
	return switchIdentity(ctx, a.backend.opsAddr, "", fault, on)
}

// KillRestart SIGKILLs the system under test, both programs (nginx's whole
// process group), and starts them again on the same ports and ledger:
// nginx holds no state, so this is the backend's crash and restart, with
// nginx's connections cut as the other arms' are.
func (a *nginxArm) KillRestart(ctx context.Context) (drill.Endpoints, error) {
	a.proxy.kill()
	a.backend.kill()
	return a.start(ctx)
}
