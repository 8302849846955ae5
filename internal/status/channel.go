package status

import (
	"time"

	"github.com/rempart/rempart/internal/tier"
)

// Level is how well a channel works.
type Level int

const (
	// Up: the channel works as it should.
	Up Level = iota
	// Degraded: it works, but slowly, for fewer customers, or on a fallback
	// (stand-in, last known values, outbox).
	Degraded
	// Down: most requests get no useful answer.
	Down
)

var levelNames = [...]string{"up", "degraded", "down"}

// String returns "up", "degraded" or "down", the words of logs and tests.
func (l Level) String() string {
	if l < Up || l > Down {
		return "level(?)"
	}
	return levelNames[l]
}

// Fallback says what answers for a channel when its backend cannot. It
// chooses the words the page uses when fallbacks are answering: what a
// customer can still do is different for each.
type Fallback int

const (
	// NoFallback: when the backend fails, the channel fails.
	NoFallback Fallback = iota
	// StaleRead: reads are answered from the last known value, marked with
	// the time it was current (balances, history).
	StaleRead
	// StandIn: the gateway approves within risk limits and the core confirms
	// later (card authorisations, ATM withdrawals).
	StandIn
	// Outbox: requests are accepted durably and executed later, once
	// (instant transfers).
	Outbox
)

// Channel is one line of the status page: a route of the route table, as a
// customer would name it.
type Channel struct {
	// Name is the route name, e.g. "card-authorize"; Observe is called with
	// it, and it is the component id in status.json.
	Name string
	// Tier is the route's tier. It picks the latency objective, and a
	// CRITICAL channel in major outage makes the whole page "critical".
	Tier tier.Tier
	// TitleFR and TitleEN name the channel for customers.
	TitleFR, TitleEN string
	// Fallback is what answers when the backend cannot.
	Fallback Fallback
}

// DefaultChannels are the channels of the default route table (see the
// README), in the order the page shows them: what stayed up on the day
// first. The wiring keeps those whose routes it serves and adds its own.
func DefaultChannels() []Channel {
	return []Channel{
		{"card-authorize", tier.Critical, "Paiement par carte (en magasin et en ligne)", "Card payments (in shops and online)", StandIn},
		{"3ds-challenge", tier.Critical, "Envoi du code de sécurité par SMS (3-D Secure)", "Security codes by SMS (3-D Secure)", NoFallback},
		{"3ds-verify", tier.Critical, "Vérification du code de sécurité (3-D Secure)", "Security code check (3-D Secure)", NoFallback},
		{"atm-withdraw", tier.Critical, "Retraits aux distributeurs", "Cash withdrawals at ATMs", StandIn},
		{"instant-transfer", tier.Critical, "Virements instantanés", "Instant transfers", Outbox},
		{"accounts", tier.Normal, "Liste des comptes", "Account list", StaleRead},
		{"balance", tier.Normal, "Consultation du solde", "Account balance", StaleRead},
		{"transactions", tier.Normal, "Historique des opérations", "Transaction history", StaleRead},
		{"documents", tier.Sheddable, "Coffre-fort de documents", "Document vault", NoFallback},
		{"parcel", tier.Sheddable, "Suivi des colis", "Parcel tracking", NoFallback},
	}
}

// Outcome is what became of one request, as the gateway saw it.
type Outcome struct {
	// Status is the HTTP status sent to the client.
	Status int
	// Latency is the time from receiving the request to the end of the answer.
	Latency time.Duration
	// Shed: turned away before the backend (admission, waiting room, rate
	// limit) to protect it.
	Shed bool
	// Fallback: answered by a stand-in, a last known value or the outbox
	// instead of the backend. It counts as working, degraded.
	Fallback bool
	// UpstreamFailure: the backend failed (error, time-out, refused) and no
	// fallback answered.
	UpstreamFailure bool
	// AsOf is, for a last-known-value answer, when the value was current.
	AsOf time.Time
}

// class is what an outcome counts as in the rules.
type class int

const (
	served   class = iota // the backend answered
	fellBack              // a fallback answered
	shed                  // turned away to protect the backend
	failed                // nothing useful came back
	ignored               // the client's own mistake: says nothing about the channel
)

func classify(o Outcome) class {
	switch {
	case o.Fallback:
		return fellBack
	case o.Shed || o.Status == 429:
		return shed
	case o.UpstreamFailure || o.Status >= 500:
		return failed
	case o.Status >= 400:
		// 4xx, including 499 (client gone): a wrong card number or a
		// customer who closed the app says nothing about the bank.
		return ignored
	default:
		return served
	}
}
