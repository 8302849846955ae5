// Package client is the Go SDK a bank app embeds to call rempart: an
// http.Client wrapper that retries without turning a bank's bad day into a
// retry storm.
//
// In the incident rempart exists for, apps that re-tried failed logins at
// once and without limit became a denial of service of their own. A Client
// instead:
//
//   - retries only what may succeed later (connection errors, 429, 502, 503,
//     504), never another 4xx, and never a write without an Idempotency-Key:
//     it makes one per call and keeps it across the call's attempts, so the
//     bank applies the write once and answers the retries with the first
//     result;
//   - waits before a retry with exponential backoff and full jitter, and no
//     less than the server's Retry-After;
//   - draws retries from a retry budget (at most 10 % of calls, plus a small
//     floor), so when everything fails the load grows by a tenth instead of
//     by the number of attempts;
//   - stops calling a failing service with a circuit breaker, and probes it
//     again one request at a time (half-open);
//   - sends the caller's deadline (ctx) in X-Request-Deadline, so a request
//     nobody waits for any more is dropped before it reaches the core;
//   - follows waiting-room tickets: a 503 problem of type ".../waiting-room"
//     is a place in a fair line, not a failure, and the client presents its
//     Rempart-Ticket again when told to, until admitted or ctx ends
//     (WithWaitingRoomObserver shows the progress); when it stops waiting
//     (ctx ends, or the next poll would come after its deadline) it gives
//     its place up (Rempart-Leave), so those behind it are not held up;
//   - solves the proof-of-work challenges of the scrubbing layer
//     (Rempart-Challenge) and keeps the clearance it earns.
//
// The package depends on the standard library only.
package client
