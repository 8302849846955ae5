package scrub_test

import (
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/rempart/rempart/internal/request"
	"github.com/rempart/rempart/internal/scrub"
	"github.com/rempart/rempart/internal/scrub/clock"
	"github.com/rempart/rempart/internal/scrub/ratelimit"
)

// Example shows the wiring: one Scrubber in front of every route's upstream,
// inside the gateway's per-route wrapper (which puts *request.Info with the
// route in the context), its ops API on the ops listener, and the identity
// provider's hooks.
func Example() {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	sys := clock.System{}
	s, err := scrub.New(scrub.Options{
		Key:            []byte("a 32-byte secret shared by all gateways"),
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		LoginRoutes:    []string{"login"},
		Limiter: ratelimit.NewShared(ratelimit.NewRedis(rdb, "rempart:scrub:"),
			ratelimit.NewLocal(sys, ratelimit.LocalOptions{}), sys, ratelimit.SharedOptions{}),
		Logger:     slog.Default(),
		Registerer: prometheus.NewRegistry(),
		// From the identity provider, once it exists: the account of a valid
		// device cookie, and the account a login attempt is for.
		Device:       func(r *http.Request) string { return "" },
		LoginAccount: func(route string, r *http.Request) string { return r.FormValue("username") },
	})
	if err != nil {
		panic(err)
	}

	// The gateway: route -> Info -> scrubber -> the rest of the chain.
	core := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	routed := func(name string, h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(request.With(r.Context(), &request.Info{Route: name})))
		})
	}
	public := http.NewServeMux()
	public.Handle("POST /v1/cards/authorize", routed("card-authorize", s.Middleware(core)))

	// The identity provider's login handler asks before hashing a password,
	// reports the outcome, and hands out a clearance on success.
	login := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := request.From(r.Context())
		account, device := r.FormValue("username"), false
		if ok, retry := s.AllowLogin(account, info.Client, device); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(retry.Seconds())+1))
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		passwordOK := false // check the password here
		s.ObserveLogin(info.Route, info.Client, account, passwordOK, device)
		if passwordOK {
			s.GrantClearance(w, r)
		}
	})
	public.Handle("POST /login", routed("login", s.Middleware(login)))

	ops := http.NewServeMux()
	ops.Handle("/ops/scrub/", s.OpsHandler())
}
