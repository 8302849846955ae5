// Package sqlite is the embedded journal.Store: one SQLite file in the data
// directory, written through a single connection with group commit and
// fsynced at every commit, so an acknowledged append survives SIGKILL and
// power loss while concurrent appends share the cost of a sync.
package sqlite
