// Package sessiontest is the conformance suite every session.Store backend
// passes, with the fake clock it drives time by, and shared benchmarks.
// A backend's test calls RunTests (or RunTestsWith) with a constructor, the
// way Dex's storage/conformance does.
package sessiontest
