// Package clock is the time source of the scrubber and its rate limiters: the
// wall clock in production, a Fake that moves only when told to in tests.
package clock
