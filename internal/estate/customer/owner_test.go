package customer

import "testing"

func TestOwnership(t *testing.T) {
	p := New(1, 1000)
	tests := []struct {
		name, subject, account string
		want                   bool
	}{
		{"demo owner", "alice", "A-alice", true},
		{"demo other", "bruno", "A-alice", false},
		{"derived owner", "C00000042", "A00000042", true},
		{"derived other", "C00000042", "A00000043", false},
		{"derived out of range", "C00005000", "A00005000", false},
		{"demo subject, derived account", "alice", "A00000001", false},
		{"derived subject, demo account", "C00000001", "A-camille", false},
		{"client id", "rempart-demo-service", "A00000001", false},
		{"empty", "", "", false},
		{"spelling", "C42", "A42", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.OwnsAccount(tt.subject, tt.account); got != tt.want {
				t.Fatalf("OwnsAccount(%q, %q) = %v, want %v", tt.subject, tt.account, got, tt.want)
			}
		})
	}
	for _, c := range []struct {
		subject, id string
		want        bool
	}{{"alice", "alice", true}, {"alice", "bruno", false}, {"C00000007", "C00000007", true},
		{"C00009999", "C00009999", false}, {"mallory", "mallory", false}} {
		if got := p.OwnsCustomer(c.subject, c.id); got != c.want {
			t.Errorf("OwnsCustomer(%q, %q) = %v, want %v", c.subject, c.id, got, c.want)
		}
	}
}
