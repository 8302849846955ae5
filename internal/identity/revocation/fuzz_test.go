package revocation

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rempart/rempart/internal/identity"
)

// fuzzNow is the fuzzed node's clock.
var fuzzNow = time.Date(2025, 12, 22, 8, 0, 0, 0, time.UTC)

// node is a Bridge as Start wires it, without Redis: received is what its
// subscription loop calls with each message.
func node(id string) (*Bridge, *identity.Revocations) {
	now := func() time.Time { return fuzzNow }
	revs := identity.NewRevocations(now)
	b := &Bridge{revs: revs, opts: Options{NodeID: id, Now: now}, log: slog.New(slog.DiscardHandler),
		applying: map[revocation]int{}, wake: make(chan struct{}, 1)}
	revs.Subscribe(b.local)
	return b, revs
}

// settled checks that applying a message left nothing behind: no echo
// queued for Redis, no count in the echo filter.
func settled(t *testing.T, b *Bridge, payload string) {
	t.Helper()
	if len(b.pending) != 0 || len(b.applying) != 0 {
		t.Fatalf("%q left %d revocations to publish back and %d being applied", payload, len(b.pending), len(b.applying))
	}
}

// FuzzReceived feeds a node what a Redis channel can carry. A message
// revokes its id exactly when it decodes, comes from another node, names an
// id and is still live; it is never published back; and a message that
// decodes, encoded again the way flush encodes it, has the same effect.
func FuzzReceived(f *testing.F) {
	live := fuzzNow.Add(time.Hour).UnixNano()
	for _, s := range []string{
		`{"n":"node-a","id":"jti-1","u":` + jsonInt(live) + `}`,
		`{"n":"self","id":"jti-1","u":` + jsonInt(live) + `}`,
		`{"n":"node-a","id":"","u":` + jsonInt(live) + `}`,
		`{"n":"node-a","id":"jti-1","u":` + jsonInt(fuzzNow.UnixNano()) + `}`,
		`{"n":"node-a","id":"jti-1","u":-1}`,
		`{"n":"node-a","id":"jti-1","u":9223372036854775807}`,
		`{"n":"node-a","id":"jti-1","u":9223372036854775808}`,
		`{"n":"node-a","id":"jti-1","u":1e18}`,
		`{"n":"node-a","id":"jti-1","u":"1"}`,
		`{"N":"node-a","ID":"jti-1","U":` + jsonInt(live) + `,"extra":[1,2]}`,
		`{"n":"node-a","id":"\u0000\ud800","u":` + jsonInt(live) + `}`,
		`{"id":"jti-1","u":` + jsonInt(live) + `}`,
		`{"n":null,"id":null,"u":null}`,
		`[]`, `null`, ``, `{`, `"jti-1"`,
		`{"n":"node-a","id":"` + strings.Repeat("x", 4096) + `","u":` + jsonInt(live) + `}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		b, revs := node("self")
		b.received(payload)
		settled(t, b, payload)

		var m message
		ok := json.Unmarshal([]byte(payload), &m) == nil
		want := ok && m.Node != "self" && m.ID != "" && time.Unix(0, m.Until).After(fuzzNow)
		if m.ID != "" && revs.Revoked(m.ID) != want {
			t.Fatalf("%q: revoked %v, want %v", payload, revs.Revoked(m.ID), want)
		}
		if !ok || !utf8.ValidString(m.ID) || !utf8.ValidString(m.Node) {
			return // json.Marshal would change the strings; our ids are ASCII
		}
		again, _ := json.Marshal(message{Node: m.Node, ID: m.ID, Until: m.Until})
		b2, revs2 := node("self")
		b2.received(string(again))
		settled(t, b2, string(again))
		if m.ID != "" && revs2.Revoked(m.ID) != want {
			t.Fatalf("%q re-encoded as %s: revoked %v, want %v", payload, again, revs2.Revoked(m.ID), want)
		}
	})
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }
