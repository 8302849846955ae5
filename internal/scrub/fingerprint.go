package scrub

import "net/http"

// FNV-1a, 64 bits: fast, no allocation, and good enough to bucket header
// values; nothing here needs collision resistance (the clearance MAC does).
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// agentFingerprint hashes User-Agent and Accept-Language: what a clearance is
// bound to. It leaves out the set of headers, which legitimately changes
// between a browser's GET and its POST.
func agentFingerprint(h http.Header) uint64 {
	f := fnvString(fnvOffset, h.Get("User-Agent"))
	f = fnvString(f^0xff, h.Get("Accept-Language"))
	return f
}

// headerFingerprint adds the set of header names to agentFingerprint: the
// signal for concentration of client software. Go's http.Header is a map, so
// the wire order of headers is lost; the set of names (summed, so order does
// not matter) is what remains, and it still tells curl from a browser from a
// bot framework.
func headerFingerprint(h http.Header, agent uint64) uint64 {
	var set uint64
	for name := range h {
		set += fnvString(fnvOffset, name)
	}
	return agent ^ (set * fnvPrime)
}
