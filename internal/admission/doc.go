// Package admission decides, for one upstream, which requests go to it now,
// which wait for a slot and which are turned away, so that a saturated
// upstream keeps serving CRITICAL traffic first and never runs above the
// concurrency it can actually sustain.
//
// A Controller guards one upstream. Its concurrency limit is learnt, not
// configured: a Vegas-style limiter compares the latency of the calls it
// admits with the upstream's latency when nothing queues in it, and keeps a
// small queue there; 5xx answers and time-outs cut the limit further.
// CRITICAL requests may take a reserved share of slots beyond the limit that
// no other tier can use. Requests above the limit wait in one queue per
// tier, and a slot that frees goes to the most important tier waiting. Each
// tier's queue is FIFO while it drains and switches to LIFO with a short
// wait bound once it has stood non-empty for an interval (Facebook's
// adaptive LIFO with CoDel), so a standing queue sheds its oldest requests
// instead of making every request late. Those bounds ahead of need apply
// once the upstream has shown overload; in front of an upstream at its
// baseline the queue is open, bounded by its size, its longest wait and the
// callers' deadlines only, so that a limit below the demand (its first
// guess, a probe, the host's own CPU read as latency) queues calls rather
// than sheds them. The limit learns from the upstream's own latency when
// the proxy measures it (request written to first byte read), so the
// gateway's work around the call is not mistaken for the upstream's. A
// request whose deadline has passed, or cannot be met given the queue ahead
// of it, is answered at once and never reaches the upstream.
//
// Shed requests get a 503 application/problem+json answer with a jittered
// Retry-After, so shed clients do not return in lockstep. Rejecting costs
// about half a microsecond and no upstream capacity (BenchmarkReject).
package admission
