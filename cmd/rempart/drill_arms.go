package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rempart/rempart/internal/config"
	"github.com/rempart/rempart/internal/drill"
	"github.com/rempart/rempart/internal/pki"
)

// The drill's arms run as child processes of the drill, so that each arm's
// CPU and memory are its own (Endpoints.PIDs) and not the load generator's.
// Both run the same simulated bank and the same identity provider (login,
// SMS code, tokens, password costs); what differs is the architecture.
//
//   - rempart: the real `rempart serve` (gateway, scrubber, waiting room,
//     replay cache, breakers and fallbacks, edge token verification) in
//     front of its in-process simulated estate.
//   - 2025: `rempart legacy`, the architecture that failed (internal/legacy):
//     sessions in the legacy core's database, every customer request's
//     token checked against it, logins without admission, waiting room or
//     scrubbing, one fixed time-out, no breaker, stand-in or shedding.
//   - nginx: the 2025 backend behind nginx with per-address limits on the
//     login path and time-outs (drill_nginx.go), when nginx is installed.

// drillBinEnv names the rempart binary the arms run; default os.Executable().
// Tests set it, since the test binary is not rempart.
const drillBinEnv = "REMPART_DRILL_BIN"

// childReady bounds how long a child may take to answer /readyz 200.
const childReady = 30 * time.Second

// childStop is how long a SIGTERMed child has to exit before it is killed.
const childStop = 10 * time.Second

// drillBinary is the rempart binary to start: flag, then env, then self.
func drillBinary(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if b := os.Getenv(drillBinEnv); b != "" {
		return b, nil
	}
	return os.Executable()
}

// freePort returns a loopback address nobody listens on right now.
func freePort() (string, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// child is one process with a fixed command line (rempart, or nginx): a
// restart reuses its data directory and ports. It is ready when its ops
// address answers /readyz 200.
type child struct {
	name    string // arm name, for messages
	bin     string
	args    []string
	dir     string // data dir, also holds child.log and config.yaml
	public  string // host:port
	opsAddr string // host:port
	group   bool   // own process group, killed as one (nginx's workers)
	token   func() (string, error)
	logPath string // the child's stderr and stdout

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	log  *os.File
}

// newChild prepares a rempart child: a fresh data directory, two free ports
// and a config file.
func newChild(name, bin, sub, logDir string, cfg string) (*child, error) {
	c, err := prepareChild(name, bin, logDir)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(c.dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	c.args = []string{sub, "--config", cfgPath, "--listen", c.public, "--ops-listen", c.opsAddr, "--data-dir", filepath.Join(c.dir, "data")}
	return c, nil
}

// prepareChild makes a child's directory, picks its public and ops ports
// and names its log: logDir/arm-NAME.log, or child.log in its directory.
func prepareChild(name, bin, logDir string) (*child, error) {
	dir, err := os.MkdirTemp("", "rempart-drill-"+name+"-")
	if err != nil {
		return nil, err
	}
	pub, err := freePort()
	if err != nil {
		return nil, err
	}
	ops, err := freePort()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "child.log")
	if logDir != "" {
		if err := os.MkdirAll(logDir, 0o755); err != nil {
			return nil, err
		}
		logPath = filepath.Join(logDir, "arm-"+name+".log")
		os.Remove(logPath) // one run's log
	}
	return &child{name: name, bin: bin, dir: dir, public: pub, opsAddr: ops, logPath: logPath}, nil
}

// start runs the process and waits until its /readyz answers 200.
func (c *child) start(ctx context.Context) (drill.Endpoints, error) {
	c.mu.Lock()
	if c.log == nil {
		f, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			c.mu.Unlock()
			return drill.Endpoints{}, err
		}
		c.log = f
	}
	cmd := exec.Command(c.bin, c.args...)
	cmd.Stdout, cmd.Stderr = c.log, c.log
	cmd.Env = os.Environ()
	if c.group {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	if err := cmd.Start(); err != nil {
		c.mu.Unlock()
		return drill.Endpoints{}, fmt.Errorf("%s: start %s: %w", c.name, c.bin, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	c.cmd, c.done = cmd, done
	c.mu.Unlock()

	if err := waitReady(ctx, "http://"+c.opsAddr+"/readyz", done); err != nil {
		c.kill()
		return drill.Endpoints{}, fmt.Errorf("%s: %w (log: %s)", c.name, err, c.logPath)
	}
	eps := drill.Endpoints{Public: "http://" + c.public, Ops: "http://" + c.opsAddr, PIDs: []int{cmd.Process.Pid}}
	if c.token != nil {
		tok, err := c.token()
		if err != nil {
			c.kill()
			return drill.Endpoints{}, fmt.Errorf("%s: ops token: %w", c.name, err)
		}
		eps.OpsToken = tok
	}
	return eps, nil
}

func waitReady(ctx context.Context, url string, exited <-chan struct{}) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(childReady)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := hc.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("exited before it was ready")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s", childReady)
		}
	}
}

// kill SIGKILLs the process, or its whole group, and waits for it.
func (c *child) kill() {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	if !c.group {
		cmd.Process.Kill()
		<-done
		return
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
	// The workers were the master's children: a restart must not find one
	// still holding the listening socket.
	for deadline := time.Now().Add(groupGone); groupRunning(cmd.Process.Pid) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
}

// groupGone bounds how long kill waits for a killed group's other members.
const groupGone = 2 * time.Second

// groupRunning reports whether a process of the group is alive: not a
// zombie, which holds no socket and which init may take its time to reap.
func groupRunning(pgid int) bool {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		if d.Name()[0] < '0' || d.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if i := bytes.LastIndexByte(b, ')'); err == nil && i >= 0 {
			// After the command name: state, ppid, pgrp (proc(5)).
			if f := bytes.Fields(b[i+1:]); len(f) > 2 && string(f[2]) == strconv.Itoa(pgid) && string(f[0]) != "Z" {
				return true
			}
		}
	}
	return false
}

// stop SIGTERMs the process, kills it after childStop, and removes the data
// directory unless keep.
func (c *child) stop(ctx context.Context) error {
	c.mu.Lock()
	cmd, done := c.cmd, c.done
	c.mu.Unlock()
	var err error
	if cmd != nil {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(childStop):
			err = fmt.Errorf("%s: still running %s after SIGTERM, killed", c.name, childStop)
			c.kill()
		case <-ctx.Done():
			c.kill()
			err = ctx.Err()
		}
		if err == nil {
			if st := cmd.ProcessState; st != nil && !st.Success() {
				err = fmt.Errorf("%s: %s (log: %s)", c.name, st, c.logPath)
			}
		}
	}
	if c.log != nil {
		c.log.Close()
	}
	if err == nil {
		os.RemoveAll(c.dir)
	}
	return err
}

// rempartArm runs `rempart serve` as a child process.
type rempartArm struct {
	bin       string
	customers int
	logDir    string // where the child's log goes; empty: its temp dir
	c         *child
}

// armConfig is the generated configuration of both arms. The scrubber no
// longer exempts partners by source address (they send from 127.0.0.1, the
// generator's pooled connections), only by the identity the gateway
// authenticates; until the drill's partners present certificates their
// traffic is scrubbed like anyone's.
//
// Both arms hash passwords at a quarter of OWASP's memory and one pass
// (about an eighth of the cost, ~3 ms a check here): the drill's login
// volumes are sized to saturate an identity provider that shares two cores
// with the bank and the load generator, and at full cost a botnet's hashes
// would leave the generator itself short of CPU in the arm without
// scrubbing, which measures the machine, not the arm.
//
// The scrubber learns its baselines for 2 s instead of the default 30 s:
// a drill compresses the calm before the attack to 2-5 s, where a real
// deployment has had hours of ordinary traffic to learn from. With the
// default it never calls the flood an attack from its rate, bots' logins
// reach the password check, and the provider's hashes and the store writes
// of their authorization requests take the process's CPU from everything
// else (measured in the full drill: card authorisations fell to 13 % in the
// botnet phase). The 2025 arm has no scrubber and ignores the setting.
func armConfig(customers int) string {
	return fmt.Sprintf(`# generated by rempart drill
log_level: warn
ops_token_sms: true
estate:
  customers: %d
identity:
  password_hash: {memory_kib: 4864, time: 1}
scrub:
  warm_up: 2s
`, customers)
}

func (a *rempartArm) Name() string { return "rempart" }

func (a *rempartArm) Start(ctx context.Context) (drill.Endpoints, error) {
	c, err := newChild("rempart", a.bin, "serve", a.logDir, armConfig(a.customers))
	if err != nil {
		return drill.Endpoints{}, err
	}
	data := filepath.Join(c.dir, "data")
	c.token = func() (string, error) {
		b, err := os.ReadFile(filepath.Join(data, "admin", "ops-token"))
		return strings.TrimSpace(string(b)), err
	}
	a.c = c
	return a.withPartners(c.start(ctx))
}

// withPartners adds to a started rempart arm's endpoints its TLS listener
// and the demo partners' certificates that serve created in data_dir/pki:
// the drill's partner networks call it over mutual TLS, as they call a
// bank.
func (a *rempartArm) withPartners(eps drill.Endpoints, err error) (drill.Endpoints, error) {
	if err != nil {
		return eps, err
	}
	demo := pki.Demo{Dir: filepath.Join(a.c.dir, "data", "pki")}
	eps.PublicTLS = "https://" + a.c.public
	if eps.TLS, err = demo.ClientTLS(""); err != nil {
		return eps, fmt.Errorf("rempart: %w", err)
	}
	eps.Partners = make(map[string]*tls.Config)
	for _, p := range config.DemoPartners() {
		cfg, err := demo.ClientTLS(p.Name)
		if err != nil {
			return eps, fmt.Errorf("rempart: partner %s: %w", p.Name, err)
		}
		eps.Partners[p.Name] = cfg
	}
	return eps, nil
}

func (a *rempartArm) Stop(ctx context.Context) error {
	if a.c == nil {
		return nil
	}
	return a.c.stop(ctx)
}

// Switch takes the identity store fault through the ops API.
func (a *rempartArm) Switch(ctx context.Context, fault string, on bool) error {
	tok, err := a.c.token()
	if err != nil {
		return err
	}
	return switchIdentity(ctx, a.c.opsAddr, tok, fault, on)
}

// switchIdentity flips an arm's identity store fault through its ops API
// (bearer token when not empty).
func switchIdentity(ctx context.Context, opsAddr, token, fault string, on bool) error {
	if fault != drill.FaultIdentityStoreStuck {
		return fmt.Errorf("fault %s not supported", fault)
	}
	return opsCall(ctx, opsAddr, token, http.MethodPut, "/ops/identity/faults", fmt.Sprintf(`{"user_store_stuck":%t}`, on), http.StatusOK)
}

// seedingNetwork is where the drill's setup logins come from: the load
// generator's own pooled connections.
const seedingNetwork = "127.0.0.1/32"

// Seeding allow-lists the generator's address in the arm's scrubber while
// the drill logs its customers in before the load: those logins stand for
// the hours of the morning before the drill, compressed into a second or
// two from one address, and no scrubber should take them for the surge
// they are not (the nginx arm exempts the same address). An allow-listed
// network is not counted by detection either, so the arm learns its
// baselines from the scenario's traffic alone. The entry is removed before
// the first arrival.
func (a *rempartArm) Seeding(ctx context.Context, on bool) error {
	tok, err := a.c.token()
	if err != nil {
		return err
	}
	if on {
		return opsCall(ctx, a.c.opsAddr, tok, http.MethodPost, "/ops/scrub/lists/allow",
			`{"cidr":"`+seedingNetwork+`","ttl":"10m","reason":"rempart drill: the logins before the load"}`, http.StatusCreated)
	}
	return opsCall(ctx, a.c.opsAddr, tok, http.MethodDelete, "/ops/scrub/lists/allow?cidr="+url.QueryEscape(seedingNetwork), "", http.StatusNoContent)
}

// opsCall sends one ops API request and wants the status want.
func opsCall(ctx context.Context, opsAddr, token, method, path, body string, want int) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+opsAddr+path, bytes.NewBufferString(body))
	if err != nil {
		return err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d: %.200s", method, path, resp.StatusCode, b)
	}
	return nil
}

// KillRestart SIGKILLs `rempart serve` and starts it again on the same data
// directory and ports.
func (a *rempartArm) KillRestart(ctx context.Context) (drill.Endpoints, error) {
	a.c.kill()
	return a.withPartners(a.c.start(ctx))
}

// arm2025 runs `rempart legacy`: see the comment at the top.
type arm2025 struct {
	bin       string
	customers int
	logDir    string
	c         *child
}

func (a *arm2025) Name() string { return "2025" }

func (a *arm2025) Start(ctx context.Context) (drill.Endpoints, error) {
	c, err := newChild("2025", a.bin, "legacy", a.logDir, armConfig(a.customers))
	if err != nil {
		return drill.Endpoints{}, err
	}
	a.c = c
	return c.start(ctx)
}

func (a *arm2025) Stop(ctx context.Context) error {
	if a.c == nil {
		return nil
	}
	return a.c.stop(ctx)
}

// Switch takes the identity store fault (the directory and the session
// database hang together) through the ops API.
func (a *arm2025) Switch(ctx context.Context, fault string, on bool) error {
	return switchIdentity(ctx, a.c.opsAddr, "", fault, on)
}

// KillRestart SIGKILLs the arm and starts it again on the same ledger.
func (a *arm2025) KillRestart(ctx context.Context) (drill.Endpoints, error) {
	a.c.kill()
	return a.c.start(ctx)
}

// newArm returns the named arm; nginx is the nginx binary, "" when it is
// not installed.
func newArm(name, bin, nginx string, customers int, logDir string) (drill.Arm, error) {
	switch name {
	case "rempart":
		return &rempartArm{bin: bin, customers: customers, logDir: logDir}, nil
	case "2025":
		return &arm2025{bin: bin, customers: customers, logDir: logDir}, nil
	case "nginx":
		if nginx == "" {
			return nil, errNoNginx
		}
		return &nginxArm{bin: bin, nginx: nginx, customers: customers, logDir: logDir}, nil
	}
	return nil, fmt.Errorf("--arms: unknown arm %q (have 2025, nginx, rempart)", name)
}
