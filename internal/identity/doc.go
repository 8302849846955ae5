// Package identity is rempart's OpenID provider, built on zitadel/oidc's op
// package: discovery, JWKS with rotating Ed25519 keys, authorization code
// with PKCE (S256 only), refresh tokens rotated with reuse detection, client
// credentials, introspection, revocation, userinfo and end-session, with RFC
// 9068 JWT access tokens. Customers log in through a server-rendered page
// (password, then an SMS one-time code) that leaves a signed device cookie.
//
// Grants and browser sessions live in a session.Store, never in the user
// directory, so a customer who holds a session keeps refreshing tokens while
// the directory is stuck; only new logins wait on it. The Verifier checks
// access tokens at the edge with no round trip: cached keys, a bounded cache
// of verified tokens and an in-process revocation list.
package identity
