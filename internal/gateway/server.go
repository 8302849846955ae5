package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"
)

// Server runs the public and ops listeners and drains them on shutdown.
type Server struct {
	Public       http.Handler
	Ops          http.Handler // extra ops routes, mounted beside /healthz, /readyz, /metrics
	Metrics      http.Handler
	PublicAddr   string
	OpsAddr      string
	DrainTimeout time.Duration
	Logger       *slog.Logger
	// TLS, when set, makes the public listener speak TLS (client
	// certificates are verified by it); nil serves plain HTTP only.
	TLS *tls.Config
	// Plaintext admits plain HTTP beside TLS from the peers it accepts
	// (loopback for demos and drills, or the TLS-terminating balancers).
	Plaintext func(netip.Addr) bool
	// Dependencies are checked on every /readyz and reported in its body;
	// one down makes the node "degraded", not unready (see readiness.go).
	Dependencies []Dependency

	ready    atomic.Bool
	publicLn net.Listener
	opsLn    net.Listener
}

// Listen binds both listeners; after it returns, Addrs reports the bound
// addresses (useful with port 0).
func (s *Server) Listen() error {
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	var err error
	if s.publicLn, err = net.Listen("tcp", s.PublicAddr); err != nil {
		return fmt.Errorf("public listener: %w", err)
	}
	if s.TLS != nil {
		s.publicLn = newDualListener(s.publicLn, s.TLS, s.Plaintext)
	}
	if s.opsLn, err = net.Listen("tcp", s.OpsAddr); err != nil {
		s.publicLn.Close()
		return fmt.Errorf("ops listener: %w", err)
	}
	return nil
}

// Addrs returns the bound public and ops addresses.
func (s *Server) Addrs() (public, ops string) {
	return s.publicLn.Addr().String(), s.opsLn.Addr().String()
}

// Ready reports whether /readyz answers 200.
func (s *Server) Ready() bool { return s.ready.Load() }

// Run serves until ctx is cancelled, then stops accepting, answers /readyz
// 503 so load balancers move away, and waits up to DrainTimeout for
// in-flight requests to finish.
func (s *Server) Run(ctx context.Context) error {
	if s.publicLn == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	ops := http.NewServeMux()
	ops.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	ops.HandleFunc("GET /readyz", s.readyz)
	if s.Metrics != nil {
		ops.Handle("GET /metrics", s.Metrics)
	}
	if s.Ops != nil {
		ops.Handle("/", s.Ops)
	}

	// Timeouts: a slowloris must not hold a connection forever, but a
	// response may legitimately wait on a slow core, so WriteTimeout is long.
	pub := &http.Server{Handler: s.Public, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 32 << 10,
		ErrorLog: slog.NewLogLogger(s.Logger.Handler(), slog.LevelDebug)}
	// The ops API reads small bodies only: a body trickled in for minutes
	// is an attack on the listener admins need during an incident. No
	// write timeout: a CPU profile streams for as long as it was asked.
	opsSrv := &http.Server{Handler: ops, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 120 * time.Second, MaxHeaderBytes: 32 << 10,
		ErrorLog: slog.NewLogLogger(s.Logger.Handler(), slog.LevelDebug)}

	errc := make(chan error, 2)
	go func() { errc <- pub.Serve(s.publicLn) }()
	go func() { errc <- opsSrv.Serve(s.opsLn) }()
	s.ready.Store(true)
	pa, oa := s.Addrs()
	s.Logger.Info("listening", "public", pa, "ops", oa)

	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			s.ready.Store(false)
			pub.Close()
			opsSrv.Close()
			return err
		}
	}
	s.ready.Store(false)
	s.Logger.Info("draining", "timeout", s.DrainTimeout)
	dctx, cancel := context.WithTimeout(context.Background(), s.DrainTimeout)
	defer cancel()
	err := pub.Shutdown(dctx)
	if err != nil {
		s.Logger.Warn("drain deadline passed; closing remaining connections", "err", err)
		pub.Close()
	}
	if opsSrv.Shutdown(dctx) != nil {
		opsSrv.Close()
	}
	s.Logger.Info("stopped")
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("drain: %w", err)
	}
	return nil
}
