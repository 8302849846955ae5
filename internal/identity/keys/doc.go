// Package keys holds the identity provider's Ed25519 signing keys: the one in
// use, the next one (published ahead so verifiers that cache the JWKS already
// know it when it takes over) and the retired ones, which stay published until
// every token they signed has expired. The set persists in the data directory
// so a restart does not invalidate tokens already issued.
package keys
