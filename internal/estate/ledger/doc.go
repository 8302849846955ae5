// Package ledger is the simulated bank's book of account: an idempotent,
// double-entry ledger on SQLite that applies card payments, ATM withdrawals
// and instant transfers exactly once, whatever is retried, and can prove it
// with Check.
//
// Every transfer carries a caller-chosen idempotency key. The first Apply of a
// key decides (executed or declined) and stores the decision; any later Apply
// of the same key and content returns that stored decision and moves nothing,
// even under concurrent retries, and a key reused for different content is
// refused. Accounts come into existence on their first write, with the opening
// balance an AccountSource reports, so a population of millions costs nothing
// until its customers spend.
package ledger
