package drill

import (
	"net/http"
	"strconv"
	"time"

	"github.com/rempart/rempart/internal/estate"
	"github.com/rempart/rempart/internal/tier"
)

// What an attack wants; a request that gets it is a breach.
const (
	// GoalAnswered: any 2xx (someone else's data read, a transfer taken,
	// an SMS sent).
	GoalAnswered = "answered"
	// GoalApproved: a payment approved (a 2xx that is not a decline).
	GoalApproved = "approved"
)

// breached reports whether an attempt gave the attacker what goal wants.
func breached(goal string, a attempt) bool {
	switch goal {
	case GoalAnswered:
		return a.out == outOK
	case GoalApproved:
		return a.out == outOK && !a.declined
	}
	return false
}

// Attack channels, one per kind of attack.
const (
	ChannelAnonymousTransfer = "anonymous_transfer"
	ChannelAnonymousCard     = "anonymous_card"
	ChannelStolenTokenRead   = "stolen_token_read"
	ChannelStolenTransfer    = "stolen_token_transfer"
	ChannelForcedDeadline    = "forced_deadline"
	ChannelSMSInjection      = "sms_injection"
	ChannelBlockedLogin      = "blocked_login"
)

// smsInjection is the merchant text of the SMS-injection attack: the
// attacker's words in the bank's own 3-D Secure SMS, sending the cardholder
// to a premium-rate number.
const smsInjection = "Votre compte est bloqué, appelez le 0899 12 34 56"

// attackTargets are the attacks of issue 11, as an attacker sends them:
// from their own addresses, with no client certificate (in plain HTTP, or
// over TLS when the arm serves it), and for the stolen token with a real
// customer's session.
func attackTargets() Targets {
	return Targets{
		// Money out of a victim's account, asking nobody.
		"anonymous_transfer": {Channel: ChannelAnonymousTransfer, Tier: tier.Critical, Method: http.MethodPost,
			Path: estate.PathInstantTransfer, Ledger: true, Partner: PartnerInstantScheme, Attack: GoalAnswered,
			Body: jsonBody(func(d *Draw) any {
				return estate.InstantTransfer{From: d.Customer.Account, To: d.Counterparty.Account, Amount: amount(d, 100, 30_000), Reference: "attack"}
			})},
		// An online payment with a card number and nothing else.
		"anonymous_card": {Channel: ChannelAnonymousCard, Tier: tier.Critical, Method: http.MethodPost,
			Path: estate.PathCardAuthorize, Ledger: true, Partner: PartnerCardSchemes, Attack: GoalApproved,
			Body: jsonBody(func(d *Draw) any {
				return estate.CardAuthorization{Card: d.Customer.Card, Amount: amount(d, 100, 20_000), Merchant: merchant(d), Channel: "online"}
			})},
		// One customer's token against another customer's data and money.
		// A blocked customer's phone and password: a login is a breach.
		"blocked_login": {Channel: ChannelBlockedLogin, Tier: tier.Sheddable, Attack: GoalAnswered,
			Login: &Login{User: func(d *Draw) string { return d.Customer.ID }, Password: derivedPassword}},
		"stolen_balance": {Channel: ChannelStolenTokenRead, Tier: tier.Normal, Method: http.MethodGet,
			Path: estate.PathBalance, Stolen: true, Attack: GoalAnswered},
		"stolen_documents": {Channel: ChannelStolenTokenRead, Tier: tier.Normal, Method: http.MethodGet,
			Path: estate.PathDocuments, Stolen: true, Attack: GoalAnswered},
		"stolen_transfer": {Channel: ChannelStolenTransfer, Tier: tier.Critical, Method: http.MethodPost,
			Path: estate.PathInstantTransfer, Ledger: true, Stolen: true, Attack: GoalAnswered,
			Body: jsonBody(func(d *Draw) any {
				return estate.InstantTransfer{From: d.Customer.Account, To: d.Thief.Account, Amount: amount(d, 100, 30_000), Reference: "attack"}
			})},
		// A payment above any derived balance with a deadline nobody can
		// meet (Grpc-Timeout "1m" is one millisecond), so that a gateway
		// shedding it would answer from a stand-in that checks no funds.
		"forced_deadline": {Channel: ChannelForcedDeadline, Tier: tier.Critical, Method: http.MethodPost,
			Path: estate.PathCardAuthorize, Ledger: true, Partner: PartnerCardSchemes, Attack: GoalApproved, Body: overdraft,
			Header: func(time.Time) http.Header { return http.Header{"Grpc-Timeout": {"1m"}} }},
		"forced_deadline_at": {Channel: ChannelForcedDeadline, Tier: tier.Critical, Method: http.MethodPost,
			Path: estate.PathCardAuthorize, Ledger: true, Partner: PartnerCardSchemes, Attack: GoalApproved, Body: overdraft,
			Header: func(now time.Time) http.Header {
				return http.Header{"X-Request-Deadline": {strconv.FormatInt(now.Add(time.Millisecond).UnixMilli(), 10)}}
			}},
		// The attacker's words in the bank's 3-D Secure SMS to a cardholder.
		"sms_injection": {Channel: ChannelSMSInjection, Tier: tier.Critical, Method: http.MethodPost,
			Path: estate.PathThreeDSChallenge, Partner: PartnerThreeDS, Attack: GoalAnswered,
			Body: jsonBody(func(d *Draw) any {
				return estate.ThreeDSChallenge{Card: d.Customer.Card, Amount: amount(d, 500, 5_000), Merchant: smsInjection}
			})},
	}
}

// overdraft is a shop payment of 15,000 EUR up to the estate's largest card
// authorisation, above every derived customer's opening balance (at most
// 5,000 EUR, internal/estate/customer).
var overdraft = jsonBody(func(d *Draw) any {
	return estate.CardAuthorization{Card: d.Customer.Card, Amount: amount(d, 15_000_00, estate.MaxCardAmount), Merchant: merchant(d), Channel: "shop"}
})
