package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Headers the client sends.
const (
	// DeadlineHeader carries the caller's deadline (from ctx) to the server as
	// an RFC 3339 timestamp, so that a request whose caller has given up is
	// dropped before it costs the bank anything.
	DeadlineHeader = "X-Request-Deadline"
	// IdempotencyKeyHeader identifies one logical write across its retries:
	// the server applies it once and answers the retries with the first
	// result.
	IdempotencyKeyHeader = "Idempotency-Key"
	// TicketHeader carries a waiting-room ticket.
	TicketHeader = "Rempart-Ticket"
	// LeaveHeader, sent with a ticket, gives its place in line up: the
	// client stops waiting (its deadline is shorter than the wait).
	LeaveHeader = "Rempart-Leave"
)

// deadlineLayout is RFC 3339 with milliseconds, in UTC.
const deadlineLayout = "2006-01-02T15:04:05.000Z07:00"

// Bounds on what the client buffers and waits for.
const (
	// maxErrorBody is how much of an error answer the client reads to decide
	// what to do (a waiting room, a challenge); rempart's problem documents
	// are a few hundred bytes.
	maxErrorBody = 64 << 10
	// maxResponseBody bounds what PostJSON reads.
	maxResponseBody = 8 << 20
	// maxWait is the longest the client waits on its own before one retry or
	// waiting-room poll; a server asking for more gets its answer handed to
	// the caller, who is better placed to decide.
	maxWait = 2 * time.Minute
	// maxChallenges bounds the proof-of-work challenges solved for one call,
	// so a server that keeps challenging cannot keep the client busy.
	maxChallenges = 3
)

// Client sends requests to one rempart service and keeps a bank app's
// retries from becoming a retry storm. It is safe for concurrent use; make
// one per service and share it.
type Client struct {
	base    *url.URL
	baseErr error
	hc      *http.Client
	clock   Clock
	backoff Backoff
	tries   int
	budget  *RetryBudget
	breaker *breaker
	watch   func(position int, eta time.Duration)
	maxBits int
	ua      string

	clearance atomic.Pointer[string] // latest Rempart-Clearance from the server

	calls, attempts, retries, refused, rejected, polls, solved atomic.Int64
}

// Option configures a Client.
type Option func(*settings)

// settings gathers the options before New builds the client, since some
// depend on others (the budget and breaker on the clock).
type settings struct {
	hc         *http.Client
	clock      Clock
	backoff    Backoff
	tries      int
	budget     *RetryBudget
	breaker    BreakerConfig
	watch      func(int, time.Duration)
	maxBits    int
	ua         string
	randSource mrand.Source
}

// WithHTTPClient sends through hc instead of a client of the client's own.
// Leave hc.Timeout zero: deadlines come from ctx, and a retry needs time left.
func WithHTTPClient(hc *http.Client) Option { return func(s *settings) { s.hc = hc } }

// WithMaxAttempts bounds the attempts of one call, the first included
// (default 4: three retries). Waiting-room polls and answers to a
// proof-of-work challenge do not count. 1 turns retries off.
func WithMaxAttempts(n int) Option { return func(s *settings) { s.tries = max(n, 1) } }

// WithBackoff sets the full-jitter backoff: before retry n the client waits a
// random time below min(limit, base·2^n). Default 100ms and 10s.
func WithBackoff(base, limit time.Duration) Option {
	return func(s *settings) { s.backoff.Base, s.backoff.Cap = base, limit }
}

// WithRetryBudget makes the client draw its retries from b, which may be
// shared with other clients. Default: a budget of its own with
// BudgetConfig's defaults (retries at most 10 % of calls, at least 10 per
// 10 s).
func WithRetryBudget(b *RetryBudget) Option { return func(s *settings) { s.budget = b } }

// WithBreaker sizes the circuit breaker.
func WithBreaker(cfg BreakerConfig) Option { return func(s *settings) { s.breaker = cfg } }

// WithClock replaces the wall clock, for tests and simulations.
func WithClock(c Clock) Option { return func(s *settings) { s.clock = c } }

// WithRandom draws the backoff jitter from src, for reproducible runs.
func WithRandom(src mrand.Source) Option { return func(s *settings) { s.randSource = src } }

// WithWaitingRoomObserver calls fn each time the client is told to wait in a
// waiting room, with its position in the line and the estimated wait, so the
// app can show progress.
func WithWaitingRoomObserver(fn func(position int, eta time.Duration)) Option {
	return func(s *settings) { s.watch = fn }
}

// WithMaxProofOfWork sets the hardest proof-of-work challenge the client
// solves, in bits (default 24: about 16 million hashes, a few seconds on a
// phone); a harder one is handed back to the caller as the server's answer.
// 0 turns solving off.
func WithMaxProofOfWork(bits int) Option { return func(s *settings) { s.maxBits = bits } }

// WithUserAgent sets the User-Agent of requests that have none. Keep it
// stable: the server binds a proof-of-work clearance to it.
func WithUserAgent(ua string) Option { return func(s *settings) { s.ua = ua } }

// New returns a client of the service at baseURL; paths given to PostJSON,
// and relative URLs given to Do, are taken below it. A baseURL that does not
// parse as an absolute http or https URL makes every call fail with the
// reason.
func New(baseURL string, opts ...Option) *Client {
	s := settings{
		tries:   4,
		backoff: Backoff{Base: 100 * time.Millisecond, Cap: 10 * time.Second},
		maxBits: 24,
		ua:      "rempart-client/1",
	}
	for _, o := range opts {
		o(&s)
	}
	if s.clock == nil {
		s.clock = realClock{}
	}
	if s.hc == nil {
		s.hc = &http.Client{}
		if t, ok := http.DefaultTransport.(*http.Transport); ok {
			s.hc.Transport = t.Clone()
		}
	}
	if s.budget == nil {
		s.budget = NewRetryBudget(BudgetConfig{Now: s.clock.Now})
	}
	if s.randSource != nil {
		s.backoff.rand = lockedRand(s.randSource)
	}
	c := &Client{
		hc:      s.hc,
		clock:   s.clock,
		backoff: s.backoff,
		tries:   s.tries,
		budget:  s.budget,
		breaker: newBreaker(s.breaker, s.clock.Now),
		watch:   s.watch,
		maxBits: s.maxBits,
		ua:      s.ua,
	}
	u, err := url.Parse(baseURL)
	if err == nil && (u.Scheme != "http" && u.Scheme != "https" || u.Host == "") {
		err = errors.New("want an absolute http or https URL")
	}
	if err != nil {
		c.baseErr = fmt.Errorf("base URL %q: %w", baseURL, err)
	} else {
		c.base = u
	}
	return c
}

// Stats counts what a client did since it was made.
type Stats struct {
	Calls    int64 // calls of Do (PostJSON included): logical operations
	Attempts int64 // requests sent, retries, polls and challenge answers included
	// Retries are requests sent again after a failure: what the retry
	// budget bounds.
	Retries int64
	// BudgetRefused counts retries not sent because the budget was spent.
	BudgetRefused int64
	// CircuitRejected counts requests not sent because the breaker was open.
	CircuitRejected int64
	// WaitingRoomPolls counts requests sent again with a waiting-room ticket.
	WaitingRoomPolls int64
	// ChallengesSolved counts proof-of-work challenges solved.
	ChallengesSolved int64
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{
		Calls: c.calls.Load(), Attempts: c.attempts.Load(), Retries: c.retries.Load(),
		BudgetRefused: c.refused.Load(), CircuitRejected: c.rejected.Load(),
		WaitingRoomPolls: c.polls.Load(), ChallengesSolved: c.solved.Load(),
	}
}

// BreakerState returns the state of the client's circuit breaker.
func (c *Client) BreakerState() BreakerState { return c.breaker.current() }

// PostJSON sends in as JSON to path below the base URL and decodes a 2xx
// answer into out (unless out is nil). Any other answer is returned as a
// *Problem; failures to reach the server, ErrCircuitOpen and ctx's end as
// errors wrapping them.
func (c *Client) PostJSON(ctx context.Context, path string, in, out any) error {
	if c.baseErr != nil {
		return c.baseErr
	}
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("post %s: encode request: %w", path, err)
	}
	ref, err := url.Parse(path)
	if err != nil {
		return fmt.Errorf("post %s: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.resolve(ref).String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("post %s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, "+problemMediaType)
	res, err := c.Do(ctx, req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBody))
	if err != nil {
		return fmt.Errorf("post %s: read answer: %w", path, err)
	}
	if res.StatusCode/100 != 2 {
		return parseProblem(res.StatusCode, res.Header, b, c.clock.Now())
	}
	if out == nil || len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("post %s: decode answer: %w", path, err)
	}
	return nil
}

// Do sends req, retrying it within the client's budget, breaker and ctx.
// A relative req.URL is taken below the base URL. A body must be readable
// again for a retry: Do uses req.GetBody (set by http.NewRequest for
// in-memory bodies) and otherwise reads the body into memory first. A write
// (POST, PUT, PATCH, DELETE) without an Idempotency-Key gets one, the same
// for all its attempts.
//
// As with http.Client.Do, an answer of any status is returned with a nil
// error (the last one, when retries did not help); the caller closes its
// body. The error is for no answer at all.
func (c *Client) Do(ctx context.Context, req *http.Request) (*http.Response, error) {
	if c.baseErr != nil {
		return nil, c.baseErr
	}
	r := req.Clone(ctx)
	if !r.URL.IsAbs() {
		r.URL = c.resolve(r.URL)
		r.Host = ""
	}
	if err := rewindable(r); err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.Method, r.URL.Path, err)
	}
	if isWrite(r.Method) && r.Header.Get(IdempotencyKeyHeader) == "" {
		r.Header.Set(IdempotencyKeyHeader, rand.Text())
	}
	if r.Header.Get("User-Agent") == "" {
		r.Header.Set("User-Agent", c.ua)
	}
	if dl, ok := ctx.Deadline(); ok {
		r.Header.Set(DeadlineHeader, dl.UTC().Format(deadlineLayout))
	}
	c.calls.Add(1)
	c.budget.Deposit()
	res, err := c.run(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", r.Method, r.URL.Path, err)
	}
	return res, nil
}

// call is the state of one Do across its attempts.
type call struct {
	retries    int // retries sent: attempts after a failure
	challenges int // proof-of-work challenges solved
	// ticket is the waiting-room ticket to present, kept for the rest of
	// the call: an attempt refused before it reached the room (a rate limit)
	// keeps its place in line, and a ticket already used only counts as
	// none.
	ticket   string
	solution string // proof-of-work solution to present, once
}

// run sends r until an answer is final, a retry is not allowed, or ctx ends.
func (c *Client) run(ctx context.Context, r *http.Request) (*http.Response, error) {
	var st call
	// last is the latest answer, buffered, kept to hand back if the client
	// stops before it gets a better one.
	var last *http.Response
	defer func() {
		if last != nil {
			last.Body.Close()
		}
	}()
	handBack := func() (*http.Response, error) {
		res := last
		last = nil
		return res, nil
	}
	for {
		if !c.breaker.allow() {
			c.rejected.Add(1)
			if last != nil {
				return handBack()
			}
			return nil, ErrCircuitOpen
		}
		if last != nil {
			last.Body.Close()
			last = nil
		}
		res, err := c.send(ctx, r, &st)
		if err != nil {
			if ctx.Err() != nil {
				c.breaker.done(abandoned)
				return nil, ctx.Err()
			}
			c.breaker.done(failed)
			d, ok := c.retryWait(ctx, &st, nil)
			if !ok {
				return nil, err
			}
			if err := c.clock.Sleep(ctx, d); err != nil {
				return nil, err
			}
			continue
		}
		if v := res.Header.Get(headerClearance); v != "" {
			c.clearance.Store(&v)
		}
		challenge := res.Header.Get(headerChallenge)
		if res.StatusCode < 400 || (challenge == "" && !retryable(res.StatusCode)) {
			c.breaker.done(outcomeOf(res.StatusCode))
			return res, nil
		}
		body, ok := buffer(res)
		if !ok {
			// Too large to keep aside: not an answer rempart gives to be
			// retried, so the caller gets it as it is.
			c.breaker.done(outcomeOf(res.StatusCode))
			return res, nil
		}
		last = res

		if challenge != "" {
			// The server is working and wants the client to pay: answering
			// is no retry, the budget is not charged.
			c.breaker.done(succeeded)
			if st.challenges >= maxChallenges {
				return handBack()
			}
			sol, err := solve(ctx, challenge, c.maxBits)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return handBack()
			}
			st.challenges++
			c.solved.Add(1)
			st.solution = sol
			continue
		}

		if wr, ok := parseWaitingRoom(res, body, c.clock.Now()); ok {
			// Waiting in line is the protocol working, not a failure: no
			// breaker failure, no budget, bounded by ctx alone.
			c.breaker.done(succeeded)
			st.ticket = wr.ticket
			if c.watch != nil {
				c.watch(wr.position, wr.eta)
			}
			if !c.fits(ctx, wr.poll) {
				c.leave(ctx, r, st.ticket)
				return handBack()
			}
			if err := c.clock.Sleep(ctx, wr.poll); err != nil {
				c.leave(ctx, r, st.ticket)
				return nil, err
			}
			c.polls.Add(1)
			continue
		}

		c.breaker.done(outcomeOf(res.StatusCode))
		d, ok := c.retryWait(ctx, &st, res.Header)
		if !ok {
			return handBack()
		}
		if err := c.clock.Sleep(ctx, d); err != nil {
			return nil, err
		}
	}
}

// leaveTimeout bounds the request that gives a place in line up.
const leaveTimeout = 500 * time.Millisecond

// leave tells the waiting room the client stops waiting, so the customers
// behind it are not held up by a place nobody will take: r again, with the
// ticket and LeaveHeader, which the room answers itself. Best effort, within
// leaveTimeout even when ctx has ended.
func (c *Client) leave(ctx context.Context, r *http.Request, ticket string) {
	if ticket == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaveTimeout)
	defer cancel()
	a := r.Clone(ctx)
	a.Body, a.ContentLength = http.NoBody, 0
	a.Header.Del("Content-Type")
	a.Header.Set(TicketHeader, ticket)
	a.Header.Set(LeaveHeader, "1")
	if res, err := c.hc.Do(a); err == nil {
		io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
		res.Body.Close()
	}
}

// send makes one attempt of r.
func (c *Client) send(ctx context.Context, r *http.Request, st *call) (*http.Response, error) {
	a := r.Clone(ctx)
	if r.GetBody != nil {
		body, err := r.GetBody()
		if err != nil {
			return nil, fmt.Errorf("rewind body: %w", err)
		}
		a.Body = body
	}
	if cl := c.clearance.Load(); cl != nil {
		a.Header.Set(headerClearance, *cl)
	}
	if st.ticket != "" {
		a.Header.Set(TicketHeader, st.ticket)
	}
	if st.solution != "" {
		a.Header.Set(headerSolution, st.solution)
		st.solution = ""
	}
	c.attempts.Add(1)
	return c.hc.Do(a)
}

// retryWait decides whether a failed attempt is tried again, and after how
// long: backoff with full jitter, no sooner than the server's Retry-After,
// within the attempt limit, ctx's deadline and the retry budget, and not
// while the breaker is open (the retry would be refused anyway, so it does
// not spend the budget). h is the failed answer's header, nil for no answer.
func (c *Client) retryWait(ctx context.Context, st *call, h http.Header) (time.Duration, bool) {
	if st.retries+1 >= c.tries {
		return 0, false
	}
	d := c.backoff.Delay(st.retries)
	if h != nil {
		if ra, ok := retryAfter(h, c.clock.Now()); ok {
			d = max(d, ra)
		}
	}
	if !c.fits(ctx, d) || c.breaker.current() == Open {
		return 0, false
	}
	if !c.budget.TryWithdraw() {
		c.refused.Add(1)
		return 0, false
	}
	st.retries++
	c.retries.Add(1)
	return d, true
}

// fits reports whether waiting d still leaves time before ctx's deadline to
// send again, and is within what the client waits on its own.
func (c *Client) fits(ctx context.Context, d time.Duration) bool {
	if d > maxWait {
		return false
	}
	dl, ok := ctx.Deadline()
	return !ok || c.clock.Now().Add(d).Before(dl)
}

// resolve takes a relative reference below the base URL (unlike
// url.ResolveReference, "/v1/x" stays below a base path).
func (c *Client) resolve(ref *url.URL) *url.URL {
	u := *c.base
	u.Path = strings.TrimSuffix(c.base.Path, "/") + "/" + strings.TrimPrefix(ref.Path, "/")
	u.RawPath = ""
	u.RawQuery = ref.RawQuery
	u.Fragment = ""
	return &u
}

// rewindable makes r's body readable once per attempt.
func rewindable(r *http.Request) error {
	if r.Body == nil || r.Body == http.NoBody || r.GetBody != nil {
		return nil
	}
	b, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	r.Body, _ = r.GetBody()
	r.ContentLength = int64(len(b))
	return nil
}

// buffer reads res's body into memory, so the answer can be looked into and
// still handed back. It leaves a body over maxErrorBody readable as it was
// and reports false.
func buffer(res *http.Response) ([]byte, bool) {
	b, err := io.ReadAll(io.LimitReader(res.Body, maxErrorBody+1))
	if err == nil && len(b) > maxErrorBody {
		res.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(b), res.Body), res.Body}
		return nil, false
	}
	// A body cut by a read error is kept as far as it came: the status is
	// what the decision rests on.
	res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(b))
	return b, true
}

func isWrite(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// retryable lists the statuses worth another attempt: too many requests,
// and a server or gateway that could not answer now. Other 4xx will not
// change on a retry, and a 500 is a failure the server owns.
func retryable(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// outcomeOf is what a status tells the breaker: a 5xx is a failing server,
// anything else (a 429 included) a working one.
func outcomeOf(status int) outcome {
	if status >= 500 {
		return failed
	}
	return succeeded
}
