package admin

import (
	"strings"
	"testing"
	"time"
)

func FuzzParseSession(f *testing.F) {
	a := &Admins{key: make([]byte, 32), opts: Options{Now: time.Now, SessionTTL: time.Minute}}
	f.Add(a.sessionValue([]byte("admin-id"), time.Now().Add(time.Minute)))
	f.Add("")
	f.Add("..")
	f.Add("YQ.1.AAAA")
	f.Fuzz(func(t *testing.T, v string) {
		p, ok := parseSession(v)
		if !ok {
			return
		}
		if len(p.admin) == 0 || len(p.admin) > 64 || len(p.mac) != 32 || p.expires <= 0 {
			t.Fatalf("accepted %q as %+v", v, p)
		}
		// No admin exists here, so nothing verifies.
		if _, ok := a.verifySession(v); ok {
			t.Fatalf("verified %q", v)
		}
	})
}

func FuzzParseToken(f *testing.F) {
	tok, _ := randomToken(enrolPrefix)
	f.Add(tok)
	f.Add("enrol_")
	f.Add("ops_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range []string{enrolPrefix, opsPrefix} {
			if _, ok := parseToken(p, s); ok {
				if raw, err := b64.DecodeString(strings.TrimSpace(s)[len(p):]); err != nil || len(raw) != 32 {
					t.Fatalf("accepted %q", s)
				}
			}
		}
	})
}
