package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rempart/rempart/internal/problem"
	"github.com/rempart/rempart/internal/request"
	"github.com/rempart/rempart/internal/tier"
)

// Token is what the gateway needs of a verified access token.
type Token struct {
	Subject  string
	ClientID string
	Scopes   []string
	// AMR says how the customer authenticated (pwd, otp, mfa, hwk...).
	AMR []string
	// AuthTime is when the customer authenticated; zero for a service.
	AuthTime time.Time
	// Service marks a client-credentials token: a client acting for
	// itself, with no customer behind it.
	Service bool
}

// TokenVerifier checks a request's bearer token without a round trip to the
// identity provider or a database. The identity package's verifier is
// adapted to it by the wiring.
type TokenVerifier interface {
	VerifyRequest(r *http.Request) (Token, error)
}

// Owners answers whether a customer owns what a request names. The estate's
// customer population implements it from arithmetic on ids, so the check
// costs no database hop.
type Owners interface {
	OwnsCustomer(subject, customer string) bool
	OwnsAccount(subject, account string) bool
}

// AuthMode says who may call a route.
type AuthMode int

const (
	// AuthNone is a public route: tokens and certificates are ignored.
	AuthNone AuthMode = iota
	// AuthOptional verifies a token when one is presented: a customer
	// holding a valid session is admitted at IMPORTANT priority.
	AuthOptional
	// AuthRequired refuses requests without a valid customer token (or a
	// certificate of a partner the route admits).
	AuthRequired
	// AuthPartner admits only partners the route names, by client
	// certificate (or a token of a client acting for one of them).
	AuthPartner
)

// ParseAuthMode reads "none", "optional", "required" or "partner".
func ParseAuthMode(s string) (AuthMode, error) {
	switch strings.ToLower(s) {
	case "", "none":
		return AuthNone, nil
	case "optional":
		return AuthOptional, nil
	case "required":
		return AuthRequired, nil
	case "partner":
		return AuthPartner, nil
	}
	return 0, fmt.Errorf("unknown auth mode %q (want none, optional, required or partner)", s)
}

func (m AuthMode) String() string {
	return [...]string{"none", "optional", "required", "partner"}[m]
}

// Owner says which part of a request names the customer's resource that a
// customer token's subject must own.
type Owner int

const (
	// OwnerNone: the route names nothing of a customer's.
	OwnerNone Owner = iota
	// OwnerCustomer: the path wildcard {customer} is a customer id.
	OwnerCustomer
	// OwnerAccount: the path wildcard {account} is an account.
	OwnerAccount
	// OwnerFrom: the JSON body's "from" is the account money leaves.
	OwnerFrom
)

// ParseOwner reads "", "customer", "account" or "from".
func ParseOwner(s string) (Owner, error) {
	switch s {
	case "", "none":
		return OwnerNone, nil
	case "customer":
		return OwnerCustomer, nil
	case "account":
		return OwnerAccount, nil
	case "from":
		return OwnerFrom, nil
	}
	return 0, fmt.Errorf("unknown owner %q (want customer, account or from)", s)
}

// Policy is what one route asks of its callers.
type Policy struct {
	Mode AuthMode
	// Partners may call the route whatever its mode (except none), on their
	// certificate alone.
	Partners []string
	// Scope is the scope a customer token needs ("" none).
	Scope string
	// Owner names the resource the customer must own.
	Owner Owner
	// SCAMaxAge, when positive, asks for a strong customer authentication
	// (PSD2: a second factor in the token's amr) at most this old.
	SCAMaxAge time.Duration
	// Services are client-credentials clients admitted as themselves (no
	// customer data is reachable through them unless listed here).
	Services []string
}

// strongFactors are amr values (RFC 8176) that are a second factor or a
// phishing-resistant key: with a password they make a strong customer
// authentication.
var strongFactors = []string{"otp", "sms", "mfa", "hwk", "swk", "fido"}

// Authorizer enforces every route's Policy: partners by certificate,
// customers by token, scope, strong authentication and ownership. It runs
// first in a route's chain, so nothing a caller sends reaches a mechanism
// that might trust it before the caller is known.
type Authorizer struct {
	Verifier TokenVerifier      // nil: no customer token is ever valid
	Owners   Owners             // nil: every ownership check fails (closed)
	Partners *PartnerIdentifier // nil: no partner is ever recognised
	Logger   *slog.Logger
	Now      func() time.Time // nil: time.Now
	// MaxBodyBytes bounds what the ownership check reads of a body.
	MaxBodyBytes int64
}

// Middleware wraps a route's handler with its policy.
func (a *Authorizer) Middleware(p Policy) func(http.Handler) http.Handler {
	if a.Now == nil {
		a.Now = time.Now
	}
	if a.Logger == nil {
		a.Logger = slog.New(slog.DiscardHandler)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if pd := a.authorize(p, r); pd != nil {
				if pd.Status == http.StatusUnauthorized || pd.Type == problem.TypeBase+"insufficient-scope" {
					w.Header().Set("WWW-Authenticate", a.challenge(pd, p))
				}
				if info := request.From(r.Context()); info != nil && pd.Status == http.StatusForbidden {
					a.Logger.LogAttrs(r.Context(), slog.LevelInfo, "refused",
						slog.String("request_id", info.ID), slog.String("route", info.Route),
						slog.String("reason", pd.Type), slog.String("subject", info.Subject))
				}
				problem.Write(w, pd)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func (a *Authorizer) challenge(pd *problem.Details, p Policy) string {
	switch strings.TrimPrefix(pd.Type, problem.TypeBase) {
	case "insufficient-scope":
		return `Bearer realm="rempart", error="insufficient_scope", scope="` + p.Scope + `"`
	case "strong-authentication-required":
		// RFC 9470: the app steps up with a fresh login carrying a second factor.
		return `Bearer realm="rempart", error="insufficient_user_authentication", max_age=` +
			strconv.Itoa(int(p.SCAMaxAge/time.Second))
	case "invalid-token":
		return `Bearer realm="rempart", error="invalid_token"`
	}
	return `Bearer realm="rempart"`
}

// authorize returns nil to let r through, or the problem to refuse it with.
// It records who the caller is in the request's info.
func (a *Authorizer) authorize(p Policy, r *http.Request) *problem.Details {
	info := request.From(r.Context())
	if info == nil {
		info = &request.Info{}
	}
	// The partner is established from the connection first: a certificate
	// is the only thing here a caller cannot forge.
	partner, perr := a.Partners.FromRequest(r)
	if p.Mode == AuthNone {
		return nil
	}
	if perr != nil {
		return problem.New(http.StatusForbidden, "partner-not-recognised", perr.Error())
	}
	switch {
	case partner != "" && slices.Contains(p.Partners, partner):
		info.Partner = partner
		return nil
	case partner != "" && p.Mode != AuthOptional:
		return problem.New(http.StatusForbidden, "partner-not-permitted",
			"partner "+partner+" may not call this route")
	}
	presented := len(r.Header["Authorization"]) > 0 && r.Header["Authorization"][0] != ""
	if !presented {
		switch p.Mode {
		case AuthOptional:
			return nil
		case AuthPartner:
			return problem.New(http.StatusUnauthorized, "partner-certificate-required",
				"this route is for partner networks: present a partner client certificate")
		}
		return problem.New(http.StatusUnauthorized, "token-required",
			"a valid bearer access token is required").WithField("Authorization")
	}
	if a.Verifier == nil {
		return problem.New(http.StatusUnauthorized, "invalid-token", "no token is accepted here").WithField("Authorization")
	}
	tok, err := a.Verifier.VerifyRequest(r)
	if err != nil {
		// A token that was presented and is wrong is refused even on an
		// optional route: silently serving it as anonymous would hide an
		// expired or revoked session from the app.
		return problem.New(http.StatusUnauthorized, "invalid-token",
			"a valid bearer access token is required").WithField("Authorization")
	}
	if tok.Service {
		if pt := a.Partners.ForClient(tok.ClientID); pt != "" && slices.Contains(p.Partners, pt) {
			info.Partner = pt
			return nil
		}
		if slices.Contains(p.Services, tok.ClientID) {
			info.Subject = tok.ClientID
			return nil
		}
		if p.Mode == AuthOptional && p.Owner == OwnerNone {
			return nil // served as anonymous: a service is not a customer
		}
		return problem.New(http.StatusForbidden, "service-not-permitted",
			"client "+tok.ClientID+" is not permitted on this route")
	}
	if p.Mode == AuthPartner {
		return problem.New(http.StatusForbidden, "partner-certificate-required",
			"this route is for partner networks, not customers")
	}
	info.Subject = tok.Subject
	if p.Scope != "" && !slices.Contains(tok.Scopes, p.Scope) {
		return problem.New(http.StatusForbidden, "insufficient-scope",
			"the token lacks the scope "+p.Scope).WithField("Authorization")
	}
	if p.SCAMaxAge > 0 && !strong(tok, a.Now(), p.SCAMaxAge) {
		return problem.New(http.StatusUnauthorized, "strong-authentication-required",
			fmt.Sprintf("this operation needs a login with a second factor in the last %s", p.SCAMaxAge)).
			WithField("Authorization")
	}
	if pd := a.owns(p.Owner, tok.Subject, r); pd != nil {
		return pd
	}
	info.Session = true
	if info.Priority > tier.Important {
		info.Priority = tier.Important
	}
	return nil
}

// strong reports whether tok carries a second factor from a login at most
// maxAge old.
func strong(tok Token, now time.Time, maxAge time.Duration) bool {
	if tok.AuthTime.IsZero() || now.Sub(tok.AuthTime) > maxAge {
		return false
	}
	return slices.ContainsFunc(tok.AMR, func(m string) bool { return slices.Contains(strongFactors, m) })
}

var errDuplicateFrom = errors.New(`"from" appears more than once`)

// owns checks that subject owns what r names. Someone else's resource is
// 403: the customer knows the account exists (it is on their statement as
// a payee) and an honest refusal is easier to support than a fake 404.
func (a *Authorizer) owns(o Owner, subject string, r *http.Request) *problem.Details {
	// Built on refusal only: the check runs on every customer request.
	notYours := func() *problem.Details {
		return problem.New(http.StatusForbidden, "not-owner", "the token's customer does not hold this resource")
	}
	switch o {
	case OwnerNone:
		return nil
	case OwnerCustomer:
		if a.Owners == nil || !a.Owners.OwnsCustomer(subject, r.PathValue("customer")) {
			return notYours().WithField("customer")
		}
	case OwnerAccount:
		if a.Owners == nil || !a.Owners.OwnsAccount(subject, r.PathValue("account")) {
			return notYours().WithField("account")
		}
	case OwnerFrom:
		from, err := a.readFrom(r)
		if err != nil {
			return problem.New(http.StatusBadRequest, "malformed-json", err.Error()).WithField("from")
		}
		if a.Owners == nil || !a.Owners.OwnsAccount(subject, from) {
			return notYours().WithField("from")
		}
	}
	return nil
}

// readFrom reads the "from" member of r's JSON body and puts the body back
// for the upstream. It refuses a body naming "from" twice (in any letter
// case, which encoding/json would match), so the account checked here is the
// account the upstream debits.
func (a *Authorizer) readFrom(r *http.Request) (string, error) {
	limit := a.MaxBodyBytes
	if limit <= 0 {
		limit = 64 << 10
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return "", fmt.Errorf("the request body could not be read: %w", err)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return fromMember(body)
}

// fromMember returns the top-level "from" string of a JSON object.
func fromMember(body []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return "", errors.New("the body must be a JSON object")
	}
	from, seen := "", false
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return "", errors.New("the body is not valid JSON")
		}
		key, _ := k.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return "", errors.New("the body is not valid JSON")
		}
		if !strings.EqualFold(key, "from") {
			continue
		}
		if seen {
			return "", errDuplicateFrom
		}
		seen = true
		if err := json.Unmarshal(v, &from); err != nil {
			return "", errors.New(`"from" must be a string`)
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return "", errors.New("the body is not valid JSON")
	}
	if !seen {
		return "", errors.New(`"from" is required`)
	}
	return from, nil
}
