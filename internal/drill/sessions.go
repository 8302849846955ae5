package drill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rempart/rempart/internal/identity/users"
)

// slots is how many customers of a population hold something the drill
// made for them before the load: a session, or a device that logged in
// before. Zero when the population's customers are drawn from all.
func (p *Population) slots() int {
	if p.Session {
		return p.Sessions
	}
	return p.Devices
}

// sessionSlot is the session (or device) a population's arrival uses, -1 for
// a population without.
func (e *engine) sessionSlot(p *Population, customer int) int {
	if p.slots() <= 0 {
		return -1
	}
	return customer % p.slots()
}

// sessionCustomer is the customer holding slot of population pop: slots are
// spread evenly over all customers, each population's one further on, so
// two populations never share a customer (nor the customer's phone, whose
// newest code a login reads).
func (e *engine) sessionCustomer(pop int, p *Population, slot int) int {
	return (slot*(e.s.Customers/p.slots()) + pop) % e.s.Customers
}

// authorizeRequest attaches the session of d's customer: the arm's own
// (Authorizer), or the access token its login gave.
func (e *engine) authorizeRequest(r *http.Request, d *Draw) {
	if e.authorize != nil {
		e.authorize(r, d.Customer)
		return
	}
	if d.slot < 0 || d.pop >= len(e.tokens) || d.slot >= len(e.tokens[d.pop]) {
		return
	}
	if t := e.tokens[d.pop][d.slot]; t != "" {
		r.Header.Set("Authorization", "Bearer "+t)
	}
}

// stolenSession is a session a stolen-token attack may use: its customer
// and access token (empty on an arm attaching its own sessions).
type stolenSession struct {
	customer Customer
	token    string
}

// collectSessions lists the sessions of every population holding them,
// for stolen-token attacks: the tokens seeded for them or, on an arm that
// attaches its own (Authorizer), their customers.
func (e *engine) collectSessions() {
	e.stolen = e.stolen[:0]
	for pi := range e.s.Populations {
		p := &e.s.Populations[pi]
		if !p.Session {
			continue
		}
		for k := range p.Sessions {
			var tok string
			if pi < len(e.tokens) && k < len(e.tokens[pi]) {
				tok = e.tokens[pi][k]
			}
			if tok != "" || e.authorize != nil {
				e.stolen = append(e.stolen, stolenSession{customer: e.customers(e.sessionCustomer(pi, p, k)), token: tok})
			}
		}
	}
}

// steal picks the session a stolen-token attack uses against d's customer:
// one of another customer's, drawn; none when no population holds one.
func (e *engine) steal(d *Draw) (Customer, string) {
	n := len(e.stolen)
	if n == 0 {
		return Customer{}, ""
	}
	k := d.Rand.IntN(n)
	for i := range min(n, 2) {
		if s := e.stolen[(k+i)%n]; s.customer.ID != d.Customer.ID {
			return s.customer, s.token
		}
	}
	return Customer{}, ""
}

// authorizeStolen attaches to a stolen-token attack the session of its
// thief, not of its victim.
func (e *engine) authorizeStolen(r *http.Request, d *Draw) {
	switch {
	case d.token != "":
		r.Header.Set("Authorization", "Bearer "+d.token)
	case e.authorize != nil && d.Thief.ID != "":
		e.authorize(r, d.Thief)
	}
}

// SessionSeed is how the sessions (or devices) of one population were made.
type SessionSeed struct {
	Population string `json:"population"`
	// What was made: "sessions" (access tokens) or "devices" (device
	// cookies).
	What     string  `json:"what"`
	Wanted   int     `json:"wanted"`
	LoggedIn int     `json:"logged_in"`
	Seconds  float64 `json:"seconds"`
	// Failures counts failed logins by outcome, e.g. {"503": 3}.
	Failures map[string]int `json:"failures,omitempty"`
	// Blocked is how many of the customers were then blocked in the arm's
	// directory (a Blocked population).
	Blocked int `json:"blocked,omitempty"`
}

// Seeding: how many logins run at once, how many times one is tried, and
// how long one attempt may take.
const (
	seedWorkers  = 8
	seedAttempts = 3
	seedTimeout  = 10 * time.Second
)

// seedSessions logs in, before the load starts and through the arm's real
// login, the customers of every population holding sessions or logging in
// from known devices, keeping the access tokens (sessions) and the device
// cookies (both: a population holding sessions that logs in again does so
// from the device it logged in on); progress goes to w. A customer whose
// login fails sends its requests without a token, and logs in from an
// unknown device.
func (e *engine) seedSessions(ctx context.Context, w io.Writer, label string) []SessionSeed {
	e.tokens = make([][]string, len(e.s.Populations))
	e.devices = make([][]string, len(e.s.Populations))
	e.busy = make([][]atomic.Bool, len(e.s.Populations))
	var out []SessionSeed
	login := &Login{User: func(d *Draw) string { return d.Customer.ID }, Password: derivedPassword}
	for pi := range e.s.Populations {
		p := &e.s.Populations[pi]
		n := p.slots()
		if n <= 0 || p.Session && e.authorize != nil {
			continue
		}
		seed := SessionSeed{Population: p.Name, What: "sessions", Wanted: n, Failures: map[string]int{}}
		if !p.Session {
			seed.What = "devices"
		}
		toks := make([]string, n)
		devs := make([]string, n)
		started := time.Now()
		var next, done atomic.Int64
		var mu sync.Mutex
		stop := make(chan struct{})
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					fmt.Fprintf(w, "%s · logging in %s's %s: %d/%d\n", label, p.Name, seed.What, done.Load(), n)
				}
			}
		}()
		var wg sync.WaitGroup
		for range seedWorkers {
			wg.Go(func() {
				for {
					k := int(next.Add(1) - 1)
					if k >= n || ctx.Err() != nil {
						return
					}
					// slot -1: the seeding login is the device's first.
					d := &Draw{Customer: e.customers(e.sessionCustomer(pi, p, k)), slot: -1, pop: pi,
						Rand: rand.New(rand.NewPCG(uint64(k), uint64(pi))), Key: "seed-" + strconv.Itoa(k)}
					var res attempt
					for range seedAttempts {
						actx, cancel := context.WithTimeout(ctx, seedTimeout)
						var c credentials
						res, c, _ = e.login(actx, e.pooled.Do, p, login, d)
						cancel()
						if res.out == outOK {
							toks[k], devs[k] = c.token, c.device
							break
						}
					}
					mu.Lock()
					if res.out != outOK {
						seed.Failures[res.status]++
					} else {
						seed.LoggedIn++
					}
					mu.Unlock()
					done.Add(1)
				}
			})
		}
		wg.Wait()
		close(stop)
		seed.Seconds = time.Since(started).Seconds()
		// A session's login was also its device's: the app logs in again
		// from there when it must.
		if p.Session {
			e.tokens[pi] = toks
		}
		e.devices[pi] = devs
		e.busy[pi] = make([]atomic.Bool, n)
		if p.Blocked {
			seed.Blocked = e.blockSeeded(ctx, pi, p, devs)
		}
		out = append(out, seed)
		fmt.Fprintf(w, "%s · %s: %d of %d customers logged in (%s), in %.1f s\n", label, p.Name, seed.LoggedIn, seed.Wanted, seed.What, seed.Seconds)
		if p.Blocked {
			fmt.Fprintf(w, "%s · %s: %d of them blocked in the directory\n", label, p.Name, seed.Blocked)
		}
	}
	e.collectSessions()
	return out
}

// blockSeeded blocks, in the arm's directory, the customers whose devices
// logged in: the bank blocked them after those logins, before the load.
func (e *engine) blockSeeded(ctx context.Context, pi int, p *Population, devs []string) int {
	blocked := 0
	for k := range devs {
		id := e.customers(e.sessionCustomer(pi, p, k)).ID
		bctx, cancel := context.WithTimeout(ctx, opsTimeout)
		err := e.block(bctx, id)
		cancel()
		if err == nil {
			blocked++
		}
	}
	return blocked
}

// blockCustomer blocks a customer in the arm's directory.
func (o *ops) blockCustomer(ctx context.Context, id string) error {
	_, err := o.do(ctx, http.MethodPut, "/ops/identity/users/"+url.PathEscape(id), []byte(`{"blocked":true}`))
	return err
}

// derivedPassword is the password the identity provider gives a derived
// customer.
func derivedPassword(d *Draw) string { return users.DerivedPassword(d.Customer.ID) }

// otpCode finds the one-time code in an SMS text.
var otpCode = regexp.MustCompile(`\b\d{6}\b`)

// errNoCode means the customer's phone got no login code.
var errNoCode = errors.New("no one-time code on the phone")

// phoneOTP reads the newest code sent to phone from the estate's simulated
// SMS gateway: the customer reading their phone.
func (o *ops) phoneOTP(ctx context.Context, phone string) (string, error) {
	b, err := o.do(ctx, http.MethodGet, "/ops/estate/sms?limit=5&to="+url.QueryEscape(phone), nil)
	if err != nil {
		return "", err
	}
	var v struct {
		Messages []struct {
			Text string `json:"text"`
		} `json:"messages"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return "", errNoCode
	}
	// The same phone gets 3-D Secure codes for its card payments.
	for _, m := range v.Messages {
		if strings.Contains(m.Text, "3-D Secure") {
			continue
		}
		if c := otpCode.FindString(m.Text); c != "" {
			return c, nil
		}
	}
	return "", errNoCode
}
