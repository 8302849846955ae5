// Package ratelimit decides whether a key (an address, a prefix, an account,
// a client app) may spend events under a GCRA limit. The Limiter contract has
// two backends side by side — Local (sharded, bounded memory) and Redis (a Lua
// GCRA shared by every gateway) — and Shared puts envoyproxy/ratelimit's local
// cache of over-limit keys in front of the remote one, falling back to local
// limits while Redis is unreachable. Every backend passes the same GCRA table
// (see ratelimit_test.go).
package ratelimit
