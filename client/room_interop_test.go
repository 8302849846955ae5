package client_test

// A test of the SDK against rempart's own waiting room (internal/waitroom),
// which the SDK cannot import.

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/rempart/rempart/client"
	"github.com/rempart/rempart/internal/waitroom"
)

// TestWaitingRoomAgainstRoom runs the SDK against the real waiting room at
// one login a second, on the room's and the client's shared fake clock:
// calls are admitted while the room has admissions in hand, then the next
// one waits in line, polls with its ticket and is let in, without a retry.
func TestWaitingRoomAgainstRoom(t *testing.T) {
	clock := newFakeClock()
	room := waitroom.New(waitroom.Options{MinRate: 1, MaxRate: 1, Clock: clock})
	srv := serve(t, room.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
	})))
	var positions []int
	c := client.New(srv.URL, client.WithClock(clock),
		client.WithWaitingRoomObserver(func(pos int, eta time.Duration) { positions = append(positions, pos) }))
	for i := 0; positions == nil; i++ {
		if i == 100 {
			t.Fatal("100 logins at once and none had to wait")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := c.PostJSON(ctx, "/login", map[string]string{"user": "alice"}, nil)
		cancel()
		if err != nil {
			t.Fatalf("login %d: %v, want admitted (at once or after waiting)", i, err)
		}
	}
	st := c.Stats()
	if positions[0] != 1 || st.WaitingRoomPolls == 0 || st.Retries != 0 {
		t.Errorf("observer saw %v, stats %+v: want first in line, polls and no retries", positions, st)
	}
}
