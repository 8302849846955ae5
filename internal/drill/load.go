package drill

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rempart/rempart/client"
)

// engine sends one scenario's schedule to one arm, open loop: each request
// leaves at its intended time whatever happened to the previous ones, and its
// latency runs from that intended time. Nothing waits for a slot: an arrival
// that finds MaxInFlight requests outstanding is counted as client-dropped.
type engine struct {
	s         *Scenario
	rec       *recorder
	targets   [][]Target // [pop][mix index]
	channel   [][]int    // [pop][mix index] -> channel index
	customers Customers
	authorize func(*http.Request, Customer) // the arm's own sessions (Authorizer), or nil
	tokens    [][]string                    // [pop][slot]: access tokens of seeded sessions
	devices   [][]string                    // [pop][slot]: device cookies of seeded devices
	busy      [][]atomic.Bool               // [pop][slot]: a login from this device is under way
	otp       func(ctx context.Context, phone string) (string, error)
	// block blocks a customer in the arm's directory (a Blocked
	// population's, after its devices' logins).
	block  func(ctx context.Context, customer string) error
	stolen []stolenSession // sessions stolen-token attacks use

	pooled   *http.Client                // keep-alive connections from the default address
	partners atomic.Pointer[partnerPool] // partners' TLS connections, when the arm publishes them
	sourced  sources                     // keep-alive connections per drawn source address
	sdk      []*client.Client            // [pop]: SDK clients of sdk populations on the default address
	base     atomic.Pointer[string]
	sem      chan struct{}
	wg       sync.WaitGroup

	ackMu sync.Mutex
	acked []string // Idempotency-Keys of ledger writes answered 2xx
}

func newEngine(s *Scenario, rec *recorder, chIndex map[string]int, customers Customers) *engine {
	e := &engine{s: s, rec: rec, customers: customers, sem: make(chan struct{}, s.MaxInFlight)}
	for _, p := range s.Populations {
		m := newMix(p.Requests)
		var ts []Target
		var cs []int
		for _, n := range m.names {
			t := s.targets[n]
			ts = append(ts, t)
			cs = append(cs, chIndex[t.Channel])
		}
		e.targets = append(e.targets, ts)
		e.channel = append(e.channel, cs)
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	e.pooled = &http.Client{CheckRedirect: noRedirect, Transport: &http.Transport{
		DialContext:         dialer.DialContext,
		MaxIdleConnsPerHost: s.MaxInFlight,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}}
	return e
}

// setBase points the engine at an arm; SDK clients are made for it then
// (requests carry absolute URLs, so a restarted arm needs none new).
func (e *engine) setBase(base string) {
	e.base.Store(&base)
	if e.sdk != nil {
		return
	}
	e.sdk = make([]*client.Client, len(e.s.Populations))
	for i := range e.s.Populations {
		if p := &e.s.Populations[i]; p.Retry.Policy == RetrySDK && p.Sources == 0 {
			e.sdk[i] = newSDK(e.pooled, p, base)
		}
	}
}

// partnerPool is how partner populations reach an arm that authenticates
// partners by certificate: one client per partner network, each with its
// own keep-alive connections (one TLS handshake per connection, as a
// scheme's gateway keeps its links to a bank open).
type partnerPool struct {
	base    string                  // the arm's https:// base URL
	clients map[string]*http.Client // by partner network
	// anonymous trusts the arm's certificate and presents none: what
	// customers' apps and attackers speak TLS with.
	anonymous *tls.Config
}

// setPartners points partner populations at an arm's TLS listener; with no
// base or no configurations they send in plain HTTP to the plain base.
func (e *engine) setPartners(base string, anonymous *tls.Config, cfgs map[string]*tls.Config) {
	var pp *partnerPool
	if base != "" && (len(cfgs) > 0 || anonymous != nil) {
		pp = &partnerPool{base: base, clients: make(map[string]*http.Client, len(cfgs)), anonymous: anonymous}
		e.sourced.tls.Store(anonymous)
		for name, cfg := range cfgs {
			cfg = cfg.Clone()
			// A connection lost to a time-out is replaced by a resumed
			// session, as partners' TLS stacks do: without it, each
			// reconnection of a saturated moment costs a full handshake
			// with certificate signatures on both sides, which the
			// generator and the arm pay for on the same two cores.
			if cfg.ClientSessionCache == nil {
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(64)
			}
			dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
			pp.clients[name] = &http.Client{CheckRedirect: noRedirect, Transport: &http.Transport{
				DialContext:         dialer.DialContext,
				TLSClientConfig:     cfg,
				TLSHandshakeTimeout: 5 * time.Second,
				MaxIdleConnsPerHost: e.s.MaxInFlight,
				IdleConnTimeout:     30 * time.Second,
				DisableCompression:  true,
			}}
		}
	}
	if old := e.partners.Swap(pp); old != nil {
		old.close()
	}
}

func (pp *partnerPool) close() {
	for _, c := range pp.clients {
		c.CloseIdleConnections()
	}
}

func (e *engine) close() {
	e.pooled.CloseIdleConnections()
	e.sourced.close()
	if pp := e.partners.Load(); pp != nil {
		pp.close()
	}
}

// run sends the whole schedule from start and returns once every request
// sent has finished (each is bounded by its time-outs) or ctx is done.
func (e *engine) run(ctx context.Context, start time.Time) {
	sched := newSchedule(e.s)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	defer e.wg.Wait()
	stopSweep := make(chan struct{})
	defer close(stopSweep)
	go func() {
		t := time.NewTicker(sourceIdle / 2)
		defer t.Stop()
		for {
			select {
			case <-stopSweep:
				return
			case now := <-t.C:
				e.sourced.sweep(now)
			}
		}
	}()
	for {
		a, ok := sched.Next()
		if !ok {
			return
		}
		due := start.Add(a.at)
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		ch := e.channel[a.pop][a.target]
		select {
		case e.sem <- struct{}{}:
			e.rec.offer(a, ch, time.Since(due), false)
			e.wg.Add(1)
			go e.send(ctx, a, ch, due)
		default:
			e.rec.offer(a, ch, time.Since(due), true)
		}
	}
}

// attempt is the result of one HTTP exchange.
type attempt struct {
	out        outcome
	status     string
	code       int
	retryAfter time.Duration
	// declined: a 2xx that moved no money (a card or ATM decline, a declined
	// transfer). It is answered, but no ledger write is acknowledged.
	declined bool
}

// send makes one logical request: its attempts, as the population's retry
// policy dictates, and records the final outcome.
func (e *engine) send(ctx context.Context, a arrival, ch int, due time.Time) {
	defer e.wg.Done()
	p := &e.s.Populations[a.pop]
	t := e.targets[a.pop][a.target]
	slot, ci := e.sessionSlot(p, a.customer), a.customer
	if slot >= 0 && t.Login != nil {
		var release func()
		slot, release = e.claim(a.pop, slot)
		defer release()
	}
	if slot >= 0 {
		ci = e.sessionCustomer(a.pop, p, slot)
	}
	d := &Draw{
		Customer:     e.customers(ci),
		Counterparty: e.customers(a.other),
		Rand:         rand.New(rand.NewPCG(a.seed, a.seed^0x9e3779b97f4a7c15)),
		Key:          "drill-" + strconv.FormatUint(a.seed, 16),
		pop:          a.pop,
		slot:         slot,
	}
	if t.Stolen {
		d.Thief, d.token = e.steal(d)
	}
	reqPath := t.expand(d)
	var contentType string
	var body []byte
	if t.Body != nil {
		contentType, body = t.Body(d)
	}
	var res attempt
	var n int
	switch {
	case t.Login != nil:
		res, n = e.sendLogin(ctx, a, p, t.Login, d)
	case p.Retry.Policy == RetrySDK:
		res, n = e.viaSDK(ctx, e.sdkFor(a), p, t, d, reqPath, contentType, body)
	default:
		hc, base := e.route(a, p, t, d)
		res, n = e.retrying(ctx, p, d, func(ctx context.Context) attempt {
			return e.attempt(ctx, hc, p, t, d, base+reqPath, contentType, body)
		})
	}
	latency := time.Since(due)
	<-e.sem // free the slot before recording: recording may wait on a lock
	if t.Ledger && res.out == outOK && !res.declined {
		e.ackMu.Lock()
		e.acked = append(e.acked, d.Key)
		e.ackMu.Unlock()
	}
	e.rec.done(a, ch, result{out: res.out, status: res.status, latency: latency, attempts: n,
		breach: t.Attack != "" && breached(t.Attack, res)})
}

func (e *engine) attempt(ctx context.Context, client *http.Client, p *Population, t Target, d *Draw, reqURL, contentType string, body []byte) attempt {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	req, err := e.request(ctx, p, t, d, reqURL, contentType, body)
	if err != nil {
		return attempt{out: outError, status: "transport"}
	}
	resp, err := client.Do(req)
	return classify(ctx, resp, err)
}

// request builds one request of a logical request; every attempt carries
// the same Idempotency-Key.
func (e *engine) request(ctx context.Context, p *Population, t Target, d *Draw, reqURL, contentType string, body []byte) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, t.Method, reqURL, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "rempart-drill/"+p.Name)
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if t.Method == http.MethodPost {
		req.Header.Set("Idempotency-Key", d.Key)
	}
	if t.Header != nil {
		for k, vs := range t.Header(time.Now()) {
			req.Header[k] = vs
		}
	}
	switch {
	case t.Stolen:
		e.authorizeStolen(req, d)
	case p.Session:
		e.authorizeRequest(req, d)
	}
	return req, nil
}

// classify reads an answer to its end and sorts it: 2xx is ok, a 429 or 503
// with Retry-After is shed, anything else an error; no answer before ctx's
// deadline is a time-out.
func classify(ctx context.Context, resp *http.Response, err error) attempt {
	var head []byte
	if err == nil {
		// Keep the start of the body: a decline is a 2xx that writes nothing.
		head, err = io.ReadAll(io.LimitReader(resp.Body, 2048))
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
		}
		resp.Body.Close()
	}
	if err != nil {
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return attempt{out: outTimeout, status: "timeout"}
		case errors.Is(err, client.ErrCircuitOpen):
			return attempt{out: outError, status: "sdk_circuit_open"}
		}
		return attempt{out: outError, status: "transport"}
	}
	return sortAnswer(resp, head)
}

// sortAnswer sorts an answer whose body starts with head.
func sortAnswer(resp *http.Response, head []byte) attempt {
	res := attempt{out: outError, status: strconv.Itoa(resp.StatusCode), code: resp.StatusCode}
	switch {
	case resp.StatusCode/100 == 2:
		res.out = outOK
		res.declined = isDecline(head)
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		if ra, ok := parseRetryAfter(resp.Header.Get("Retry-After")); ok {
			res.out, res.retryAfter = outShed, ra
		}
	}
	return res
}

// viaSDK sends a logical request through the client/ SDK, as a bank app
// built on it would: the SDK owns the retries (backoff, budget, breaker,
// waiting room, proof of work) within the population's time-out, which
// bounds the whole call like an app's deadline.
func (e *engine) viaSDK(ctx context.Context, sdk *client.Client, p *Population, t Target, d *Draw, reqPath, contentType string, body []byte) (attempt, int) {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	var n atomic.Int64
	ctx = context.WithValue(ctx, attemptsKey{}, &n)
	req, err := e.request(ctx, p, t, d, *e.base.Load()+reqPath, contentType, body)
	if err != nil {
		return attempt{out: outError, status: "transport"}, 1
	}
	resp, err := sdk.Do(ctx, req)
	return classify(ctx, resp, err), max(int(n.Load()), 1)
}

// sendLogin makes one customer's login, with the population's retries: a
// naive app starts the whole flow again at once, an SDK app lets the SDK
// retry each step (waiting room, proof of work, Retry-After). For SDK apps
// the attempts counted are the flows started plus the SDK's retries.
func (e *engine) sendLogin(ctx context.Context, a arrival, p *Population, l *Login, d *Draw) (attempt, int) {
	if p.Retry.Policy == RetrySDK {
		sdk := e.sdkFor(a)
		ctx, cancel := context.WithTimeout(ctx, p.Timeout)
		defer cancel()
		var wire atomic.Int64
		ctx = context.WithValue(ctx, attemptsKey{}, &wire)
		res, _, sent := e.login(ctx, func(r *http.Request) (*http.Response, error) { return sdk.Do(ctx, r) }, p, l, d)
		return res, 1 + max(int(wire.Load())-sent, 0)
	}
	hc := e.clientFor(a)
	return e.retrying(ctx, p, d, func(ctx context.Context) attempt {
		ctx, cancel := context.WithTimeout(ctx, p.Timeout)
		defer cancel()
		res, _, _ := e.login(ctx, hc.Do, p, l, d)
		return res
	})
}

// retrying calls once until it succeeds or the population's policy gives
// up, waiting between attempts as the policy says; it returns the last
// outcome and the number of attempts.
func (e *engine) retrying(ctx context.Context, p *Population, d *Draw, once func(ctx context.Context) attempt) (attempt, int) {
	for n := 1; ; n++ {
		res := once(ctx)
		if res.out == outOK || ctx.Err() != nil || !retryable(p.Retry.Policy, res) {
			return res, n
		}
		wait, again := p.Retry.backoff(n, res.retryAfter, d.Rand)
		if !again || !sleep(ctx, wait) {
			return res, n
		}
	}
}

// route is the client and base URL a request is sent by: for a partner
// population, the TLS pool of the partner owning the channel when the arm
// published its certificate; otherwise the plain client of the arrival's
// address.
//
// An attack on an arm serving TLS goes, one in two, over TLS from its
// address with no client certificate, as a browser or a script would; the
// rest in plain HTTP.
func (e *engine) route(a arrival, p *Population, t Target, d *Draw) (*http.Client, string) {
	pp := e.partners.Load()
	switch {
	case pp == nil:
	case p.Partner && t.Partner != "":
		if c, ok := pp.clients[t.Partner]; ok {
			return c, pp.base
		}
	case t.Attack != "" && pp.anonymous != nil && d.Rand.IntN(2) == 0:
		return e.clientFor(a), pp.base
	}
	return e.clientFor(a), *e.base.Load()
}

// clientFor is the plain HTTP client an arrival is sent from: its source
// address's, or the shared pool's.
func (e *engine) clientFor(a arrival) *http.Client {
	if a.source >= 0 {
		return e.sourced.client(a.source)
	}
	return e.pooled
}

// sdkFor is the SDK client an arrival of an sdk population is sent from.
func (e *engine) sdkFor(a arrival) *client.Client {
	if a.source >= 0 {
		return e.sourced.sdk(a.source, &e.s.Populations[a.pop], *e.base.Load())
	}
	return e.sdk[a.pop]
}

// attemptsKey carries a per-call counter the counting transport increments,
// since the SDK's own counters are per client, not per call.
type attemptsKey struct{}

type countingTransport struct{ http.RoundTripper }

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if n, ok := r.Context().Value(attemptsKey{}).(*atomic.Int64); ok {
		n.Add(1)
	}
	return t.RoundTripper.RoundTrip(r)
}

// sdkMaxProofOfWork caps the proof-of-work the drill's SDK clients solve:
// the SDK's default (24 bits, seconds of CPU) would have the generator
// compete with the arm for this machine's two cores.
const sdkMaxProofOfWork = 16

// newSDK makes the SDK client of one app (one source address, or one
// population on the default address).
func newSDK(hc *http.Client, p *Population, base string) *client.Client {
	return client.New(base,
		client.WithHTTPClient(&http.Client{Transport: countingTransport{hc.Transport}, CheckRedirect: noRedirect}),
		client.WithMaxAttempts(p.Retry.Attempts),
		client.WithBackoff(p.Retry.Base, p.Retry.Cap),
		client.WithMaxProofOfWork(sdkMaxProofOfWork),
		client.WithUserAgent("rempart-drill/"+p.Name),
	)
}

// retryable says whether a policy tries again after a failed attempt. Naive
// apps retry anything; careful ones only what another attempt could fix.
func retryable(policy string, a attempt) bool {
	switch policy {
	case RetryImmediate:
		return true
	case RetryBackoff:
		return a.out != outError || a.code == 0 || a.code >= 500
	}
	return false
}

// parseRetryAfter reads delay-seconds or an HTTP date (RFC 9110 §10.2.3).
func parseRetryAfter(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}

// sleep waits d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// acknowledged returns the keys of the ledger writes answered 2xx.
func (e *engine) acknowledged() []string {
	e.ackMu.Lock()
	defer e.ackMu.Unlock()
	return slices.Clone(e.acked)
}

// isDecline reports whether a channel's 2xx answer is a decline: the
// estate's and the stand-in's decisions say "approved":false, a declined
// transfer says "status":"declined".
func isDecline(body []byte) bool {
	return bytes.Contains(body, []byte(`"approved":false`)) || bytes.Contains(body, []byte(`"status":"declined"`))
}

// claimProbe is how many devices past the drawn one a login looks at for
// one not already logging in.
const claimProbe = 32

// claim picks, from the drawn slot on, a device of population pop with no
// login under way and marks it busy until release: one phone does not log
// in twice at once, and two logins of one customer would each read the
// other's SMS code. When all those probed are busy it keeps the drawn one.
func (e *engine) claim(pop, slot int) (int, func()) {
	if pop >= len(e.busy) || len(e.busy[pop]) == 0 {
		return slot, func() {}
	}
	b := e.busy[pop]
	for i := range min(claimProbe, len(b)) {
		k := (slot + i) % len(b)
		if b[k].CompareAndSwap(false, true) {
			return k, func() { b[k].Store(false) }
		}
	}
	return slot, func() {}
}
