// Package journal is the durable record of what the gateway decided or
// accepted on the core's behalf while the core could not answer — stand-in
// card and ATM decisions, instant transfers held in the outbox — and the
// Replayer that delivers each of them to the core once it is back.
//
// Exactly once comes from idempotency end to end: every entry carries the
// client's Idempotency-Key, the core's ledger decides a key once and answers a
// repeat with its first decision, so a crash between sending an entry and
// marking it done is repaired by sending it again.
//
// Entries hold card numbers, so backends keep their bodies sealed with
// AES-256-GCM (Sealer, key in journal.key) and a Purger deletes done entries
// once their retention has passed.
//
// Store is the contract; backends are siblings (sqlite, the embedded default,
// and postgres) and every backend passes the conformance suite in journaltest.
package journal
