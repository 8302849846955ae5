package drill

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/rempart/rempart/internal/estate"
	"github.com/rempart/rempart/internal/estate/customer"
	"github.com/rempart/rempart/internal/tier"
)

// Customer is what a request needs to know about one of the bank's customers.
type Customer struct {
	ID      string // C%08d
	Account string // A%08d
	Card    string // 16-digit PAN
	Phone   string // where the bank's SMS codes go
}

// Customers maps an index in [0, Scenario.Customers) to a customer,
// deterministically and without memory.
type Customers func(i int) Customer

// estateSeed is the seed an estate derives its customers from unless
// configured otherwise (internal/config: estate.seed defaults to 1).
const estateSeed = 1

// EstateCustomers derives customers exactly as an estate built from seed
// does (internal/estate/customer), so that the cards and accounts the drill
// uses exist there. Run defaults to the estate's default seed.
func EstateCustomers(seed uint64, size int) Customers {
	pop := customer.New(seed, size)
	return func(i int) Customer {
		c := pop.Nth(i)
		return Customer{ID: c.ID, Account: c.Account, Card: c.Card, Phone: c.Phone}
	}
}

// Draw is what one arrival drew. It is the same for every arm: the customer,
// a counterparty for transfers, a random source seeded by the arrival, and
// the idempotency key all its attempts carry.
type Draw struct {
	Customer     Customer
	Counterparty Customer
	Rand         *rand.Rand
	Key          string
	// Thief is, for a stolen-token attack, the customer whose session the
	// attacker holds; Customer is then the victim.
	Thief Customer

	pop   int    // the population's index
	slot  int    // the customer's session (or device) among the population's; -1 for none
	token string // the stolen access token, for a stolen-token attack
}

// Target is one kind of request in the mix: populations name targets with a
// weight, results are counted per Channel.
type Target struct {
	// Channel names the series the request is counted in; several targets
	// may share one (login, credential stuffing and login flood are "login").
	Channel string
	// Tier is the channel's criticality, for ordering the report.
	Tier tier.Tier
	// Method is the HTTP method.
	Method string
	// Path may hold {customer}, {account}, {card} and {tracking}.
	Path string
	// Body builds the request body and its content type; nil sends none.
	Body func(d *Draw) (contentType string, body []byte)
	// Ledger marks writes the ledger keeps under their Idempotency-Key: the
	// keys of those answered 2xx are handed to the estate's check after the
	// run, which fails if one is missing or applied twice.
	Ledger bool
	// Login, when set, makes the target a whole login flow (see Login);
	// Method, Path and Body are then unused.
	Login *Login
	// Partner names the partner network that owns the channel (card
	// schemes, the 3-D Secure server, the ATM network, the instant-payment
	// scheme). A population marked partner sends there with that
	// partner's client certificate when the arm publishes one.
	Partner string
	// Header, when set, gives headers for an attempt sent at now, e.g. a
	// deadline the caller makes up.
	Header func(now time.Time) http.Header
	// Attack, when set, makes the target an attack and says what the
	// attacker wants (GoalAnswered, GoalApproved): a request that gets it
	// is a breach (Counts.Breaches).
	Attack string
	// Stolen sends the request with the access token of another customer
	// than Draw.Customer (the victim): one of the sessions the drill logged
	// in for the populations holding sessions, as an attacker who stole a
	// token from a phone would. Draw.Thief is that token's customer.
	Stolen bool
	// Bot marks requests no customer makes (credential stuffing, login
	// floods): refusing them is the arm doing its job, so the report counts
	// them with the attackers, never in what customers were served.
	Bot bool
}

// Partner networks, as the arms' demo partners are named (rempart's
// config.DemoPartners and the demo PKI's certificates).
const (
	PartnerCardSchemes   = "card-schemes"
	PartnerThreeDS       = "3ds-server"
	PartnerATMNetwork    = "atm-network"
	PartnerInstantScheme = "instant-scheme"
)

// Targets is a request mix by target name.
type Targets map[string]Target

// Channel names of the default targets.
const (
	ChannelCardAuthorize   = "card_authorize"
	ChannelThreeDS         = "threeds_challenge"
	ChannelATMWithdraw     = "atm_withdraw"
	ChannelInstantTransfer = "instant_transfer"
	ChannelAccounts        = "accounts"
	ChannelBalance         = "balance"
	ChannelTransactions    = "transactions"
	ChannelDocuments       = "documents"
	ChannelParcel          = "parcel"
	ChannelLogin           = "login"
)

// DefaultTargets is the estate's channel API (internal/estate/api.go) plus
// logins and the attacks of attackTargets. The 3-D Secure verify step is
// missing on purpose: it needs the OTP from the SMS outbox, which the wiring
// can add as a target of its own.
func DefaultTargets() Targets {
	targets := Targets{
		"card_authorize": {Channel: ChannelCardAuthorize, Tier: tier.Critical, Method: http.MethodPost, Path: estate.PathCardAuthorize, Ledger: true,
			Body: jsonBody(func(d *Draw) any {
				ch := "shop"
				if d.Rand.IntN(3) == 0 {
					ch = "online"
				}
				return estate.CardAuthorization{Card: d.Customer.Card, Amount: amount(d, 100, 20_000), Merchant: merchant(d), Channel: ch}
			}), Partner: PartnerCardSchemes},
		"threeds_challenge": {Channel: ChannelThreeDS, Tier: tier.Critical, Method: http.MethodPost, Path: estate.PathThreeDSChallenge,
			Body: jsonBody(func(d *Draw) any {
				return estate.ThreeDSChallenge{Card: d.Customer.Card, Amount: amount(d, 500, 50_000), Merchant: merchant(d)}
			}), Partner: PartnerThreeDS},
		"atm_withdraw": {Channel: ChannelATMWithdraw, Tier: tier.Critical, Method: http.MethodPost, Path: estate.PathATMWithdraw, Ledger: true,
			Body: jsonBody(func(d *Draw) any {
				return estate.ATMWithdrawal{Card: d.Customer.Card, Amount: 1000 * (1 + d.Rand.Int64N(10)), ATM: fmt.Sprintf("ATM%04d", d.Rand.IntN(9000))}
			}), Partner: PartnerATMNetwork},
		"instant_transfer": {Channel: ChannelInstantTransfer, Tier: tier.Critical, Method: http.MethodPost, Path: estate.PathInstantTransfer, Ledger: true,
			Body: jsonBody(func(d *Draw) any {
				return estate.InstantTransfer{From: d.Customer.Account, To: d.Counterparty.Account, Amount: amount(d, 100, 30_000), Reference: "drill"}
			}), Partner: PartnerInstantScheme},
		"accounts":     {Channel: ChannelAccounts, Tier: tier.Normal, Method: http.MethodGet, Path: estate.PathAccounts},
		"balance":      {Channel: ChannelBalance, Tier: tier.Normal, Method: http.MethodGet, Path: estate.PathBalance},
		"transactions": {Channel: ChannelTransactions, Tier: tier.Normal, Method: http.MethodGet, Path: estate.PathTransactions},
		"documents":    {Channel: ChannelDocuments, Tier: tier.Sheddable, Method: http.MethodGet, Path: estate.PathDocuments},
		"parcel":       {Channel: ChannelParcel, Tier: tier.Sheddable, Method: http.MethodGet, Path: estate.PathParcel},
		// A customer logging in with their own password and SMS code.
		"login": {Channel: ChannelLogin, Tier: tier.Sheddable,
			Login: &Login{User: func(d *Draw) string { return d.Customer.ID }, Password: derivedPassword}},
		// Real customer ids with passwords leaked elsewhere.
		"credential_stuffing": {Channel: ChannelLogin, Tier: tier.Sheddable, Bot: true,
			Login: &Login{User: func(d *Draw) string { return d.Customer.ID }, Password: func(d *Draw) string { return fmt.Sprintf("leak-%08x", d.Rand.Uint32()) }}},
		// Made-up customer ids as fast as possible.
		"login_flood": {Channel: ChannelLogin, Tier: tier.Sheddable, Bot: true,
			Login: &Login{User: func(d *Draw) string { return fmt.Sprintf("C%08d", 10_000_000+d.Rand.IntN(90_000_000)) }, Password: func(d *Draw) string { return "123456" }}},
	}
	for name, t := range attackTargets() {
		targets[name] = t
	}
	return targets
}

// jsonBody makes a target's body from a value drawn per request.
func jsonBody(v func(d *Draw) any) func(d *Draw) (string, []byte) {
	return func(d *Draw) (string, []byte) {
		b, err := json.Marshal(v(d))
		if err != nil {
			panic(err) // plain structs of strings and ints always marshal
		}
		return "application/json", b
	}
}

// amount draws an amount in cents in [lo, hi].
func amount(d *Draw, lo, hi int64) int64 { return lo + d.Rand.Int64N(hi-lo+1) }

// merchant draws one of 50,000 merchants.
func merchant(d *Draw) string { return fmt.Sprintf("M%05d", d.Rand.IntN(50_000)) }

// expand fills a target's path template for one draw.
func (t Target) expand(d *Draw) string {
	if !strings.Contains(t.Path, "{") {
		return t.Path
	}
	return strings.NewReplacer(
		"{customer}", d.Customer.ID,
		"{account}", d.Customer.Account,
		"{card}", d.Customer.Card,
		"{tracking}", fmt.Sprintf("LP%09dFR", d.Rand.IntN(1e9)), // S10 format, as the estate checks
	).Replace(t.Path)
}

// sourceAddr is the loopback address of source i, in 127.64.0.0/10:
// consecutive sources go to consecutive /24s (host .1 in each of the 16,384,
// then .2, ...), so a population of a few thousand addresses is spread over
// as many networks, as a bank's customers and a botnet's machines are, and
// no /24 of the drill is a concentration it did not mean. Linux routes all
// of 127/8 to lo, so binding needs no setup.
func sourceAddr(i int) net.IP {
	v := 0x7f400000 + uint32(i%(1<<14))<<8 + uint32(i>>14) + 1
	return net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// backoff is how long a population waits before attempt n+1 (n ≥ 1 attempts
// made), or false when it gives up. retryAfter is the server's Retry-After,
// 0 when absent.
func (r Retry) backoff(n int, retryAfter time.Duration, rng *rand.Rand) (time.Duration, bool) {
	if n >= r.Attempts {
		return 0, false
	}
	switch r.Policy {
	case RetryImmediate:
		return 0, true
	case RetryBackoff:
		if retryAfter > r.Cap {
			return 0, false // the server asks for more patience than the app has
		}
		if retryAfter > 0 {
			return retryAfter, true
		}
		ceil := r.Cap
		if shift := n - 1; shift < 30 && r.Base<<shift < r.Cap {
			ceil = r.Base << shift
		}
		return time.Duration(rng.Int64N(int64(ceil) + 1)), true
	}
	return 0, false
}
