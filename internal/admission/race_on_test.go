//go:build race

package admission_test

// raceEnabled: the race detector slows every goroutine several times over,
// the gateway's and the back end's alike, so a load sized for the real
// speed turns into waits no healthy back end would cause.
const raceEnabled = true
