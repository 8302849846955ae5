//go:build race

package main

// raceEnabled: the race detector allocates on its own and makes sync.Pool
// drop a share of what is put back, so allocation counts mean nothing.
const raceEnabled = true
