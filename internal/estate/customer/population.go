package customer

import "strconv"

const (
	// DefaultSize is the population New builds when asked for size 0: the
	// order of magnitude of the bank's customers on the day of the incident.
	DefaultSize = 10_000_000
	// MaxSize bounds a population because ids, accounts and card numbers
	// carry the index in eight decimal digits.
	MaxSize = 100_000_000
)

// Customer is one customer of the simulated bank. Amounts are euro cents.
type Customer struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Phone   string `json:"phone"`
	Account string `json:"account"`
	Card    string `json:"card"`
	Opening int64  `json:"opening"` // opening balance of Account, in cents
	Demo    bool   `json:"demo"`    // one of the named demo customers
}

// Population is a deterministic set of customers derived from a seed. It holds
// no per-customer state, so it is safe for concurrent use and costs nothing to
// build whatever its size.
type Population struct {
	key  uint64 // the seed, scrambled once so that nearby seeds share nothing
	size int
}

// New returns the population of size customers derived from seed. A size of 0
// (or less) means DefaultSize; a size above MaxSize is capped to it.
func New(seed uint64, size int) *Population {
	if size <= 0 {
		size = DefaultSize
	}
	size = min(size, MaxSize)
	return &Population{key: mix64(seed ^ 0x72656d7061727421), size: size}
}

// Size is the number of derived customers, demo customers not included.
func (p *Population) Size() int { return p.size }

// Nth returns the customer at index i, which must be in [0, Size()); like a
// slice index, anything else panics.
func (p *Population) Nth(i int) Customer {
	if i < 0 || i >= p.size {
		panic("customer: index " + strconv.Itoa(i) + " out of range [0," + strconv.Itoa(p.size) + ")")
	}
	return p.nth(i)
}

// Get returns the customer with the given id: "C%08d" or a demo name.
func (p *Population) Get(id string) (Customer, bool) {
	if c, ok := demoByID(id); ok {
		return c, true
	}
	i, ok := p.parseIndex(id, 'C')
	if !ok {
		return Customer{}, false
	}
	return p.nth(i), true
}

// ByAccount returns the customer owning the account "A%08d" (or a demo
// account such as "A-alice").
func (p *Population) ByAccount(acct string) (Customer, bool) {
	if c, ok := demoByAccount(acct); ok {
		return c, true
	}
	i, ok := p.parseIndex(acct, 'A')
	if !ok {
		return Customer{}, false
	}
	return p.nth(i), true
}

// ByCard returns the customer holding the 16-digit card number pan. A number
// that fails the Luhn check, whose index is out of range or whose hash digits
// do not match the derivation is nobody's card.
func (p *Population) ByCard(pan string) (Customer, bool) {
	if c, ok := demoByCard(pan); ok {
		return c, true
	}
	i, ok := p.cardIndex(pan)
	if !ok {
		return Customer{}, false
	}
	return p.nth(i), true
}

// OpeningBalance returns the opening balance of a customer account, in cents.
// It computes only the balance, not the whole customer, because the ledger
// asks it on every first write to an account. System accounts are the
// ledger's business and are unknown here.
func (p *Population) OpeningBalance(account string) (int64, bool) {
	if c, ok := demoByAccount(account); ok {
		return c.Opening, true
	}
	i, ok := p.parseIndex(account, 'A')
	if !ok {
		return 0, false
	}
	return p.opening(i), true
}

// parseIndex reads prefix followed by exactly eight decimal digits, the only
// spelling Nth produces, so that every accepted string round-trips.
func (p *Population) parseIndex(s string, prefix byte) (int, bool) {
	if len(s) != 9 || s[0] != prefix {
		return 0, false
	}
	n, ok := digits(s[1:])
	if !ok || n >= p.size {
		return 0, false
	}
	return n, true
}

// cardIndex validates a derived card number and returns its index.
func (p *Population) cardIndex(pan string) (int, bool) {
	if len(pan) != 16 || pan[:4] != cardBIN {
		return 0, false
	}
	if _, ok := digits(pan); !ok || !luhnValid(pan) {
		return 0, false
	}
	i, _ := digits(pan[4:12])
	if i >= p.size {
		return 0, false
	}
	h, _ := digits(pan[12:15])
	if h != p.cardHash(i) {
		return 0, false
	}
	return i, true
}

// digits parses a string made only of ASCII digits (at most 18 of them, so it
// cannot overflow).
func digits(s string) (int, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
