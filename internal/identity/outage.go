package identity

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/rempart/rempart/internal/session"
)

// A token request whose session-store call failed (Redis stalled, stopped,
// unreachable) must not answer invalid_grant, which tells an app to throw
// its refresh token away and send the customer back to the login page: the
// grant is fine, the store is not. op maps every storage error of the refresh
// grant to invalid_grant, so the store calls mark the request (grant.go,
// through storeErr) and storeOutage turns op's error answer into 503
// temporarily_unavailable with Retry-After.

// outageRetryAfter is the Retry-After of that answer, in seconds.
const outageRetryAfter = 5

type outageKey struct{}

// outageMark is set when a store call of the request failed.
type outageMark struct{ hit atomic.Bool }

// storeErr marks ctx's request when err is a failure of the store itself,
// not one of its answers (not found, already exists, invalid), and returns
// err.
func storeErr(ctx context.Context, err error) error {
	if err == nil || errors.Is(err, session.ErrNotFound) || errors.Is(err, session.ErrAlreadyExists) ||
		errors.Is(err, session.ErrInvalid) {
		return err
	}
	if m, ok := ctx.Value(outageKey{}).(*outageMark); ok {
		m.hit.Store(true)
	}
	return err
}

// storeOutage answers 503 temporarily_unavailable instead of next's error
// when a session-store call of the request failed; it logs once per change
// of state, not once per request.
func (p *Provider) storeOutage(next http.Handler) http.Handler {
	var down atomic.Bool
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := &outageMark{}
		ow := &outageWriter{ResponseWriter: w, mark: m}
		next.ServeHTTP(ow, r.WithContext(context.WithValue(r.Context(), outageKey{}, m)))
		switch {
		case ow.replaced && !down.Swap(true):
			p.log.WarnContext(r.Context(), "session store unavailable: token requests answer 503 temporarily_unavailable")
		case !m.hit.Load() && ow.status < 400 && down.Swap(false):
			p.log.InfoContext(r.Context(), "session store answers again: token requests served")
		}
	})
}

type outageWriter struct {
	http.ResponseWriter
	mark     *outageMark
	status   int
	replaced bool
}

func (w *outageWriter) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	w.status = code
	if code < 400 || !w.mark.hit.Load() {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	w.replaced = true
	h := w.ResponseWriter.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Retry-After", strconv.Itoa(outageRetryAfter))
	h.Del("Content-Length")
	w.ResponseWriter.WriteHeader(http.StatusServiceUnavailable)
	json.NewEncoder(w.ResponseWriter).Encode(map[string]string{
		"error":             "temporarily_unavailable",
		"error_description": "sessions are unavailable for a moment; retry later with the same refresh token",
	})
}

func (w *outageWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.replaced {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}
