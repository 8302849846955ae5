// Package scrub tells a holiday rush from a botnet and makes the bots pay. One
// Scrubber sits in front of every route: it resolves the real client address
// (trusting forwarding headers only from configured proxies), lets partners
// the gateway authenticated straight through, watches each route's traffic
// in one-second buckets (rate against a learned baseline, source and
// fingerprint concentration, share of known clients, login failures, never-seen
// addresses) to put it in a state — normal, flash_crowd or attack — and
// answers by state: GCRA rate limits per address, prefix, account and client
// app (local, or shared through Redis), proof-of-work challenges exchanged for
// a signed clearance, CIDR block and allow lists, and per-account login
// throttling that slows unknown devices only. Until a surge of unknown
// clients is called an attack, what they pass to the route is capped at its
// surge threshold, so at most one detection window of surge-rate traffic
// gets through however fast they send.
//
// # What clients see
//
// A challenge comes as 429 with the token in the Rempart-Challenge header:
// browsers (Accept: text/html) get a page that solves it in JavaScript,
// apps get application/problem+json with "challenge" and "difficulty". The
// client sends the solution (see package pow for the format) in the
// Rempart-Solution header (browsers: the rempart_solution cookie) with its
// next request, which then passes and carries a clearance back in the
// Rempart-Clearance response header and the rempart_clearance cookie
// (HttpOnly, Secure, SameSite=Lax). Presenting the clearance (header or
// cookie) lets the client through until it expires, from the same /24 (/48)
// with the same User-Agent and Accept-Language. A session holder gets a
// clearance the same way without any work. Rate-limited answers are 429
// with Retry-After and RateLimit / RateLimit-Policy fields; blocked
// networks get 403.
//
// Files by concern: scrub.go (the middleware and its policy), options.go
// (configuration), clientaddr.go (trusted proxies), detect.go (signals,
// states and the surge cap), tokens.go (challenges and clearances),
// respond.go (what refused clients are told, the browser page), login.go
// (credential stuffing), lists.go (CIDR lists), seen.go (the rotating Bloom
// filter of known addresses), ops.go (the ops API), metrics.go.
//
// Subpackages: pow (the proof-of-work wire format and solver, stdlib only, for
// the client SDK to copy), ratelimit (GCRA backends), breach (k-anonymity
// breached-password lookup), clock.
package scrub
