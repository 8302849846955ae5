package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rempart/rempart/client"
)

// waitingRoom is a fake of rempart's waiting room for new logins, to the
// protocol the SDK follows: a 503 problem of type .../waiting-room with
// ticket, position, estimated_wait_seconds and poll_after_seconds, the
// ticket also in Rempart-Ticket and the wait in Retry-After. A request
// presenting the ticket moves up one place per poll and is admitted at the
// front.
type waitingRoom struct {
	roomConfig

	mu       sync.Mutex
	position map[string]int // by ticket
	issued   int
	admitted []string // tickets let through
	left     []string // tickets given up
}

// roomConfig is how a waitingRoom answers.
type roomConfig struct {
	ahead       int  // places in front of a newcomer
	headerToo   bool // send the ticket and Retry-After headers, not only the body
	pollMembers bool // send poll_after_seconds
}

func (wr *waitingRoom) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	wr.mu.Lock()
	defer wr.mu.Unlock()
	ticket := r.Header.Get(client.TicketHeader)
	if r.Header.Get(client.LeaveHeader) != "" {
		delete(wr.position, ticket)
		wr.left = append(wr.left, ticket)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	pos, known := wr.position[ticket]
	if !known {
		wr.issued++
		ticket = "t-" + strconv.Itoa(wr.issued)
		pos = wr.ahead + 1
	} else {
		pos--
	}
	if pos <= 0 {
		delete(wr.position, ticket)
		wr.admitted = append(wr.admitted, ticket)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"session":"s-1"}`)
		return
	}
	wr.position[ticket] = pos
	doc := map[string]any{
		"type": "https://rempart.dev/problems/waiting-room", "title": "Service Unavailable", "status": 503,
		"ticket": ticket, "position": pos, "estimated_wait_seconds": 2.5 * float64(pos),
	}
	if wr.pollMembers {
		doc["poll_after_seconds"] = 2
	}
	if wr.headerToo {
		w.Header().Set(client.TicketHeader, ticket)
		w.Header().Set("Retry-After", "3")
	}
	b, _ := json.Marshal(doc)
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(http.StatusServiceUnavailable)
	w.Write(b)
}

func TestWaitingRoom(t *testing.T) {
	tests := []struct {
		name      string
		room      roomConfig
		wantPoll  time.Duration
		wantSeen  []int
		wantETA   time.Duration // reported with the first position
		deadline  time.Duration
		wantError string // slug of the problem handed back, "" for admitted
	}{
		{"headers and members", roomConfig{ahead: 3, headerToo: true, pollMembers: true}, 2 * time.Second, []int{4, 3, 2, 1}, 10 * time.Second, 0, ""},
		{"body only: the default poll", roomConfig{ahead: 1}, time.Second, []int{2, 1}, 5 * time.Second, 0, ""},
		{"Retry-After when no poll member", roomConfig{ahead: 1, headerToo: true}, 3 * time.Second, []int{2, 1}, 5 * time.Second, 0, ""},
		{"deadline before the turn", roomConfig{ahead: 50, headerToo: true, pollMembers: true}, 2 * time.Second, nil, 0, 7 * time.Second, "waiting-room"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			room := &waitingRoom{roomConfig: tt.room, position: map[string]int{}}
			srv := serve(t, room)
			clock := newFakeClock()
			var positions []int
			var firstETA time.Duration
			// A budget that allows no retry at all: waiting in line must not
			// need one.
			stingy := client.NewRetryBudget(client.BudgetConfig{Ratio: 1e-9, MinRetries: 1, Now: clock.Now})
			stingy.TryWithdraw()
			c := client.New(srv.URL, client.WithClock(clock), client.WithRetryBudget(stingy),
				client.WithWaitingRoomObserver(func(pos int, eta time.Duration) {
					if positions == nil {
						firstETA = eta
					}
					positions = append(positions, pos)
				}))
			ctx := context.Background()
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, clock.Now().Add(tt.deadline))
				defer cancel()
			}
			var out struct{ Session string }
			err := c.PostJSON(ctx, "/login", map[string]string{"user": "alice"}, &out)

			if tt.wantError != "" {
				var p *client.Problem
				if !errors.As(err, &p) || p.Slug() != tt.wantError {
					t.Fatalf("got %v, want the %s problem handed back", err, tt.wantError)
				}
				if p.Extensions["ticket"] == nil {
					t.Errorf("handed-back problem lost its ticket: %+v", p)
				}
				// It stops waiting: its place goes to those behind it.
				room.mu.Lock()
				defer room.mu.Unlock()
				var ticket string
				_ = json.Unmarshal(p.Extensions["ticket"], &ticket)
				if len(room.left) != 1 || room.left[0] != ticket {
					t.Errorf("places given up %v, want the ticket %q", room.left, ticket)
				}
				return
			}
			if err != nil || out.Session != "s-1" {
				t.Fatalf("got %v %+v, want admitted", err, out)
			}
			if fmt.Sprint(positions) != fmt.Sprint(tt.wantSeen) || firstETA != tt.wantETA {
				t.Errorf("observer saw %v (eta %v), want %v (eta %v)", positions, firstETA, tt.wantSeen, tt.wantETA)
			}
			for i, d := range clock.Slept() {
				if d != tt.wantPoll {
					t.Errorf("wait %d was %v, want %v", i, d, tt.wantPoll)
				}
			}
			st := c.Stats()
			if st.Retries != 0 || st.WaitingRoomPolls != int64(len(tt.wantSeen)) || st.CircuitRejected != 0 {
				t.Errorf("stats %+v: polls must not be retries nor trip the breaker", st)
			}
			if room.admitted[0] != "t-1" || room.issued != 1 {
				t.Errorf("admitted %v after %d tickets, want the first ticket kept throughout", room.admitted, room.issued)
			}
		})
	}
}
