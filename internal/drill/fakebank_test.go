package drill

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// fakeBank is a test arm: a bank that answers every channel after a service
// time, sheds with 503 + Retry-After past a concurrency limit, and has an ops
// API taking faults (slowdown and down are honoured) and a ledger check.
type fakeBank struct {
	name     string
	capacity int64         // concurrent requests served before shedding
	service  time.Duration // per request, times the core slowdown

	pub, ops *httptest.Server
	inflight atomic.Int64
	slowdown atomic.Int64 // ×1000
	down     atomic.Bool
	conns    atomic.Int64 // connections accepted
	requests atomic.Int64

	mu       sync.Mutex
	applied  map[string]bool // Idempotency-Keys of writes answered 200
	faults   []string        // component or switch names, in order received
	sessions int             // requests that carried a session
	checked  int             // acknowledged keys received by the check
	sources  map[string]bool
}

var (
	_ Arm        = (*fakeBank)(nil)
	_ Switcher   = (*fakeBank)(nil)
	_ Authorizer = (*fakeBank)(nil)
)

func (b *fakeBank) Name() string { return b.name }

func (b *fakeBank) Start(ctx context.Context) (Endpoints, error) {
	b.slowdown.Store(1000)
	b.sources = make(map[string]bool)
	b.applied = make(map[string]bool)
	b.pub = httptest.NewUnstartedServer(http.HandlerFunc(b.serve))
	b.pub.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			b.conns.Add(1)
		}
	}
	b.pub.Start()
	b.ops = httptest.NewServer(http.HandlerFunc(b.serveOps))
	return Endpoints{Public: b.pub.URL, Ops: b.ops.URL}, nil
}

func (b *fakeBank) Stop(ctx context.Context) error {
	b.pub.Close()
	b.ops.Close()
	return nil
}

func (b *fakeBank) Switch(ctx context.Context, fault string, on bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.faults = append(b.faults, fmt.Sprintf("%s=%t", fault, on))
	return nil
}

func (b *fakeBank) Authorize(r *http.Request, c Customer) {
	r.Header.Set("Authorization", "Bearer session-"+c.ID)
}

func (b *fakeBank) serve(w http.ResponseWriter, r *http.Request) {
	n := b.inflight.Add(1)
	b.requests.Add(1)
	defer b.inflight.Add(-1)
	b.mu.Lock()
	if r.Header.Get("Authorization") != "" {
		b.sessions++
	}
	host, _, _ := strings.Cut(r.RemoteAddr, ":")
	b.sources[host] = true
	b.mu.Unlock()
	switch {
	case strings.HasPrefix(r.URL.Path, "/oauth/"), strings.HasPrefix(r.URL.Path, "/login"):
		http.NotFound(w, r)
		return
	case b.down.Load():
		http.Error(w, "core down", http.StatusBadGateway)
		return
	case b.capacity > 0 && n > b.capacity:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	if r.Method == http.MethodPost && r.Header.Get("Idempotency-Key") == "" {
		http.Error(w, "no idempotency key", http.StatusBadRequest)
		return
	}
	time.Sleep(b.service * time.Duration(b.slowdown.Load()) / 1000)
	if r.Method == http.MethodPost {
		b.mu.Lock()
		b.applied[r.Header.Get("Idempotency-Key")] = true
		b.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"approved":true}`)
}

func (b *fakeBank) serveOps(w http.ResponseWriter, r *http.Request) {
	if comp, ok := strings.CutPrefix(r.URL.Path, "/ops/estate/faults/"); ok && r.Method == http.MethodPut {
		var c Component
		if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		b.mu.Lock()
		b.faults = append(b.faults, comp)
		b.mu.Unlock()
		if comp == FaultCore {
			b.slowdown.Store(int64(c.Slowdown * 1000))
			b.down.Store(c.Down)
		}
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.URL.Path == "/ops/estate/check" && r.Method == http.MethodPost {
		var body struct {
			Acknowledged []string `json:"acknowledged"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		b.mu.Lock()
		var missing []string
		for _, k := range body.Acknowledged {
			if !b.applied[k] {
				missing = append(missing, k)
			}
		}
		b.checked = len(body.Acknowledged)
		b.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if len(missing) > 0 {
			w.WriteHeader(http.StatusConflict)
		}
		json.NewEncoder(w).Encode(map[string]any{"ok": len(missing) == 0, "missing": missing})
		return
	}
	http.NotFound(w, r)
}

func (b *fakeBank) received() (faults []string, sessions int, sources int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.faults...), b.sessions, len(b.sources)
}
