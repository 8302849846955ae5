package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/rempart/rempart/internal/problem"
	"github.com/rempart/rempart/internal/request"
	"github.com/rempart/rempart/internal/tier"
)

// TokenVerifier checks a request's bearer token without a round trip to the
// identity provider or a database. The identity package's verifier is
// adapted to it by the wiring.
type TokenVerifier interface {
	VerifyRequest(r *http.Request) (subject string, err error)
}

// AuthMode says what a route asks of the caller's token.
type AuthMode int

const (
	// AuthNone ignores tokens: partner networks authenticate otherwise.
	AuthNone AuthMode = iota
	// AuthOptional verifies a token when one is presented: a customer
	// holding a valid session is admitted at IMPORTANT priority.
	AuthOptional
	// AuthRequired refuses requests without a valid token.
	AuthRequired
)

// ParseAuthMode reads "none", "optional" or "required".
func ParseAuthMode(s string) (AuthMode, error) {
	switch strings.ToLower(s) {
	case "", "none":
		return AuthNone, nil
	case "optional":
		return AuthOptional, nil
	case "required":
		return AuthRequired, nil
	}
	return 0, fmt.Errorf("unknown auth mode %q (want none, optional or required)", s)
}

func (m AuthMode) String() string {
	return [...]string{"none", "optional", "required"}[m]
}

// errNoToken is what a verifier returns when no token was presented.
var errNoToken = errors.New("no bearer token")

// Authenticate verifies the bearer token per mode and records the outcome in
// the request's info. A valid session raises a NORMAL or SHEDDABLE route to
// IMPORTANT: a returning customer must keep working while new logins wait.
func Authenticate(v TokenVerifier, mode AuthMode) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if v == nil || mode == AuthNone {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			presented := r.Header.Get("Authorization") != ""
			if !presented && mode == AuthOptional {
				next.ServeHTTP(w, r)
				return
			}
			var sub string
			err := errNoToken
			if presented {
				sub, err = v.VerifyRequest(r)
			}
			if err != nil {
				// A token that was presented and is wrong is refused even on
				// an optional route: silently serving it as anonymous would
				// hide an expired or revoked session from the app.
				w.Header().Set("WWW-Authenticate", `Bearer realm="rempart", error="invalid_token"`)
				if !presented {
					w.Header().Set("WWW-Authenticate", `Bearer realm="rempart"`)
				}
				problem.Write(w, problem.New(http.StatusUnauthorized, "invalid-token",
					"a valid bearer access token is required").WithField("Authorization"))
				return
			}
			if info := request.From(r.Context()); info != nil {
				info.Session = true
				info.Subject = sub
				if info.Priority > tier.Important {
					info.Priority = tier.Important
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}
