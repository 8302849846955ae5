// Package tier defines the criticality tiers that every route, metric and log
// line carries: what the bank must keep serving first when it cannot serve all.
package tier

import (
	"fmt"
	"strings"
)

// Tier is a route's criticality. Lower values are more important.
type Tier int

const (
	// Critical channels stayed up on the day and must stay up by design:
	// card authorisation, 3-D Secure OTP, ATM withdrawal, instant transfer.
	Critical Tier = iota
	// Important is traffic of customers who already hold a session
	// (including token refresh).
	Important
	// Normal is everyday banking: accounts, balances, history.
	Normal
	// Sheddable goes first under overload: documents, parcels, new logins
	// during a surge.
	Sheddable
)

// All lists the tiers from most to least important.
var All = []Tier{Critical, Important, Normal, Sheddable}

var names = [...]string{"critical", "important", "normal", "sheddable"}

// String returns the lower-case name used in configs, metrics and logs.
func (t Tier) String() string {
	if t < 0 || int(t) >= len(names) {
		return fmt.Sprintf("tier(%d)", int(t))
	}
	return names[t]
}

// Parse reads a tier name, case-insensitively.
func Parse(s string) (Tier, error) {
	for i, n := range names {
		if strings.EqualFold(s, n) {
			return Tier(i), nil
		}
	}
	return 0, fmt.Errorf("unknown tier %q (want one of %s)", s, strings.Join(names[:], ", "))
}

// MarshalText implements encoding.TextMarshaler.
func (t Tier) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *Tier) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}
