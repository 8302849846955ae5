package admission

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/rempart/rempart/internal/problem"
)

// reason is why a request was shed; its label is the "reason" of
// rempart_admission_shed_total and its slug the problem type.
type reason uint8

const (
	// reasonDeadline: the caller's deadline had passed, or could not be met
	// given the tier's current queueing delay and the upstream's service time.
	reasonDeadline reason = iota
	// reasonQueueFull: the queue was at its bound and held nothing less
	// important to give way.
	reasonQueueFull
	// reasonQueueTimeout: waited MaxWait, or QueueTarget in a standing queue,
	// without a slot freeing for it.
	reasonQueueTimeout
	// reasonPreempted: was waiting when a more important request needed its
	// place in a full queue.
	reasonPreempted
	// reasonCanceled: the caller went away while the request waited.
	reasonCanceled
	numReasons
)

func (r reason) label() string {
	switch r {
	case reasonDeadline:
		return "deadline"
	case reasonQueueFull:
		return "queue_full"
	case reasonQueueTimeout:
		return "queue_timeout"
	case reasonPreempted:
		return "preempted"
	case reasonCanceled:
		return "canceled"
	}
	return "unknown"
}

func (r reason) slug() string {
	switch r {
	case reasonDeadline:
		return "deadline-exceeded"
	case reasonQueueFull:
		return "queue-full"
	}
	return "overloaded"
}

func (r reason) detail() string {
	switch r {
	case reasonDeadline:
		return "the request's deadline cannot be met at the current load; it was not forwarded"
	case reasonQueueFull:
		return "the service is at capacity and its queue is full; retry after the Retry-After delay"
	}
	return "the service is at capacity; retry after the Retry-After delay"
}

// shedder writes shed answers. Everything that does not vary between answers
// is rendered once at construction, because a rejection must stay cheap
// under a flood: problem.Write marshals the document per answer, 3.2µs and
// 8 allocations (10µs and 44 with a retry_after member), where a whole
// rejection here costs 0.55µs and 4 allocations (BenchmarkReject, 2-core
// AMD EPYC). Retry-After goes in the header only, for the same reason.
type shedder struct {
	bodies [numReasons][]byte
	length [numReasons]string
	// retryAfter holds every Retry-After value the jitter can pick.
	retryAfter []string
}

func newShedder(o Options) (*shedder, error) {
	s := &shedder{}
	for r := range numReasons {
		b, err := json.Marshal(problem.New(http.StatusServiceUnavailable, r.slug(), r.detail()))
		if err != nil {
			return nil, err
		}
		s.bodies[r] = append(b, '\n')
		s.length[r] = strconv.Itoa(len(s.bodies[r]))
	}
	base := max(1, int((o.RetryAfter+time.Second-1)/time.Second))
	spread := max(0, int(o.RetryAfterJitter/time.Second))
	for i := range spread + 1 {
		s.retryAfter = append(s.retryAfter, strconv.Itoa(base+i))
	}
	return s, nil
}

// ShedHeader marks an answer the admission layer gave instead of the
// upstream, so a circuit breaker outside it does not count it as an upstream
// failure (shedding must not open the breaker and turn a partial shed into a
// total outage).
const ShedHeader = "Rempart-Shed"

func (s *shedder) write(w http.ResponseWriter, r reason) {
	h := w.Header()
	h.Set("Content-Type", problem.ContentType)
	h.Set("Content-Length", s.length[r])
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Retry-After", s.retryAfter[rand.IntN(len(s.retryAfter))])
	// Tells the layers outside (a circuit breaker) that this 503 is ours:
	// the upstream did not fail, it was protected.
	h.Set(ShedHeader, "true")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write(s.bodies[r])
}
