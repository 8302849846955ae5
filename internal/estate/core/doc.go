// Package core simulates the bank's legacy core: a fixed pool of workers with a
// queue in front, lognormal service times and switchable faults (slowdown,
// errors, outage, write-lock convoys), so the rest of rempart can be tested
// against a core that saturates and fails the way the one in the incident did.
package core
