// Package session is the contract for customer sessions: the Session record,
// the Store every backend implements and the errors callers test with
// errors.Is. A returning customer keeps working on the strength of a session
// alone, so the store must answer without the user database or the core.
//
// Backends are siblings: memory (the embedded default, durable when given a
// directory) and redis (native TTLs, for clustered gateways). Every backend
// passes the conformance suite in sessiontest.
package session
