package admission

import (
	"errors"
	"net/http"
)

// Why a request was shed, for the layers outside admission. A circuit
// breaker's fallback (a stand-in approval, an outbox acceptance) may answer
// for the bank's own saturation, never for a deadline the caller chose: a
// caller could otherwise force a fallback approval by asking for less time
// than the core needs.
var (
	// ErrDeadline: the caller's own deadline had passed, could not be met
	// given the queue ahead and the back end's service time, or passed
	// while the request waited.
	ErrDeadline = errors.New("the caller's deadline cannot be met")
	// ErrSaturated: the back end is at its limit: the queue was full, the
	// request waited as long as the queue or the route allows, or it gave
	// its place to a more important request.
	ErrSaturated = errors.New("the back end is saturated")
	// ErrCanceled: the request's context was canceled while it waited (its
	// client left, or a layer outside gave up on it).
	ErrCanceled = errors.New("the request was canceled while queued")
)

// ShedError says why admission shed a request. It wraps ErrDeadline,
// ErrSaturated or ErrCanceled; Reason is the reason label of
// rempart_admission_shed_total.
type ShedError struct {
	Reason string
	err    error
}

func (e *ShedError) Error() string { return "shed (" + e.Reason + "): " + e.err.Error() }

func (e *ShedError) Unwrap() error { return e.err }

func (r reason) err() error {
	switch r {
	case reasonDeadline:
		return ErrDeadline
	case reasonCanceled:
		return ErrCanceled
	}
	return ErrSaturated
}

// ShedRecorder is implemented by the ResponseWriter of a layer outside
// admission that must know why a request was shed rather than guess it from
// the answer: a circuit breaker choosing between its fallback and a 504.
// RecordShed is called with a *ShedError before the shed answer is written.
type ShedRecorder interface {
	RecordShed(err error)
}

// recordShed tells the first ShedRecorder among w and the writers it wraps
// (through Unwrap, as http.ResponseController looks for Flush) why the
// request was shed.
func recordShed(w http.ResponseWriter, r reason) {
	for w != nil {
		if rec, ok := w.(ShedRecorder); ok {
			rec.RecordShed(&ShedError{Reason: r.label(), err: r.err()})
			return
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}
