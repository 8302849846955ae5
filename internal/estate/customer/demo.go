package customer

// Demo customers are fixed, whatever the seed, so that a person at a demo or a
// scenario file can name them: "pay 30 € with alice's card". Their cards use
// demoBIN, never cardBIN, so they cannot collide with a derived card.

// Demo returns the named demo customers, in a fresh slice the caller may keep.
func (p *Population) Demo() []Customer {
	d := demoCustomers()
	return d[:]
}

// demoCustomers is a function rather than a package variable so that no
// caller can alter what every other caller sees.
func demoCustomers() [3]Customer {
	return [3]Customer{
		{
			ID: "alice", Name: "Alice Martin", Phone: "+33 6 12 34 56 78",
			Account: "A-alice", Card: "4971111111111110", Opening: 2_500_00, Demo: true,
		},
		{
			// Bruno's balance is low on purpose: the demo of a declined payment.
			ID: "bruno", Name: "Bruno Lefèvre", Phone: "+33 6 23 45 67 89",
			Account: "A-bruno", Card: "4971222222222223", Opening: 150_00, Demo: true,
		},
		{
			ID: "camille", Name: "Camille Dubois", Phone: "+33 6 34 56 78 90",
			Account: "A-camille", Card: "4971333333333336", Opening: 12_000_00, Demo: true,
		},
	}
}

func demoByID(id string) (Customer, bool) {
	for _, c := range demoCustomers() {
		if c.ID == id {
			return c, true
		}
	}
	return Customer{}, false
}

func demoByAccount(acct string) (Customer, bool) {
	if len(acct) < 2 || acct[:2] != "A-" {
		return Customer{}, false
	}
	for _, c := range demoCustomers() {
		if c.Account == acct {
			return c, true
		}
	}
	return Customer{}, false
}

func demoByCard(pan string) (Customer, bool) {
	if len(pan) != 16 || pan[:4] != demoBIN {
		return Customer{}, false
	}
	for _, c := range demoCustomers() {
		if c.Card == pan {
			return c, true
		}
	}
	return Customer{}, false
}
