package scrub

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func opsDo(h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestOpsBadInput(t *testing.T) {
	s, _ := newTestScrubber(t, nil)
	h := s.OpsHandler()
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		field                    string
	}{
		{"unknown mode", "PUT", "/ops/scrub/routes/login/mode", `{"mode":"panic"}`, 400, "mode"},
		{"missing mode", "PUT", "/ops/scrub/routes/login/mode", `{}`, 400, "mode"},
		{"mode wrong type", "PUT", "/ops/scrub/routes/login/mode", `{"mode":3}`, 400, "mode"},
		{"unknown field", "PUT", "/ops/scrub/routes/login/mode", `{"mode":"auto","force":true}`, 400, "force"},
		{"not json", "PUT", "/ops/scrub/routes/login/mode", `mode=auto`, 400, "body"},
		{"bad route name", "PUT", "/ops/scrub/routes/l%20gin/mode", `{"mode":"auto"}`, 400, "route"},
		{"unknown route", "GET", "/ops/scrub/routes/nowhere", ``, 404, "route"},
		{"unknown list", "GET", "/ops/scrub/lists/grey", ``, 404, "list"},
		{"bad cidr", "POST", "/ops/scrub/lists/block", `{"cidr":"203.0.113.0/33","ttl":"1h"}`, 400, "cidr"},
		{"missing cidr", "POST", "/ops/scrub/lists/block", `{"ttl":"1h"}`, 400, "cidr"},
		{"missing ttl", "POST", "/ops/scrub/lists/block", `{"cidr":"203.0.113.0/24"}`, 400, "ttl"},
		{"bad ttl", "POST", "/ops/scrub/lists/block", `{"cidr":"203.0.113.0/24","ttl":"soon"}`, 400, "ttl"},
		{"negative ttl", "POST", "/ops/scrub/lists/block", `{"cidr":"203.0.113.0/24","ttl":"-1h"}`, 400, "ttl"},
		{"ttl too long", "POST", "/ops/scrub/lists/block", `{"cidr":"203.0.113.0/24","ttl":"9000h"}`, 400, "ttl"},
		{"ttl wrong type", "POST", "/ops/scrub/lists/block", `{"cidr":"203.0.113.0/24","ttl":60}`, 400, "ttl"},
		{"reason too long", "POST", "/ops/scrub/lists/allow", `{"cidr":"203.0.113.0/24","ttl":"1h","reason":"` + strings.Repeat("x", 300) + `"}`, 400, "reason"},
		{"delete bad cidr", "DELETE", "/ops/scrub/lists/block?cidr=nope", ``, 400, "cidr"},
		{"delete absent", "DELETE", "/ops/scrub/lists/block?cidr=192.0.2.0/24", ``, 404, "cidr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := opsDo(h, tc.method, tc.path, tc.body)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("content type %q", ct)
			}
			var p struct{ Field string }
			json.Unmarshal(rec.Body.Bytes(), &p)
			if p.Field != tc.field {
				t.Fatalf("field %q, want %q: %s", p.Field, tc.field, rec.Body)
			}
		})
	}
}

func TestOpsModeAndLists(t *testing.T) {
	s, clk := newTestScrubber(t, nil)
	h := s.OpsHandler()
	rec := opsDo(h, "PUT", "/ops/scrub/routes/login/mode", `{"mode":"attack"}`)
	if rec.Code != 200 {
		t.Fatalf("PUT mode: %d %s", rec.Code, rec.Body)
	}
	rec = opsDo(h, "GET", "/ops/scrub/routes/login", "")
	if !strings.Contains(rec.Body.String(), `"state": "attack"`) || !strings.Contains(rec.Body.String(), `"mode": "attack"`) ||
		!strings.Contains(rec.Body.String(), `"indicators"`) {
		t.Fatalf("GET route: %s", rec.Body)
	}
	if got := s.State("login").State; got != Attack {
		t.Fatalf("state %s after PUT attack", got)
	}
	opsDo(h, "PUT", "/ops/scrub/routes/login/mode", `{"mode":"auto"}`)
	if got := s.State("login").State; got != Normal {
		t.Fatalf("state %s after PUT auto on a quiet route", got)
	}

	rec = opsDo(h, "POST", "/ops/scrub/lists/block", `{"cidr":"203.0.113.7/24","ttl":"10m","reason":"botnet"}`)
	if rec.Code != 201 || !strings.Contains(rec.Body.String(), `"cidr": "203.0.113.0/24"`) {
		t.Fatalf("POST block: %d %s", rec.Code, rec.Body)
	}
	if _, ok := s.block.lookup(netip.MustParseAddr("203.0.113.200"), clk.Now()); !ok {
		t.Fatal("blocked prefix not matched")
	}
	rec = opsDo(h, "GET", "/ops/scrub/lists/block", "")
	if !strings.Contains(rec.Body.String(), "botnet") {
		t.Fatalf("GET block: %s", rec.Body)
	}
	if rec := opsDo(h, "DELETE", "/ops/scrub/lists/block?cidr=203.0.113.0/24", ""); rec.Code != 204 {
		t.Fatalf("DELETE: %d %s", rec.Code, rec.Body)
	}
	opsDo(h, "POST", "/ops/scrub/lists/allow", `{"cidr":"2001:db8::/48","ttl":"1s"}`)
	clk.Advance(2 * time.Second)
	if rec := opsDo(h, "GET", "/ops/scrub/lists/allow", ""); strings.Contains(rec.Body.String(), "2001:db8") {
		t.Fatalf("expired entry still listed: %s", rec.Body)
	}
	if rec := opsDo(h, "GET", "/ops/scrub/routes", ""); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"route": "login"`) {
		t.Fatalf("GET routes: %d %s", rec.Code, rec.Body)
	}
}
