package estate

import (
	"sync"
	"time"
)

// SMS is one message handed to the simulated SMS gateway.
type SMS struct {
	Seq  int64     `json:"seq"`
	To   string    `json:"to"`
	Text string    `json:"text"`
	At   time.Time `json:"at"`
}

// Outbox is the simulated SMS gateway: a bounded ring of the latest messages,
// readable through the ops API so demos and drills can read OTPs.
type Outbox struct {
	mu   sync.Mutex
	ring []SMS
	next int64 // sequence of the next message
}

// NewOutbox keeps the last capacity messages.
func NewOutbox(capacity int) *Outbox {
	return &Outbox{ring: make([]SMS, capacity)}
}

// Send records a message.
func (o *Outbox) Send(to, text string, at time.Time) {
	o.mu.Lock()
	o.ring[o.next%int64(len(o.ring))] = SMS{Seq: o.next, To: to, Text: text, At: at}
	o.next++
	o.mu.Unlock()
}

// Latest returns up to limit of the newest messages, newest first, to the
// given number (all numbers when to is empty).
func (o *Outbox) Latest(to string, limit int) []SMS {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := []SMS{}
	oldest := max(0, o.next-int64(len(o.ring)))
	for s := o.next - 1; s >= oldest && len(out) < limit; s-- {
		m := o.ring[s%int64(len(o.ring))]
		if to == "" || m.To == to {
			out = append(out, m)
		}
	}
	return out
}
