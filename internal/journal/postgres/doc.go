// Package postgres is the journal.Store for gateways that share one journal:
// a table in a PostgreSQL schema, reached through a small pool of pgx
// connections. Commits are durable as the server's synchronous_commit makes
// them (on by default: flushed to the server's disk before Append returns).
package postgres
