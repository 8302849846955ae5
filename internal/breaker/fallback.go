package breaker

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/rempart/rempart/internal/problem"
)

// Fallback answers a request in place of an upstream that cannot: its
// breaker is open, or the call failed, timed out or answered 5xx.
type Fallback interface {
	// Answer writes the response and returns the kind of answer it gave,
	// for the rempart_breaker_fallback_answers_total metric. body is the
	// request body, already read (r.Body is spent).
	Answer(w http.ResponseWriter, r *http.Request, body []byte, o Outage) string
}

// Recaller is a Fallback that may already hold the answer to a request — a
// retried Idempotency-Key it decided while the upstream was away — and must
// give that answer rather than let the upstream decide a second time.
type Recaller interface {
	Fallback
	// Recall answers r and returns true if it holds the answer; it returns
	// false, writing nothing, to let the call go to the upstream.
	Recall(w http.ResponseWriter, r *http.Request, body []byte) bool
}

// Observer is a Fallback that learns from the upstream's good answers.
type Observer interface {
	Fallback
	// Observe sees each 2xx answer of the upstream to the route. It must not
	// keep header or body beyond the call without copying them.
	Observe(r *http.Request, status int, header http.Header, body []byte)
}

// Repeater is a Fallback that only repeats what the upstream already
// answered (a stale read). It decides nothing, so it may also answer, at once
// and within the deadline, a request that admission could not serve within
// its caller's deadline; a fallback that decides (a stand-in approval, an
// outbox acceptance) never does.
type Repeater interface {
	Fallback
	// Repeats reports that Answer only repeats the upstream.
	Repeats() bool
}

// Outage says why a fallback is answering.
type Outage struct {
	// Upstream names the upstream that could not answer.
	Upstream string
	// Cause is ErrOpen, a time-out, a transport error or an *UpstreamError.
	Cause error
	// RetryAfter is when the upstream may be back: what is left of the
	// breaker's open delay, at least a second.
	RetryAfter time.Duration
}

// UpstreamError is the cause of an outage when the upstream answered 5xx.
type UpstreamError struct{ Status int }

func (e *UpstreamError) Error() string { return "upstream answered " + strconv.Itoa(e.Status) }

// Kinds of fallback answer, the kind label of rempart_breaker_fallback_answers_total.
const (
	AnswerStale    = "stale"    // last good answer of a read
	AnswerDegraded = "degraded" // 503: nothing to answer with
	AnswerStandIn  = "standin"  // stand-in decision
	AnswerOutbox   = "outbox"   // transfer accepted into the outbox
	AnswerRecall   = "recall"   // a repeated key answered from the journal
	AnswerRefused  = "refused"  // the request itself was wrong (4xx)
)

// Headers that mark a fallback's answer.
const (
	HeaderStale   = "Rempart-Stale"    // "true" on a stale read
	HeaderAsOf    = "Rempart-As-Of"    // RFC 3339 time of a stale read's original answer
	HeaderStandIn = "Rempart-Stand-In" // "true" on a stand-in decision
	HeaderOutbox  = "Rempart-Outbox"   // "true" on an outbox acceptance or status
	HeaderBreaker = "Rempart-Breaker"  // "open" when the breaker refused the call
	HeaderShed    = "Rempart-Shed"     // set by admission on an answer it shed: not an upstream failure
)

// WriteDegraded answers 503 with a "degraded" problem and a Retry-After
// spread over up to half as much again, so that the clients the outage turned
// away do not all come back in the same second.
func WriteDegraded(w http.ResponseWriter, o Outage, detail string) {
	secs := retryAfterSeconds(o.RetryAfter)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	problem.Write(w, problem.New(http.StatusServiceUnavailable, "degraded", detail).With("retry_after", secs))
}

func retryAfterSeconds(d time.Duration) int {
	d = max(d, time.Second)
	d += rand.N(d/2 + 1)
	return int((d + time.Second - 1) / time.Second)
}
