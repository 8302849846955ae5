package proxy

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/client"
	"github.com/rempart/rempart/internal/problem"
)

// ReplayedHeader marks an answer given from the result of an earlier request
// with the same Idempotency-Key, without reaching the upstream.
const ReplayedHeader = "Idempotent-Replayed"

// ReplayOptions configures a ReplayCache. Zero values take the defaults.
type ReplayOptions struct {
	// TTL is how long a first result is replayed to retries of its key.
	// Default 24h, the retention Stripe and the IETF Idempotency-Key draft
	// suggest, well past any app's retries.
	TTL time.Duration
	// MaxEntries bounds the keys remembered; the least recently used go
	// first. Default 100,000.
	MaxEntries int
	// MaxBytes bounds the memory of the stored answers (bodies, headers and
	// bookkeeping). Default 64 MiB.
	MaxBytes int64
	// MaxEntryBytes is the largest answer stored; a larger one is passed on
	// but not kept, and its retries reach the upstream (which deduplicates
	// too). Default 64 KiB: rempart's channels answer a few hundred bytes.
	MaxEntryBytes int
	// MaxBodyBytes is the largest request body hashed; a request with a
	// larger one bypasses the cache. Default 1 MiB.
	MaxBodyBytes int64
	// Headers are the response headers stored and replayed with a result.
	// Default: the representation and caching headers (Content-Type, ETag,
	// Location, ...); never hop-by-hop headers, cookies or request ids.
	Headers []string
	// Budget pays for running a key again after its earlier attempt failed:
	// a client's retry is let through to the upstream only while it allows.
	// Give NewRetrier the same budget so that the gateway's own retries and
	// its clients' retries together stay within it. Default: a budget of its
	// own with client.BudgetConfig's defaults (10 %).
	Budget *client.RetryBudget
	// RetryAfter is the mean of the Retry-After (whole seconds, drawn ±50 %
	// so refused clients do not come back together) sent with a retry the
	// budget refuses. Default 2s.
	RetryAfter time.Duration
	// Registerer receives the rempart_replay_* metrics; nil registers none.
	Registerer prometheus.Registerer
	// Now is the time source for TTLs; nil means time.Now.
	Now func() time.Time
}

// defaultReplayHeaders are the headers a replay repeats: those describing the
// representation and its caching, nothing tied to one exchange.
var defaultReplayHeaders = []string{"Cache-Control", "Content-Language", "Content-Location", "Content-Type",
	"ETag", "Expires", "Last-Modified", "Link", "Location", "Preference-Applied", "Vary", "X-Content-Type-Options"}

func (o ReplayOptions) withDefaults() ReplayOptions {
	if o.TTL <= 0 {
		o.TTL = 24 * time.Hour
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = 100_000
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = 64 << 20
	}
	if o.MaxEntryBytes <= 0 {
		o.MaxEntryBytes = 64 << 10
	}
	o.MaxEntryBytes = int(min(int64(o.MaxEntryBytes), o.MaxBytes/2))
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.Headers == nil {
		o.Headers = defaultReplayHeaders
	}
	if o.Budget == nil {
		o.Budget = client.NewRetryBudget(client.BudgetConfig{})
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = 2 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// ReplayCache answers retried writes from their first result, so a retry
// storm does not reach the core. The core's ledger deduplicates too, but only
// after the retry has cost a core worker; the cache answers before.
//
// For a write (POST, PUT, PATCH, DELETE) with an Idempotency-Key, scoped by
// the caller's Authorization header when there is one:
//   - the first request runs;
//   - a duplicate arriving while it runs waits for it and gets its answer;
//   - a later duplicate (same method, path and body) gets the stored first
//     answer, marked Idempotent-Replayed: true;
//   - the same key with another request is refused: 422
//     idempotency-key-reused, field Idempotency-Key.
//
// Only final answers are stored: 2xx, and 4xx other than 408, 409, 425 and
// 429. After a failure (5xx, a time-out) the key is remembered as tried, and
// a retry runs again only while the retry budget allows; otherwise it gets a
// 503 with a jittered Retry-After. Answers shed before the upstream (429, or
// carrying Retry-After) leave the key as it was.
//
// The first request of a key runs to its end even if its caller goes away
// (within its deadline), so that the retry that caller will send finds the
// result. Put the upstream's time-out inside the cache.
type ReplayCache struct {
	opts    ReplayOptions
	headers map[string]bool
	m       replayMetrics

	mu       sync.Mutex
	inflight map[replayID]*flight
	entries  map[replayID]*list.Element // of *replayEntry
	lru      *list.List                 // most recently used first
	bytes    int64
}

// replayID identifies a key within its caller's scope.
type replayID [sha256.Size]byte

// replayEntry is a remembered key: its request's fingerprint and, once a
// final answer came, the answer. An entry without one is a tombstone: the key
// was tried and failed.
type replayEntry struct {
	id     replayID
	fp     [sha256.Size]byte
	stored time.Time
	res    *replayed // nil for a tombstone
	size   int64
}

// replayed is an answer as stored and replayed.
type replayed struct {
	status int
	header http.Header
	body   []byte
}

// flight is a first request being served; duplicates wait on done.
type flight struct {
	fp   [sha256.Size]byte
	done chan struct{}
	res  *replayed // its answer, set before done closes; nil when not captured
}

// entryOverhead approximates the bookkeeping of an entry (map slot, list
// element, structs), so that many tiny entries also count against MaxBytes.
const entryOverhead = 256

// NewReplayCache returns an empty cache. It panics if its metrics cannot be
// registered (a name taken by a collector of another kind); caches sharing a
// registry share their counters.
func NewReplayCache(opts ReplayOptions) *ReplayCache {
	opts = opts.withDefaults()
	c := &ReplayCache{
		opts:     opts,
		headers:  map[string]bool{},
		m:        newReplayMetrics(opts.Registerer),
		inflight: map[replayID]*flight{},
		entries:  map[replayID]*list.Element{},
		lru:      list.New(),
	}
	for _, h := range opts.Headers {
		c.headers[http.CanonicalHeaderKey(h)] = true
	}
	return c
}

// Middleware returns next behind the cache.
func (c *ReplayCache) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		if key == "" || !isWrite(r.Method) {
			next.ServeHTTP(w, r)
			return
		}
		c.serve(next, w, r, key)
	})
}

// action is what begin decided for a request.
type action int

const (
	actLead     action = iota // run it: first attempt, or an admitted retry
	actWait                   // a duplicate of a running first request
	actReplay                 // answer from the stored result
	actConflict               // the key was used for another request
	actRefuse                 // a retry of a failed key the budget cannot pay for
)

func (c *ReplayCache) serve(next http.Handler, w http.ResponseWriter, r *http.Request, key string) {
	body, whole, err := readBody(r, c.opts.MaxBodyBytes)
	if err != nil {
		writeBodyError(w, err)
		return
	}
	if !whole {
		c.m.bypassed.Inc()
		next.ServeHTTP(w, r)
		return
	}
	id := scopedID(r.Header.Get("Authorization"), key)
	fp := fingerprint(r, body)
	for {
		act, fl, res := c.begin(id, fp)
		switch act {
		case actConflict:
			c.m.conflicts.Inc()
			problem.Write(w, problem.New(http.StatusUnprocessableEntity, "idempotency-key-reused",
				"this Idempotency-Key was already used for a different request").WithField("Idempotency-Key"))
			return
		case actReplay:
			c.m.hits.Inc()
			writeReplay(w, res)
			return
		case actRefuse:
			c.m.retries[1].Inc()
			w.Header().Set("Retry-After", strconv.Itoa(c.retryAfterSeconds()))
			problem.Write(w, problem.New(http.StatusServiceUnavailable, "retry-budget-exhausted",
				"an earlier attempt with this Idempotency-Key failed and retries are limited while the upstream is failing; "+
					"retry after the Retry-After delay"))
			return
		case actWait:
			c.m.waits.Inc()
			select {
			case <-fl.done:
			case <-r.Context().Done():
				writeUpstreamError(w, r.Context().Err())
				return
			}
			if fl.res != nil {
				writeReplay(w, fl.res)
				return
			}
			// The first request left no answer to share (it panicked, or its
			// answer was too large to keep): look again.
		case actLead:
			c.lead(next, w, r, id, fl)
			return
		}
	}
}

// begin looks id up and decides what to do with a request of fingerprint fp.
// For actLead it registers the flight the request must finish.
func (c *ReplayCache) begin(id replayID, fp [sha256.Size]byte) (action, *flight, *replayed) {
	now := c.opts.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if fl, ok := c.inflight[id]; ok {
		if fl.fp != fp {
			return actConflict, nil, nil
		}
		return actWait, fl, nil
	}
	retry := false
	if el, ok := c.entries[id]; ok {
		e := el.Value.(*replayEntry)
		switch {
		case now.Sub(e.stored) >= c.opts.TTL:
			c.removeLocked(el, "expired")
		case e.fp != fp:
			return actConflict, nil, nil
		case e.res != nil:
			c.lru.MoveToFront(el)
			return actReplay, nil, e.res
		default:
			retry = true
		}
	}
	if retry {
		if !c.opts.Budget.TryWithdraw() {
			return actRefuse, nil, nil
		}
		c.m.retries[0].Inc()
	} else {
		c.opts.Budget.Deposit()
	}
	fl := &flight{fp: fp, done: make(chan struct{})}
	c.inflight[id] = fl
	return actLead, fl, nil
}

// lead serves the request that runs for its key and shares its answer.
func (c *ReplayCache) lead(next http.Handler, w http.ResponseWriter, r *http.Request, id replayID, fl *flight) {
	rec := &recorder{ResponseWriter: w, limit: c.opts.MaxEntryBytes, keep: c.headers}
	done := false
	defer func() {
		// Also on a panic (http.ErrAbortHandler from a reverse proxy whose
		// upstream broke off): the duplicates must not wait for ever, and the
		// upstream may have been reached, so the key counts as tried.
		var res *replayed
		kind := resultFailed
		if done {
			res = rec.result()
			kind = classify(rec.status, rec.header)
		}
		c.finish(id, fl, res, kind)
	}()
	ctx, cancel := detach(r.Context())
	defer cancel()
	next.ServeHTTP(rec, r.WithContext(charge(ctx, c.opts.Budget)))
	done = true
}

// resultKind sorts answers by what they mean for the key.
type resultKind int

const (
	resultFinal  resultKind = iota // stored and replayed
	resultFailed                   // the upstream was tried and failed: a tombstone
	resultShed                     // refused before the upstream: the key is as it was
)

// classify sorts an answer. 408, 409 and 425 invite the same request again,
// so they are not final; 429 and answers with Retry-After were shed (by
// admission, a rate limit, the waiting room) before reaching the upstream.
func classify(status int, h http.Header) resultKind {
	switch {
	case status == http.StatusTooManyRequests || h.Get("Retry-After") != "":
		return resultShed
	case status == http.StatusRequestTimeout || status == http.StatusConflict || status == http.StatusTooEarly:
		return resultFailed
	case status >= 200 && status < 300, status >= 400 && status < 500:
		return resultFinal
	case status < 200, status >= 300 && status < 400:
		return resultShed
	}
	return resultFailed
}

// finish records the first request's answer and releases its duplicates.
func (c *ReplayCache) finish(id replayID, fl *flight, res *replayed, kind resultKind) {
	now := c.opts.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.inflight, id)
	fl.res = res
	close(fl.done)
	switch {
	case kind == resultFinal && res != nil:
		c.putLocked(&replayEntry{id: id, fp: fl.fp, stored: now, res: res, size: res.size()})
		c.m.stores.Inc()
	case kind == resultFinal:
		// Final but too large to keep: forget the key; the upstream
		// deduplicates what reaches it.
		if el, ok := c.entries[id]; ok {
			c.removeLocked(el, "")
		}
	case kind == resultFailed:
		c.putLocked(&replayEntry{id: id, fp: fl.fp, stored: now, size: entryOverhead})
	}
}

// putLocked stores e in place of any entry of its id and evicts past the
// bounds, expired entries at the cold end first.
func (c *ReplayCache) putLocked(e *replayEntry) {
	if el, ok := c.entries[e.id]; ok {
		c.removeLocked(el, "")
	}
	c.entries[e.id] = c.lru.PushFront(e)
	c.bytes += e.size
	c.m.entries.Inc()
	c.m.bytes.Add(float64(e.size))
	for back := c.lru.Back(); back != nil && c.opts.Now().Sub(back.Value.(*replayEntry).stored) >= c.opts.TTL; back = c.lru.Back() {
		c.removeLocked(back, "expired")
	}
	for len(c.entries) > c.opts.MaxEntries || c.bytes > c.opts.MaxBytes {
		c.removeLocked(c.lru.Back(), "capacity")
	}
}

// removeLocked drops an entry, counting it as an eviction for a reason.
func (c *ReplayCache) removeLocked(el *list.Element, reason string) {
	e := c.lru.Remove(el).(*replayEntry)
	delete(c.entries, e.id)
	c.bytes -= e.size
	c.m.entries.Dec()
	c.m.bytes.Sub(float64(e.size))
	if reason != "" {
		c.m.evictions.WithLabelValues(reason).Inc()
	}
}

// retryAfterSeconds draws a Retry-After around the configured mean.
func (c *ReplayCache) retryAfterSeconds() int {
	mean := c.opts.RetryAfter.Seconds()
	lo, hi := max(int(mean*0.5+0.5), 1), max(int(mean*1.5+0.5), 1)
	return lo + rand.IntN(hi-lo+1)
}

// scopedID hashes the key within the caller's scope: the Authorization
// header when there is one, so that one customer's key never answers
// another's request.
func scopedID(authorization, key string) replayID {
	h := sha256.New()
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(authorization)))
	h.Write(n[:])
	io.WriteString(h, authorization)
	io.WriteString(h, key)
	var id replayID
	h.Sum(id[:0])
	return id
}

// fingerprint hashes what must be the same for a request to be a retry of
// another: method, path and query, body.
func fingerprint(r *http.Request, body []byte) [sha256.Size]byte {
	h := sha256.New()
	io.WriteString(h, r.Method)
	h.Write([]byte{0})
	io.WriteString(h, r.URL.EscapedPath())
	h.Write([]byte{'?'})
	io.WriteString(h, r.URL.RawQuery)
	h.Write([]byte{0})
	h.Write(body)
	var fp [sha256.Size]byte
	h.Sum(fp[:0])
	return fp
}

func (r *replayed) size() int64 {
	n := int64(len(r.body)) + entryOverhead
	for k, vs := range r.header {
		for _, v := range vs {
			n += int64(len(k) + len(v))
		}
	}
	return n
}

// writeReplay sends a stored answer.
func writeReplay(w http.ResponseWriter, res *replayed) {
	h := w.Header()
	for k, vs := range res.header {
		h[k] = slices.Clone(vs)
	}
	h.Set("Content-Length", strconv.Itoa(len(res.body)))
	h.Set(ReplayedHeader, "true")
	w.WriteHeader(res.status)
	w.Write(res.body)
}

// recorder passes the first request's answer through and keeps a copy of it,
// up to limit bytes of body.
type recorder struct {
	http.ResponseWriter
	limit int
	keep  map[string]bool // headers to store

	status   int
	header   http.Header
	body     []byte
	overflow bool
}

func (rec *recorder) WriteHeader(code int) {
	if rec.status == 0 && code >= 200 {
		rec.status = code
		rec.header = http.Header{}
		for k, vs := range rec.ResponseWriter.Header() {
			if rec.keep[k] {
				rec.header[k] = slices.Clone(vs)
			}
		}
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *recorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.WriteHeader(http.StatusOK)
	}
	// Kept even when the caller has gone and the write below fails: the
	// answer is for the retry it will send.
	if !rec.overflow {
		if len(rec.body)+len(b) > rec.limit {
			rec.overflow, rec.body = true, nil
		} else {
			rec.body = append(rec.body, b...)
		}
	}
	return rec.ResponseWriter.Write(b)
}

// FlushError passes a flush on (http.ResponseController finds it).
func (rec *recorder) FlushError() error {
	if rec.status == 0 {
		rec.WriteHeader(http.StatusOK)
	}
	return http.NewResponseController(rec.ResponseWriter).Flush()
}

func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// result is the recorded answer, nil when its body was too large to keep.
func (rec *recorder) result() *replayed {
	if rec.status == 0 {
		// The handler wrote nothing: net/http sends an empty 200.
		rec.WriteHeader(http.StatusOK)
	}
	if rec.overflow {
		return nil
	}
	return &replayed{status: rec.status, header: rec.header, body: slices.Clip(rec.body)}
}

// detach keeps ctx's values and deadline but not its cancellation: the first
// request of a key is finished for the retries of a caller who went away.
func detach(ctx context.Context) (context.Context, context.CancelFunc) {
	d := context.WithoutCancel(ctx)
	if dl, ok := ctx.Deadline(); ok {
		return context.WithDeadline(d, dl)
	}
	return d, func() {}
}

// readBody reads r's body into memory, up to limit bytes, and puts it back
// readable (and rereadable, through GetBody). whole is false for a larger
// body, which is left to stream as it came.
func readBody(r *http.Request, limit int64) (body []byte, whole bool, err error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, true, nil
	}
	// Sized from Content-Length when there is one, so a body is read into
	// one allocation.
	size := int64(512)
	if r.ContentLength > 0 && r.ContentLength <= limit {
		size = r.ContentLength + 1
	}
	b, err := readAtMost(r.Body, limit+1, size)
	if err != nil {
		return nil, false, err
	}
	if int64(len(b)) > limit {
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(b), r.Body), r.Body}
		return nil, false, nil
	}
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	r.Body, _ = r.GetBody()
	r.ContentLength = int64(len(b))
	return b, true, nil
}

// readAtMost reads up to n bytes of rd into a buffer of capacity size to
// start with.
func readAtMost(rd io.Reader, n, size int64) ([]byte, error) {
	b := make([]byte, 0, min(size, n))
	rd = io.LimitReader(rd, n)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		m, err := rd.Read(b[len(b):cap(b)])
		b = b[:len(b)+m]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// writeBodyError answers a request whose body could not be read.
func writeBodyError(w http.ResponseWriter, err error) {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		writeUpstreamError(w, err)
		return
	}
	problem.Error(w, http.StatusBadRequest, "body-unreadable", "the request body could not be read")
}

func isWrite(method string) bool {
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// replayMetrics are the cache's Prometheus series.
type replayMetrics struct {
	hits, waits, stores, conflicts, bypassed prometheus.Counter
	retries                                  [2]prometheus.Counter // admitted, refused
	evictions                                *prometheus.CounterVec
	entries, bytes                           prometheus.Gauge
}

func newReplayMetrics(reg prometheus.Registerer) replayMetrics {
	counter := func(name, help string) prometheus.Counter {
		return register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "rempart_replay_" + name, Help: help}))
	}
	gauge := func(name, help string) prometheus.Gauge {
		return register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "rempart_replay_" + name, Help: help}))
	}
	retries := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rempart_replay_retries_total",
		Help: "Retries of a key whose earlier attempt failed, by whether the retry budget let them through to the upstream.",
	}, []string{"result"}))
	return replayMetrics{
		hits:      counter("hits_total", "Writes answered from the stored first result of their Idempotency-Key."),
		waits:     counter("waits_total", "Duplicates that waited for the running first request of their key instead of reaching the upstream."),
		stores:    counter("stores_total", "Final answers stored for replay."),
		conflicts: counter("conflicts_total", "Requests refused because their Idempotency-Key was used for a different request."),
		bypassed:  counter("bypassed_total", "Writes with an Idempotency-Key passed through uncached because their body was too large."),
		retries:   [2]prometheus.Counter{retries.WithLabelValues("admitted"), retries.WithLabelValues("refused")},
		evictions: register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rempart_replay_evictions_total",
			Help: "Entries dropped before being replayed again, by reason (expired, capacity).",
		}, []string{"reason"})),
		entries: gauge("entries", "Keys remembered: stored answers and failed attempts."),
		bytes:   gauge("bytes", "Approximate memory held by the stored answers."),
	}
}
