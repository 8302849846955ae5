// Package estate is the simulated bank that rempart stands in front of in
// demos and drills: a legacy core with a capacity model and switchable faults,
// a ledger, an SMS gateway for 3-D Secure, and the channels customers and
// partner networks call. It imports none of rempart's protection packages, so
// it fails the way a real legacy estate fails.
package estate
