// Package memory is the embedded session store: sharded in memory, expired
// and idle sessions pruned on time by a background loop, a bounded number of
// sessions per customer, and, given a directory, durable across a restart or
// a SIGKILL through an append-only log with group commit plus periodic
// snapshots.
//
// # Layout
//
// Sessions live in 64 shards keyed by a hash of the ID. Each shard holds an
// open-addressing table of entries and a min-heap of their deadlines, which
// the pruner pops. A second set of 64 shards, keyed by a hash of the
// subject, threads each customer's sessions into a list ordered by CreatedAt
// (for the per-subject bound and ListSubject). Locks are taken subject shard
// first, then ID shard, never the other way round.
//
// # Durability
//
// Every Create, Delete, DeleteSubject and eviction appends a record (length,
// CRC-32, payload) to the log while holding the shard lock, so the log order
// is the order the store applied them in. Create and the deletes return only
// after their record is written and fsynced; concurrent callers share one
// fsync (the first waiter writes everything pending, the rest wait for it),
// so throughput grows with concurrency instead of being capped by the disk's
// fsync rate. When the log passes Options.SnapshotAfter it is rotated, all
// shards are written to a snapshot file (temporary name, fsync, rename) and
// the older files are removed. Opening loads the newest snapshot, replays the
// logs after it and drops a torn final record.
//
// Touch is logged coarsely and never waits for fsync: it runs on every
// request, so logging each one would make the log grow with traffic rather
// than with logins and tie request latency to the disk. A Touch is written
// when LastSeen crosses a boundary of min(Options.TouchEvery, IdleTimeout/4),
// so after a crash LastSeen is at most that much behind: a session in use
// keeps at least three quarters of its idle allowance, and no session comes
// back with more than it had.
package memory
