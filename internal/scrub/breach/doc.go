// Package breach checks a password against a list of breached passwords by
// k-anonymity: only the first five hex digits of the password's SHA-1 leave
// the caller, the source answers with every suffix under that prefix, and the
// comparison happens at the caller. The source here is a local file in the
// Pwned Passwords format (one "SHA1HEX:COUNT" per line, sorted by hash), so
// no password-derived data leaves the machine at all; a remote range API
// could implement Source the same way.
package breach
