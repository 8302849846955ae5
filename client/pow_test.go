package client_test

import (
	"context"
	"strings"
	"testing"

	"github.com/rempart/rempart/client"
)

// TestProofOfWorkGivesUp: a challenge that keeps coming back, however well
// answered, is handed back after a few rounds instead of keeping the client
// busy for ever.
func TestProofOfWorkGivesUp(t *testing.T) {
	s := &scripted{answers: []answer{{status: 403, header: map[string]string{
		"Rempart-Challenge": "1.4.1766395800.AAAAAAAAAAAAAAAAAAAAAA.GMAAAgA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}}}
	srv := serve(t, s)
	c := client.New(srv.URL)
	res, err := post(t, c, context.Background(), srv.URL+"/login")
	if err != nil || res.StatusCode != 403 {
		t.Fatalf("got %v, want the 403 handed back", err)
	}
	if n := len(s.Seen()); n != 4 {
		t.Errorf("%d requests, want the first and 3 answered challenges", n)
	}
}

func TestProofOfWorkMalformed(t *testing.T) {
	for _, ch := range []string{"garbage", "2.4.x", "1.0.x", "1.33.x", "1.04.x", "1." + strings.Repeat("9", 300)} {
		s := &scripted{answers: []answer{{status: 429, header: map[string]string{"Rempart-Challenge": ch}}}}
		srv := serve(t, s)
		c := client.New(srv.URL, client.WithMaxAttempts(1))
		res, err := post(t, c, context.Background(), srv.URL+"/login")
		if err != nil || res.StatusCode != 429 || len(s.Seen()) != 1 {
			t.Errorf("challenge %.20q: got %v after %d requests, want the 429 handed back at once", ch, err, len(s.Seen()))
		}
	}
}
