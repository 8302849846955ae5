package waitroom

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestTicketRoundTrip(t *testing.T) {
	now := time.Date(2025, 12, 22, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		tk   ticket
	}{
		{"unbound", ticket{room: "login", seq: 42, issued: now, expiry: now.Add(10 * time.Minute)}},
		{"ipv4", ticket{room: "login-1", seq: 1, issued: now, expiry: now.Add(time.Minute), client: clientNet(netip.MustParseAddr("203.0.113.77"))}},
		{"ipv6", ticket{room: "login-1", seq: 1<<63 + 5, issued: now, expiry: now.Add(time.Minute), client: clientNet(netip.MustParseAddr("2001:db8:1:2::9"))}},
		{"longest room", ticket{room: string(make([]byte, maxRoomLen)), seq: 7, issued: now, expiry: now.Add(time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.tk.encode(testKey)
			if len(s) > maxTicketLen {
				t.Errorf("encoded length %d > maxTicketLen %d", len(s), maxTicketLen)
			}
			got, err := parseTicket(s, testKey, tt.tk.room, now)
			if err != nil {
				t.Fatal(err)
			}
			if got.room != tt.tk.room || got.seq != tt.tk.seq || !got.issued.Equal(tt.tk.issued) ||
				!got.expiry.Equal(tt.tk.expiry) || got.client != tt.tk.client {
				t.Errorf("got %+v, want %+v", got, tt.tk)
			}
			if _, err := parseTicket(s, testKey, tt.tk.room, tt.tk.expiry); !errors.Is(err, errExpired) {
				t.Errorf("at expiry: err %v, want expired", err)
			}
		})
	}
}

func TestClientNet(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"203.0.113.77", "203.0.113.0/24"},
		{"::ffff:203.0.113.77", "203.0.113.0/24"},
		{"2001:db8:1:2::9", "2001:db8:1::/48"},
	}
	for _, tt := range tests {
		if got := clientNet(netip.MustParseAddr(tt.addr)); got.String() != tt.want {
			t.Errorf("clientNet(%s) = %s, want %s", tt.addr, got, tt.want)
		}
	}
}

// FuzzParseTicket checks that no input makes the parser panic, and that
// whatever it accepts is exactly what the room would have issued: one
// encoding per ticket, so a used ticket has no look-alike.
func FuzzParseTicket(f *testing.F) {
	now := time.Date(2025, 12, 22, 8, 0, 0, 0, time.UTC)
	f.Add(ticket{room: "login", seq: 42, issued: now, expiry: now.Add(time.Minute)}.encode(testKey))
	f.Add(ticket{room: "login", seq: 3, issued: now, expiry: now.Add(time.Minute), client: clientNet(netip.MustParseAddr("192.0.2.1"))}.encode(testKey))
	f.Add(ticket{room: "login", seq: 3, issued: now, expiry: now.Add(time.Minute), client: clientNet(netip.MustParseAddr("2001:db8::1"))}.encode(testKey))
	f.Add("")
	f.Add("AQVsb2dpbg")
	f.Add(string(make([]byte, maxTicketLen+1)))
	f.Fuzz(func(t *testing.T, s string) {
		tk, err := parseTicket(s, testKey, "login", now)
		if err != nil {
			return
		}
		if again := tk.encode(testKey); again != s {
			t.Errorf("accepted %q, which re-encodes as %q", s, again)
		}
	})
}
