package admission

import (
	"math"
	"net/http"
	"testing"
	"time"
)

func TestParseDeadline(t *testing.T) {
	now := time.Date(2025, 12, 22, 9, 30, 0, 0, time.UTC)
	far := now.Add(time.Duration(math.MaxInt64))
	tests := []struct {
		name    string
		header  http.Header
		want    time.Time // zero: no deadline
		wantErr bool
	}{
		{name: "none", header: http.Header{}},
		{name: "rfc3339", header: http.Header{"X-Request-Deadline": {"2025-12-22T09:30:01Z"}}, want: now.Add(time.Second)},
		{name: "rfc3339 fraction and offset", header: http.Header{"X-Request-Deadline": {"2025-12-22T10:30:00.250+01:00"}}, want: now.Add(250 * time.Millisecond)},
		{name: "unix milliseconds", header: http.Header{"X-Request-Deadline": {"1766395800250"}}, want: now.Add(250 * time.Millisecond)},
		{name: "spaces trimmed", header: http.Header{"X-Request-Deadline": {" 1766395800250 "}}, want: now.Add(250 * time.Millisecond)},
		{name: "in the past", header: http.Header{"X-Request-Deadline": {"2025-12-22T09:29:00Z"}}, want: now.Add(-time.Minute)},
		{name: "grpc milliseconds", header: http.Header{"Grpc-Timeout": {"250m"}}, want: now.Add(250 * time.Millisecond)},
		{name: "grpc hours", header: http.Header{"Grpc-Timeout": {"2H"}}, want: now.Add(2 * time.Hour)},
		{name: "grpc minutes", header: http.Header{"Grpc-Timeout": {"3M"}}, want: now.Add(3 * time.Minute)},
		{name: "grpc seconds", header: http.Header{"Grpc-Timeout": {"1S"}}, want: now.Add(time.Second)},
		{name: "grpc microseconds", header: http.Header{"Grpc-Timeout": {"1500u"}}, want: now.Add(1500 * time.Microsecond)},
		{name: "grpc nanoseconds", header: http.Header{"Grpc-Timeout": {"99999999n"}}, want: now.Add(99999999)},
		{name: "grpc zero", header: http.Header{"Grpc-Timeout": {"0m"}}, want: now},
		{name: "grpc past time.Duration", header: http.Header{"Grpc-Timeout": {"99999999H"}}, want: far},
		{name: "earliest of both", header: http.Header{"X-Request-Deadline": {"2025-12-22T09:30:01Z"}, "Grpc-Timeout": {"100m"}}, want: now.Add(100 * time.Millisecond)},
		{name: "earliest of several", header: http.Header{"X-Request-Deadline": {"2025-12-22T09:30:05Z", "2025-12-22T09:30:02Z"}}, want: now.Add(2 * time.Second)},

		{name: "empty", header: http.Header{"X-Request-Deadline": {""}}, wantErr: true},
		{name: "not a time", header: http.Header{"X-Request-Deadline": {"tomorrow"}}, wantErr: true},
		{name: "date only", header: http.Header{"X-Request-Deadline": {"2025-12-22"}}, wantErr: true},
		{name: "negative milliseconds", header: http.Header{"X-Request-Deadline": {"-5"}}, wantErr: true},
		{name: "milliseconds overflow", header: http.Header{"X-Request-Deadline": {"99999999999999999999"}}, wantErr: true},
		{name: "grpc no unit", header: http.Header{"Grpc-Timeout": {"250"}}, wantErr: true},
		{name: "grpc unknown unit", header: http.Header{"Grpc-Timeout": {"250s"}}, wantErr: true},
		{name: "grpc nine digits", header: http.Header{"Grpc-Timeout": {"123456789m"}}, wantErr: true},
		{name: "grpc unit only", header: http.Header{"Grpc-Timeout": {"m"}}, wantErr: true},
		{name: "grpc sign", header: http.Header{"Grpc-Timeout": {"-1m"}}, wantErr: true},
		{name: "one bad of two", header: http.Header{"X-Request-Deadline": {"2025-12-22T09:30:01Z"}, "Grpc-Timeout": {"soon"}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := ParseDeadline(tt.header, now)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseDeadline: %v, want error: %v", err, tt.wantErr)
			}
			if err != nil {
				if ok || !got.IsZero() {
					t.Errorf("ParseDeadline = %v, %v with an error, want zero, false", got, ok)
				}
				return
			}
			if ok != !tt.want.IsZero() || !got.Equal(tt.want) {
				t.Errorf("ParseDeadline = %v, %v; want %v, %v", got, ok, tt.want, !tt.want.IsZero())
			}
		})
	}
}

// FuzzParseDeadline checks that no header value panics ParseDeadline and
// that its answers are coherent: an error comes with no deadline, and a gRPC
// timeout never puts the deadline before now.
func FuzzParseDeadline(f *testing.F) {
	for _, s := range []string{"2025-12-22T09:30:01Z", "1766395800250", "250m", "99999999H", "0n", "", "-1", "1e3", "2025-12-22T09:30:00.999999999+14:00"} {
		f.Add(s, s)
	}
	now := time.Date(2025, 12, 22, 9, 30, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, deadline, grpc string) {
		for _, h := range []http.Header{
			{"X-Request-Deadline": {deadline}},
			{"Grpc-Timeout": {grpc}},
			{"X-Request-Deadline": {deadline}, "Grpc-Timeout": {grpc}},
		} {
			got, ok, err := ParseDeadline(h, now)
			if err != nil && (ok || !got.IsZero()) {
				t.Fatalf("ParseDeadline(%v) = %v, %v, %v: a deadline with an error", h, got, ok, err)
			}
			if err == nil && !ok {
				t.Fatalf("ParseDeadline(%v): no deadline and no error for a present header", h)
			}
		}
		if got, ok, err := ParseDeadline(http.Header{"Grpc-Timeout": {grpc}}, now); err == nil && ok && got.Before(now) {
			t.Fatalf("Grpc-Timeout %q gave %v, before now", grpc, got)
		}
	})
}
