// Package waitroom puts new logins in a fair line when the identity provider
// behind them is saturated, instead of letting them fail and come back as a
// retry storm.
//
// A Room admits requests at the capacity it measures on the calls it lets
// through (see rate.go). While demand stays below that capacity every request
// passes straight through: no ticket, no extra round trip. Above it, a
// newcomer is told to come back in a second, with a signed ticket and an
// honest estimate of the wait; when it does, it gets its place at the back of
// a first-in first-out line. A flood that fires requests and never reads the
// answers so never holds a place, and the customers behind it neither wait
// for it nor are quoted waits that count it. (Bots that follow the protocol
// queue like anyone else, at the measured rate; telling them apart is the
// scrubber's job, in front of the room.) The "now serving" counter advances
// at the measured capacity, passing over places whose holders stopped
// polling, and a ticket is let through once it is reached, exactly once.
// Customers who already hold a session, and partner networks, never see the
// room: they are not the load it protects against.
//
// The line lives in the memory of one process. Give each replica its own room
// ID: a ticket from another room is no ticket.
package waitroom
