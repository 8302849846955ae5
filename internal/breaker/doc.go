// Package breaker keeps a channel answering when its upstream cannot: one
// circuit breaker per upstream (failsafe-go), and per route the fallback it
// switches to — the last good answer of a read (Stale), stand-in processing
// of card and ATM authorisations within risk limits (StandIn), or acceptance
// of instant transfers into an outbox (Outbox). Stand-in decisions and
// outbox transfers are written to the durable journal before the client is
// answered; the journal's Replayer delivers them to the core once it is back.
package breaker
