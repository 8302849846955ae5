// Package keys holds the identity provider's Ed25519 signing keys: the one in
// use, the next one (published ahead so verifiers that cache the JWKS already
// know it when it takes over) and the retired ones, which stay published until
// every token they signed has expired, plus the device-cookie key.
//
// The set lives in a Store: a file in the data directory for one node, or a
// store every node of a cluster shares (the postgres subpackage), sealed under
// a key-encryption key. Rotation is a compare-and-swap on the store's version,
// so exactly one node rotates and the others reload its result; every node
// reloads the shared set periodically and on an unknown key id, so all of
// them publish the same JWKS.
package keys
