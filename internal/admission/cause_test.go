package admission

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/request"
	"github.com/rempart/rempart/internal/tier"
)

// causeRecorder is a ResponseWriter of a layer outside admission that wants
// to know why a request was shed.
type causeRecorder struct {
	*httptest.ResponseRecorder
	err error
}

func (w *causeRecorder) RecordShed(err error) { w.err = err }

// wrapped hides the recorder behind another writer, as a middleware between
// the breaker and admission would.
type wrapped struct{ http.ResponseWriter }

func (w wrapped) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// TestShedCause checks that a shed request says whether the caller's own
// deadline or the back end's saturation turned it away: the breaker lets a
// fallback answer for the second only, so a caller must not be able to pass
// the first off as the second.
func TestShedCause(t *testing.T) {
	tests := []struct {
		name     string
		maxWait  time.Duration
		deadline time.Duration // from now; zero: none
		budget   time.Duration // a context deadline set outside, zero: none
		cancel   bool
		fill     int // waiters queued ahead, with MaxQueue 1
		want     error
		reason   string
	}{
		{name: "caller deadline passed on arrival", maxWait: time.Hour, deadline: -time.Second, want: ErrDeadline, reason: "deadline"},
		{name: "caller deadline ends the wait", maxWait: time.Hour, deadline: 30 * time.Millisecond, want: ErrDeadline, reason: "deadline"},
		{name: "queue bound ends the wait", maxWait: 30 * time.Millisecond, want: ErrSaturated, reason: "queue_timeout"},
		{name: "queue bound shorter than a long caller deadline", maxWait: 30 * time.Millisecond, deadline: time.Hour, want: ErrSaturated, reason: "queue_timeout"},
		{name: "route budget ends the wait", maxWait: time.Hour, budget: 30 * time.Millisecond, want: ErrSaturated, reason: "queue_timeout"},
		{name: "caller deadline inside the route budget", maxWait: time.Hour, budget: time.Hour, deadline: 30 * time.Millisecond, want: ErrDeadline, reason: "deadline"},
		{name: "queue full", maxWait: time.Hour, fill: 1, want: ErrSaturated, reason: "queue_full"},
		{name: "canceled while queued", maxWait: time.Hour, cancel: true, want: ErrCanceled, reason: "canceled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := fixed(1)
			o.MaxWait, o.MaxQueue = tt.maxWait, 1
			c := mustNew(t, o)
			g := newGate()
			h := c.Middleware(g)
			held := send(h, "held", tier.Critical, time.Time{})
			eventually(t, "the slot to be held", func() bool { return len(g.seen()) == 1 })
			var ahead []<-chan *httptest.ResponseRecorder
			for range tt.fill {
				ahead = append(ahead, send(h, "ahead", tier.Critical, time.Time{}))
			}
			eventually(t, "the queue to fill", func() bool { return c.Stats().Queued == tt.fill })

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.budget > 0 {
				ctx, cancel = context.WithTimeout(ctx, tt.budget)
				defer cancel()
			}
			info := &request.Info{ID: "probe", Tier: tier.Critical, Priority: tier.Critical}
			if tt.deadline != 0 {
				info.Deadline = time.Now().Add(tt.deadline)
			}
			r := httptest.NewRequest(http.MethodPost, "/", nil).WithContext(request.With(ctx, info))
			w := &causeRecorder{ResponseRecorder: httptest.NewRecorder()}
			done := make(chan struct{})
			go func() {
				defer close(done)
				h.ServeHTTP(wrapped{w}, r)
			}()
			if tt.cancel {
				eventually(t, "the probe to queue", func() bool { return c.Stats().Queued == 1 })
				cancel()
			}
			<-done
			close(g.pass)
			<-held
			for _, a := range ahead {
				<-a
			}

			if w.Code != http.StatusServiceUnavailable {
				t.Fatalf("answer %d, want the shed 503", w.Code)
			}
			var se *ShedError
			if !errors.As(w.err, &se) || !errors.Is(w.err, tt.want) || se.Reason != tt.reason {
				t.Fatalf("recorded %v, want %v (%s)", w.err, tt.want, tt.reason)
			}
		})
	}
}

func TestDeadlineField(t *testing.T) {
	now := time.Date(2025, 12, 22, 9, 30, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header http.Header
		want   string
	}{
		{"none", http.Header{}, ""},
		{"absolute", http.Header{"X-Request-Deadline": {"2025-12-22T09:30:01Z"}}, DeadlineHeader},
		{"grpc", http.Header{"Grpc-Timeout": {"1m"}}, GRPCTimeoutHeader},
		{"absolute earlier", http.Header{"X-Request-Deadline": {"2025-12-22T09:30:00Z"}, "Grpc-Timeout": {"1S"}}, DeadlineHeader},
		{"grpc earlier", http.Header{"X-Request-Deadline": {"2025-12-22T09:30:01Z"}, "Grpc-Timeout": {"1m"}}, GRPCTimeoutHeader},
		{"malformed", http.Header{"Grpc-Timeout": {"soon"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DeadlineField(tt.header, now); got != tt.want {
				t.Errorf("DeadlineField = %q, want %q", got, tt.want)
			}
		})
	}
}
