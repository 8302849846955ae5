// Package waitroom puts new logins in a fair line when the identity provider
// behind them is saturated, instead of letting them fail and come back as a
// retry storm.
//
// A Room admits requests at the capacity it measures on the calls it lets
// through (see rate.go). While demand stays below that capacity every request
// passes straight through: no ticket, no extra round trip. Above it, each
// newcomer gets a signed ticket carrying its place in a first-in first-out
// line and an honest estimate of the wait; the "now serving" counter advances
// at the measured capacity and a ticket is let through once it is reached,
// exactly once. Customers who already hold a session, and partner networks,
// never see the room: they are not the load it protects against.
//
// The line lives in the memory of one process. Give each replica its own room
// ID: a ticket from another room is no ticket.
package waitroom
