package client

import (
	"math"
	"net/http"
	"strings"
	"time"
)

// Bounds on the waits a waiting room asks for.
const (
	// defaultPoll is the wait before polling when the server names none.
	defaultPoll = time.Second
	// minPoll keeps a server asking for 0 from making the client spin.
	minPoll = 100 * time.Millisecond
)

// waitingRoom is what a waiting-room answer tells the client.
type waitingRoom struct {
	ticket   string
	position int
	eta      time.Duration // estimated wait until admitted
	poll     time.Duration // wait before presenting the ticket again
}

// parseWaitingRoom recognises a waiting-room answer: a 503 carrying a
// Rempart-Ticket header or an application/problem+json document whose type
// ends in "/waiting-room", with the members ticket, position,
// estimated_wait_seconds and poll_after_seconds. A 503 without a ticket is
// an ordinary failure.
func parseWaitingRoom(res *http.Response, body []byte, now time.Time) (waitingRoom, bool) {
	var wr waitingRoom
	if res.StatusCode != http.StatusServiceUnavailable {
		return wr, false
	}
	wr.ticket = res.Header.Get(TicketHeader)
	p := parseProblem(res.StatusCode, res.Header, body, now)
	if wr.ticket == "" && !strings.HasSuffix(p.Type, "/waiting-room") {
		return wr, false
	}
	if wr.ticket == "" && !p.extension("ticket", &wr.ticket) || wr.ticket == "" {
		return wr, false
	}
	p.extension("position", &wr.position)
	var eta, poll float64
	if p.extension("estimated_wait_seconds", &eta) {
		wr.eta = seconds(eta)
	}
	switch {
	case p.extension("poll_after_seconds", &poll):
		wr.poll = seconds(poll)
	case p.RetryAfter > 0:
		wr.poll = p.RetryAfter
	default:
		wr.poll = defaultPoll
	}
	wr.poll = max(wr.poll, minPoll)
	return wr, true
}

// seconds converts a count of seconds from JSON to a Duration; NaN and
// negatives are zero, and anything past a day is a day (more than the
// client waits anyway).
func seconds(s float64) time.Duration {
	if !(s > 0) {
		return 0
	}
	return time.Duration(math.Min(s, 86400) * float64(time.Second))
}
