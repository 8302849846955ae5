package legacy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/rempart/rempart/internal/estate"
	"github.com/rempart/rempart/internal/identity"
	"github.com/rempart/rempart/internal/problem"
	"github.com/rempart/rempart/internal/tier"
)

// DefaultTimeout is the one time-out the 2025 front gives every route: a
// typical reverse-proxy read time-out, the same for a card payment as for a
// parcel query.
const DefaultTimeout = 10 * time.Second

// Grants looks up the login an access token was minted from.
type Grants interface {
	GrantLive(ctx context.Context, grant string) error
}

// Front is the 2025 front door: identity endpoints straight to the provider,
// everything else to the bank after a token check against the identity
// database. No admission, no shedding, no breaker, no scrubbing.
type Front struct {
	// IdP serves discovery, keys, /oauth/ and the login pages.
	IdP http.Handler
	// Bank serves the channels.
	Bank http.Handler
	// Verifier checks a bearer token's signature and expiry.
	Verifier *identity.Verifier
	// Grants is the per-request session lookup (SessionDB behind it).
	Grants Grants
	// Timeout is the fixed time-out of every request; zero is DefaultTimeout.
	Timeout time.Duration
	// Logger receives token-check failures; nil discards them.
	Logger *slog.Logger
}

// partnerChannels matches the partner networks' channels (cards, ATMs,
// 3-D Secure, instant payments): those came in through the schemes' own
// links in 2025 and never saw the app's token check, which is why they
// stayed up on the day.
func partnerChannels() *http.ServeMux {
	mux := http.NewServeMux()
	for _, c := range estate.Channels() {
		if c.Tier == tier.Critical {
			mux.Handle(c.Pattern, http.NotFoundHandler())
		}
	}
	return mux
}

// identityPrefixes are the provider's paths.
var identityPrefixes = []string{"/.well-known/", "/keys", "/oauth/", "/login", "/demo/"}

// Handler returns the front door.
func (f *Front) Handler() http.Handler {
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	log := f.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	partners := partnerChannels()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		r = r.WithContext(ctx)
		for _, p := range identityPrefixes {
			if strings.HasPrefix(r.URL.Path, p) {
				f.IdP.ServeHTTP(w, r)
				return
			}
		}
		if _, pattern := partners.Handler(r); r.Header.Get("Authorization") != "" && pattern == "" {
			if d := f.check(r); d != nil {
				log.WarnContext(ctx, "token check failed", slog.String("path", r.URL.Path), slog.String("detail", d.Detail))
				problem.Write(w, d)
				return
			}
		}
		f.Bank.ServeHTTP(w, r)
	})
}

// check is the 2025 token check: the signature, then the session row in
// the identity database, on every request.
func (f *Front) check(r *http.Request) *problem.Details {
	c, err := f.Verifier.FromRequest(r)
	if err != nil {
		return problem.New(http.StatusUnauthorized, "invalid-token", err.Error())
	}
	switch err := f.Grants.GrantLive(r.Context(), c.Grant); {
	case err == nil:
		return nil
	case errors.Is(err, identity.ErrGrantGone):
		return problem.New(http.StatusUnauthorized, "invalid-token", err.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return problem.New(http.StatusGatewayTimeout, "identity-timeout", "the identity database did not answer in time: "+err.Error())
	default:
		return problem.New(http.StatusServiceUnavailable, "identity-unavailable", err.Error())
	}
}
