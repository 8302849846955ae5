// Package journaltest is the conformance suite every journal.Store backend
// passes: a backend's test is a call to RunTests with a constructor.
package journaltest
