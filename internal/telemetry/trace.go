package telemetry

import (
	"crypto/rand"
	"encoding/hex"
)

// TraceContext is a W3C Trace Context (traceparent) for one hop.
type TraceContext struct {
	TraceID [16]byte
	SpanID  [8]byte
	Flags   byte
}

// ParseTraceparent reads a version-00 traceparent header. It accepts future
// versions' first four fields as the spec asks, and refuses all-zero ids.
func ParseTraceparent(h string) (TraceContext, bool) {
	var tc TraceContext
	// version(2) - trace-id(32) - parent-id(16) - flags(2)
	if len(h) < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-' {
		return tc, false
	}
	var ver [1]byte
	if _, err := hex.Decode(ver[:], []byte(h[0:2])); err != nil || !isLowerHex(h[0:2]) || ver[0] == 0xff {
		return tc, false
	}
	if ver[0] == 0 && len(h) != 55 {
		return tc, false
	}
	if ver[0] > 0 && len(h) > 55 && h[55] != '-' {
		return tc, false
	}
	if !isLowerHex(h[3:35]) || !isLowerHex(h[36:52]) || !isLowerHex(h[53:55]) {
		return tc, false
	}
	hex.Decode(tc.TraceID[:], []byte(h[3:35]))
	hex.Decode(tc.SpanID[:], []byte(h[36:52]))
	var f [1]byte
	hex.Decode(f[:], []byte(h[53:55]))
	tc.Flags = f[0]
	if tc.TraceID == ([16]byte{}) || tc.SpanID == ([8]byte{}) {
		return TraceContext{}, false
	}
	return tc, true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// NewTrace starts a trace at this hop.
func NewTrace() TraceContext {
	var tc TraceContext
	rand.Read(tc.TraceID[:])
	rand.Read(tc.SpanID[:])
	tc.Flags = 0x01
	return tc
}

// Child keeps the trace id and flags and gives this hop its own span id.
func (tc TraceContext) Child() TraceContext {
	c := tc
	rand.Read(c.SpanID[:])
	return c
}

// TraceIDString returns the trace id in hex.
func (tc TraceContext) TraceIDString() string { return hex.EncodeToString(tc.TraceID[:]) }

// String formats the context as a traceparent header value.
func (tc TraceContext) String() string {
	b := make([]byte, 0, 55)
	b = append(b, "00-"...)
	b = hex.AppendEncode(b, tc.TraceID[:])
	b = append(b, '-')
	b = hex.AppendEncode(b, tc.SpanID[:])
	b = append(b, '-')
	b = hex.AppendEncode(b, []byte{tc.Flags})
	return string(b)
}

// ValidRequestID accepts caller-supplied request ids that are safe to log and
// echo: 1 to 128 characters from [A-Za-z0-9._:-].
func ValidRequestID(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// NewRequestID returns a random 16-byte hex id.
func NewRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
