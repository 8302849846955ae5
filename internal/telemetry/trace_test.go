package telemetry

import (
	"strings"
	"testing"
)

const (
	validTP   = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	traceHex  = "4bf92f3577b34da6a3ce929d0e0e4736"
	parentHex = "00f067aa0ba902b7"
)

func TestParseTraceparent(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		ok    bool
		flags byte
	}{
		{"valid sampled", validTP, true, 0x01},
		{"valid not sampled", "00-" + traceHex + "-" + parentHex + "-00", true, 0x00},
		{"unknown flags are kept", "00-" + traceHex + "-" + parentHex + "-ff", true, 0xff},
		{"future version with extra fields", "01-" + traceHex + "-" + parentHex + "-01-what-the-future-holds", true, 0x01},
		{"future version without extra fields", "cc-" + traceHex + "-" + parentHex + "-01", true, 0x01},
		{"empty", "", false, 0},
		{"uppercase trace id", "00-" + strings.ToUpper(traceHex) + "-" + parentHex + "-01", false, 0},
		{"uppercase parent id", "00-" + traceHex + "-00F067AA0BA902B7-01", false, 0},
		{"uppercase version", "0A-" + traceHex + "-" + parentHex + "-01", false, 0},
		{"uppercase flags", "00-" + traceHex + "-" + parentHex + "-0A", false, 0},
		{"all-zero trace id", "00-00000000000000000000000000000000-" + parentHex + "-01", false, 0},
		{"all-zero parent id", "00-" + traceHex + "-0000000000000000-01", false, 0},
		{"version ff", "ff-" + traceHex + "-" + parentHex + "-01", false, 0},
		{"version 00 with extra fields", validTP + "-extra", false, 0},
		{"future version glued to extra data", "01-" + traceHex + "-" + parentHex + "-01extra", false, 0},
		{"trace id too short", "00-" + traceHex[:31] + "-" + parentHex + "-01", false, 0},
		{"trace id too long", "00-" + traceHex + "0-" + parentHex + "-01", false, 0},
		{"parent id too short", "00-" + traceHex + "-" + parentHex[:15] + "-01", false, 0},
		{"flags too short", "00-" + traceHex + "-" + parentHex + "-1", false, 0},
		{"one-digit version", "0-" + traceHex + "-" + parentHex + "-01", false, 0},
		{"non-hex in trace id", "00-" + traceHex[:31] + "g-" + parentHex + "-01", false, 0},
		{"underscores as separators", "00_" + traceHex + "_" + parentHex + "_01", false, 0},
		{"surrounding space", " " + validTP, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc, ok := ParseTraceparent(tt.in)
			if ok != tt.ok {
				t.Fatalf("ParseTraceparent(%q) ok = %v, want %v", tt.in, ok, tt.ok)
			}
			if !ok {
				if tc != (TraceContext{}) {
					t.Errorf("refused header returned a non-zero context %+v", tc)
				}
				return
			}
			if got := tc.TraceIDString(); got != traceHex {
				t.Errorf("trace id = %s, want %s", got, traceHex)
			}
			if tc.Flags != tt.flags {
				t.Errorf("flags = %#x, want %#x", tc.Flags, tt.flags)
			}
		})
	}
}

func TestTraceparentStringRoundTrip(t *testing.T) {
	tests := []string{
		validTP,
		"00-" + traceHex + "-" + parentHex + "-00",
		"00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-ff",
		"00-00000000000000000000000000000001-0000000000000001-01",
	}
	for _, in := range tests {
		t.Run(in, func(t *testing.T) {
			tc, ok := ParseTraceparent(in)
			if !ok {
				t.Fatalf("ParseTraceparent(%q) refused", in)
			}
			if got := tc.String(); got != in {
				t.Errorf("String() = %q, want %q", got, in)
			}
		})
	}
	t.Run("future version is re-emitted as 00", func(t *testing.T) {
		tc, ok := ParseTraceparent("01-" + traceHex + "-" + parentHex + "-01-more")
		if !ok {
			t.Fatal("refused")
		}
		if got := tc.String(); got != validTP {
			t.Errorf("String() = %q, want %q", got, validTP)
		}
	})
}

func TestNewTrace(t *testing.T) {
	a, b := NewTrace(), NewTrace()
	if a.TraceID == b.TraceID || a.SpanID == b.SpanID {
		t.Error("two new traces share ids")
	}
	if a.Flags != 0x01 {
		t.Errorf("flags = %#x, want sampled", a.Flags)
	}
	if got, ok := ParseTraceparent(a.String()); !ok || got != a {
		t.Errorf("a new trace does not parse back: %v %+v", ok, got)
	}
}

func TestChild(t *testing.T) {
	parent, _ := ParseTraceparent(validTP)
	seen := map[[8]byte]bool{parent.SpanID: true}
	for range 16 {
		c := parent.Child()
		if c.TraceID != parent.TraceID {
			t.Fatalf("child trace id %s, want %s", c.TraceIDString(), parent.TraceIDString())
		}
		if c.Flags != parent.Flags {
			t.Fatalf("child flags %#x, want %#x", c.Flags, parent.Flags)
		}
		if seen[c.SpanID] {
			t.Fatalf("child span id %x repeats", c.SpanID)
		}
		seen[c.SpanID] = true
	}
}

func TestValidRequestID(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"a", true},
		{"3f2c9b1e-7d4a-4c55-9b1e-0a7d4a4c559b", true},
		{"req_01:node-7.eu", true},
		{"ABCxyz0189", true},
		{strings.Repeat("x", 128), true},
		{"", false},
		{strings.Repeat("x", 129), false},
		{"has space", false},
		{"new\nline", false},
		{"slash/id", false},
		{"quote\"id", false},
		{"é", false},
		{"semi;colon", false},
	}
	for _, tt := range tests {
		name := tt.in
		if len(name) > 20 {
			name = name[:20] + "..."
		}
		t.Run(name, func(t *testing.T) {
			if got := ValidRequestID(tt.in); got != tt.want {
				t.Errorf("ValidRequestID(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestNewRequestID(t *testing.T) {
	a, b := NewRequestID(), NewRequestID()
	if a == b {
		t.Error("two new request ids are equal")
	}
	if len(a) != 32 || !ValidRequestID(a) {
		t.Errorf("NewRequestID() = %q, want 32 valid characters", a)
	}
}

// FuzzParseTraceparent checks that parsing never panics, that an accepted
// header round-trips (exactly, for version 00), and that anything accepted
// has non-zero ids.
func FuzzParseTraceparent(f *testing.F) {
	f.Add(validTP)
	f.Add("01-" + traceHex + "-" + parentHex + "-01-extra")
	f.Add("ff-" + traceHex + "-" + parentHex + "-01")
	f.Add("00-00000000000000000000000000000000-" + parentHex + "-01")
	f.Add("")
	f.Fuzz(func(t *testing.T, h string) {
		tc, ok := ParseTraceparent(h)
		if !ok {
			return
		}
		if tc.TraceID == ([16]byte{}) || tc.SpanID == ([8]byte{}) {
			t.Fatalf("accepted all-zero ids in %q", h)
		}
		back, ok := ParseTraceparent(tc.String())
		if !ok || back != tc {
			t.Fatalf("Parse(String()) = %+v, %v; want %+v", back, ok, tc)
		}
		if strings.HasPrefix(h, "00-") && tc.String() != h {
			t.Fatalf("String() = %q, want the version-00 input %q", tc.String(), h)
		}
	})
}
