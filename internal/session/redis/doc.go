// Package redis is the session store for gateways that share sessions
// through Redis (7.0 or later, standalone or Sentinel). Sessions expire by
// Redis's native TTLs, so a dead session leaves memory on the server's
// clock with nothing to prune; each subject's sessions are indexed by a
// sorted set for the per-subject bound and ListSubject; Lua scripts make a
// create and its evictions one atomic step.
//
// Durability is Redis's: configure appendonly with appendfsync always on
// the server if an acknowledged Create must survive a Redis crash.
package redis
