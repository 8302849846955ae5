// Package users is the embedded customer directory the identity provider
// checks passwords against: the estate's demo customers with known demo
// passwords, the derived population C00000000…, argon2id password hashes
// (OWASP parameters by default), and a "stuck" switch that makes it behave
// like the deadlocked user database of the incident.
package users
