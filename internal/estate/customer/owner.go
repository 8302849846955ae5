package customer

// OwnsCustomer reports whether subject, a customer id as the identity provider
// puts it in tokens, is the customer id: the same customer, existing in the
// population. It allocates nothing, so the gateway can ask it on every request.
func (p *Population) OwnsCustomer(subject, id string) bool {
	if subject != id {
		return false
	}
	if _, ok := demoByID(id); ok {
		return true
	}
	_, ok := p.parseIndex(id, 'C')
	return ok
}

// OwnsAccount reports whether the customer subject holds the account: a demo
// customer their named account, a derived customer "C%08d" the account
// "A%08d" of the same index. It allocates nothing.
func (p *Population) OwnsAccount(subject, account string) bool {
	if c, ok := demoByAccount(account); ok {
		return c.ID == subject
	}
	a, ok := p.parseIndex(account, 'A')
	if !ok {
		return false
	}
	c, ok := p.parseIndex(subject, 'C')
	return ok && a == c
}
