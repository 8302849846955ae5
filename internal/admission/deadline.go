package admission

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers that carry a caller's deadline.
const (
	// DeadlineHeader holds an absolute deadline: an RFC 3339 timestamp
	// ("2025-12-22T09:30:00.250Z") or integer Unix milliseconds
	// ("1766395800250").
	DeadlineHeader = "X-Request-Deadline"
	// GRPCTimeoutHeader holds a relative timeout in gRPC's wire format: at
	// most 8 digits and a unit, H M S (hours, minutes, seconds) or m u n
	// (milli-, micro-, nanoseconds), e.g. "250m".
	GRPCTimeoutHeader = "Grpc-Timeout"
)

// ParseDeadline reads the caller's deadline from X-Request-Deadline and
// Grpc-Timeout, the latter counted from now. When several values are given
// the earliest wins, since the caller gives up at the first. ok is false when
// neither header is present. A malformed value is an error (the gateway
// answers 400): guessing at a deadline the caller did not mean would shed or
// keep requests for nothing.
func ParseDeadline(h http.Header, now time.Time) (deadline time.Time, ok bool, err error) {
	deadline, field, err := parseDeadline(h, now)
	return deadline, field != "", err
}

// DeadlineField names the header that set the caller's deadline
// (DeadlineHeader or GRPCTimeoutHeader), for the field member of a problem
// that blames it; "" when neither holds a valid deadline.
func DeadlineField(h http.Header, now time.Time) string {
	_, field, err := parseDeadline(h, now)
	if err != nil {
		return ""
	}
	return field
}

func parseDeadline(h http.Header, now time.Time) (deadline time.Time, field string, err error) {
	for _, v := range h.Values(DeadlineHeader) {
		d, err := parseAbsolute(strings.TrimSpace(v))
		if err != nil {
			return time.Time{}, "", fmt.Errorf("header %s: %w", DeadlineHeader, err)
		}
		if field == "" || d.Before(deadline) {
			deadline, field = d, DeadlineHeader
		}
	}
	for _, v := range h.Values(GRPCTimeoutHeader) {
		t, err := parseGRPCTimeout(strings.TrimSpace(v))
		if err != nil {
			return time.Time{}, "", fmt.Errorf("header %s: %w", GRPCTimeoutHeader, err)
		}
		if d := now.Add(t); field == "" || d.Before(deadline) {
			deadline, field = d, GRPCTimeoutHeader
		}
	}
	return deadline, field, nil
}

func parseAbsolute(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, errors.New("empty value")
	}
	if isDigits(v) {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("unix milliseconds %q out of range", v)
		}
		return time.UnixMilli(ms), nil
	}
	// time.RFC3339 also accepts fractional seconds when parsing.
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 timestamp nor unix milliseconds", v)
	}
	return t, nil
}

// grpcUnits maps gRPC's timeout units to durations.
var grpcUnits = [...]struct {
	unit byte
	d    time.Duration
}{{'H', time.Hour}, {'M', time.Minute}, {'S', time.Second}, {'m', time.Millisecond}, {'u', time.Microsecond}, {'n', time.Nanosecond}}

// parseGRPCTimeout reads gRPC's "TimeoutValue TimeoutUnit": 1 to 8 ASCII
// digits and one unit letter. Zero is accepted, as grpc-go does, and means
// the deadline has passed. A timeout past time.Duration's ~292 years is
// capped there: the caller has no deadline worth the name.
func parseGRPCTimeout(v string) (time.Duration, error) {
	if len(v) < 2 || len(v) > 9 || !isDigits(v[:len(v)-1]) {
		return 0, fmt.Errorf("%q is not 1 to 8 digits followed by a unit (H M S m u n)", v)
	}
	unit := v[len(v)-1]
	for _, u := range grpcUnits {
		if u.unit != unit {
			continue
		}
		n, _ := strconv.ParseInt(v[:len(v)-1], 10, 64) // 8 digits cannot overflow
		if n > math.MaxInt64/int64(u.d) {
			return math.MaxInt64, nil
		}
		return time.Duration(n) * u.d, nil
	}
	return 0, fmt.Errorf("%q has unknown unit %q (want one of H M S m u n)", v, unit)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
