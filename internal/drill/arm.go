package drill

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Arm is one system under test: the 2025 architecture, rempart, nginx...
// Start brings up a fresh estate behind it and returns when it is ready.
type Arm interface {
	Name() string
	Start(ctx context.Context) (Endpoints, error)
	Stop(ctx context.Context) error
}

// Endpoints are where a started arm listens. Both URLs must be on loopback:
// the drill sends nothing anywhere else.
type Endpoints struct {
	// Public is the base URL the populations' requests go to.
	Public string
	// Ops is the base URL of the estate ops API (faults, ledger check);
	// empty when the arm has none, in which case faults and the check are
	// recorded as skipped.
	Ops string
	// PIDs are the processes whose CPU and memory are summed, each with
	// all its descendants (an nginx master's workers); empty means the
	// drill's own process (an in-process arm, whose figures then include
	// the load generator).
	PIDs []int
	// OpsToken, when set, is sent as "Authorization: Bearer" on every ops
	// API call (rempart serve's ops API wants its automation token).
	OpsToken string
	// PublicTLS is the https:// base URL of the public listener when the
	// arm serves TLS (rempart serves TLS and plain HTTP on one port); empty
	// when it serves plain HTTP only.
	PublicTLS string
	// TLS trusts the arm's server certificate for PublicTLS and presents
	// no client certificate, as a customer's app (or an attacker) does.
	TLS *tls.Config
	// Partners are, by partner network (Target.Partner), the client TLS
	// configurations of the partner networks for PublicTLS: each trusts
	// the arm's server certificate and presents that partner's client
	// certificate. A partner population's request to a channel whose
	// partner is here goes to PublicTLS with it; without one it goes in
	// plain HTTP to Public.
	Partners map[string]*tls.Config
}

// Authorizer is implemented by arms whose returning customers hold a
// session: it attaches the session to a request of a population marked
// `session: true`.
type Authorizer interface {
	Authorize(r *http.Request, c Customer)
}

// Switcher is implemented by arms that take faults the estate ops API does
// not carry: FaultIdentityStoreStuck, FaultRedisLost. Without it those faults
// are recorded as unsupported by the arm.
type Switcher interface {
	Switch(ctx context.Context, fault string, on bool) error
}

// Seeder is implemented by arms whose scrubbing would take the drill's setup
// logins (the logins of the hours before the drill, compressed into a second
// or two from the generator's address) for a surge: the drill calls
// Seeding(ctx, true) before them and Seeding(ctx, false) after, before the
// first arrival.
type Seeder interface {
	Seeding(ctx context.Context, on bool) error
}

// Restarter is implemented by arms that can be SIGKILLed and restarted for
// the kill_restart fault; it returns the endpoints of the new process.
type Restarter interface {
	KillRestart(ctx context.Context) (Endpoints, error)
}

// opsTimeout bounds one ops API call: a fault switch must land at the phase
// boundary, not whenever a saturated arm gets round to it.
const opsTimeout = 5 * time.Second

// ops talks to an arm's estate ops API.
type ops struct {
	base   string
	token  string // bearer token for every call; empty sends none
	client *http.Client
	settle time.Duration // how long a failing ledger check is repeated
}

// setFault replaces a component's fault state.
func (o ops) setFault(ctx context.Context, component string, c Component) error {
	body, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode fault: %w", err)
	}
	_, err = o.do(ctx, http.MethodPut, "/ops/estate/faults/"+component, body)
	return err
}

// LedgerCheck is the estate's invariant check after an arm's run: money is
// conserved, and every write the drill saw acknowledged is in the ledger
// exactly once.
type LedgerCheck struct {
	OK      bool   `json:"ok"`
	Skipped bool   `json:"skipped,omitempty"`
	Error   string `json:"error,omitempty"`
	// Acknowledged is how many keys of writes answered 2xx were checked.
	Acknowledged int `json:"acknowledged"`
	// Attempts counts checks: a failing one is repeated for a few seconds,
	// since writes taken in stand-in may still be on their way to the core.
	Attempts int             `json:"attempts"`
	Body     json.RawMessage `json:"body,omitempty"`
}

// Settling: how long a failing check is repeated, and how often.
const (
	// 30 s: a stand-in decision lands once the core is healthy again, which
	// can take the breaker's open delay (5 s and more) plus the lock
	// convoy's 5 s time-out after the faults are healed.
	checkSettle = 30 * time.Second
	checkEvery  = time.Second
)

// check posts the acknowledged keys to the estate's check, repeating it
// while it fails for up to o.settle.
func (o ops) check(ctx context.Context, acked []string) LedgerCheck {
	if o.base == "" {
		return LedgerCheck{Skipped: true, Error: "the arm has no ops API"}
	}
	body, err := json.Marshal(map[string][]string{"acknowledged": acked})
	if err != nil {
		return LedgerCheck{Error: fmt.Sprintf("encode check: %v", err)}
	}
	deadline := time.Now().Add(o.settle)
	var lc LedgerCheck
	for n := 1; ; n++ {
		lc = o.checkOnce(ctx, body)
		lc.Acknowledged, lc.Attempts = len(acked), n
		if lc.OK || time.Now().After(deadline) || !sleep(ctx, checkEvery) {
			break
		}
	}
	return lc
}

func (o ops) checkOnce(ctx context.Context, body []byte) LedgerCheck {
	b, err := o.do(ctx, http.MethodPost, checkPath, body)
	if err != nil {
		return LedgerCheck{Error: err.Error()}
	}
	var v struct {
		OK bool `json:"ok"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return LedgerCheck{Error: fmt.Sprintf("decode check: %v", err)}
	}
	return LedgerCheck{OK: v.OK, Body: json.RawMessage(b)}
}

const checkPath = "/ops/estate/check"

func (o ops) do(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	if o.base == "" {
		return nil, fmt.Errorf("the arm has no ops API")
	}
	ctx, cancel := context.WithTimeout(ctx, opsTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, o.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("ops request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if o.token != "" {
		req.Header.Set("Authorization", "Bearer "+o.token)
	}
	resp, err := o.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read: %w", method, path, err)
	}
	// A failed check answers 409 with its report: an answer to decode, not
	// an error.
	if resp.StatusCode/100 != 2 && !(path == checkPath && resp.StatusCode == http.StatusConflict && json.Valid(b)) {
		return nil, fmt.Errorf("%s %s: status %d: %.200s", method, path, resp.StatusCode, b)
	}
	return b, nil
}

// loopbackURL checks that a base URL points at an IPv4 loopback literal and
// rewrites "localhost" to 127.0.0.1 (source-bound dials are IPv4).
func loopbackURL(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("endpoint %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("endpoint %q: want an http:// or https:// URL", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		host = "127.0.0.1"
		if p := u.Port(); p != "" {
			u.Host = net.JoinHostPort(host, p)
		} else {
			u.Host = host
		}
	}
	// IPv4 only: populations with many sources bind addresses in 127/8.
	if ip := net.ParseIP(host); ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("endpoint %q: the drill only sends to IPv4 loopback addresses", raw)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}
