package redis

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/session"
)

// canonical puts the fields JSON may spell several ways in one form:
// instants in UTC, empty lists and maps as nil.
func canonical(s session.Session) session.Session {
	s.CreatedAt, s.LastSeen, s.ExpiresAt = s.CreatedAt.UTC(), s.LastSeen.UTC(), s.ExpiresAt.UTC()
	if len(s.AMR) == 0 {
		s.AMR = nil
	}
	if len(s.Attrs) == 0 {
		s.Attrs = nil
	}
	return s
}

// FuzzDecode decodes the j and l fields of a stored session hash as Get,
// Touch and ListSubject read them. A missing j is ErrNotFound; l, when
// present, is LastSeen; and a valid session that decodes, stored again the
// way Create stores it, decodes to the same session.
func FuzzDecode(f *testing.F) {
	t0 := time.Date(2025, time.December, 18, 7, 0, 0, 0, time.UTC)
	full := session.Session{ID: "s-2", Subject: "bruno", ClientID: "bank-app", DeviceID: "dev-1",
		AMR: []string{"pwd", "otp"}, CreatedAt: t0, LastSeen: t0, ExpiresAt: t0.Add(time.Hour),
		IdleTimeout: 30 * time.Minute, Attrs: map[string]string{"auth_time": "1766041200"}}
	j, _ := json.Marshal(full)
	f.Add(string(j), true, strconv.FormatInt(t0.Add(time.Minute).UnixNano(), 10), true)
	f.Add(string(j), true, "", false)
	f.Add(`{"id":"s","sub":"a","created_at":"2025-12-18T08:00:00+01:00","expires_at":"2025-12-18T09:00:00+01:00","last_seen":"0001-01-01T00:00:00Z","amr":[],"attrs":{}}`, true, "0", true)
	f.Add(`{"id":"s","sub":"a","created_at":"9999-12-31T23:59:59Z","expires_at":"1677-01-01T00:00:00Z","idle_timeout":-1}`, true, "-9223372036854775808", true)
	f.Add(`{"id":1}`, true, "x", true)
	f.Add(`null`, true, "", false)
	f.Add(``, false, "", false)
	f.Add(`{}`, true, "9223372036854775808", true)
	f.Fuzz(func(t *testing.T, j string, hasJ bool, l string, hasL bool) {
		var jv, lv any
		if hasJ {
			jv = j
		}
		if hasL {
			lv = l
		}
		got, err := decode(jv, lv)
		if !hasJ {
			if !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("no j: %+v, %v", got, err)
			}
			return
		}
		if err != nil {
			return
		}
		if hasL {
			if ns, _ := strconv.ParseInt(l, 10, 64); !got.LastSeen.Equal(time.Unix(0, ns)) {
				t.Fatalf("l %q decoded as LastSeen %v", l, got.LastSeen)
			}
		}
		if got.Validate() != nil {
			return // Create refuses it: no such session is stored
		}
		// What Create stores for it: LastSeen defaulted to CreatedAt.
		in := got
		if in.LastSeen.IsZero() {
			in.LastSeen = in.CreatedAt
		}
		in = canonical(in)
		stored, err := json.Marshal(in)
		if err != nil {
			t.Fatalf("%+v does not encode: %v", in, err)
		}
		again, err := decode(string(stored), strconv.FormatInt(in.LastSeen.UnixNano(), 10))
		if err != nil || !reflect.DeepEqual(canonical(again), in) {
			t.Fatalf("%+v stored as %s decodes to %+v (%v)", in, stored, again, err)
		}
	})
}
