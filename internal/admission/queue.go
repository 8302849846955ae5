package admission

import (
	"time"

	"github.com/rempart/rempart/internal/tier"
)

type waiterState uint8

const (
	waiting waiterState = iota
	granted             // holds a slot; the waiter calls the upstream
	dropped             // shed for reason while queued
)

// waiter is one request parked in its tier's queue. Its fields are guarded by
// Controller.mu until ready is signalled; the signal hands them to the waiting
// goroutine.
type waiter struct {
	prev, next *waiter
	tier       tier.Tier
	enqueued   time.Time
	maxWait    time.Duration // how long it may stay queued
	timeout    reason        // why it is shed when maxWait passes
	deadline   time.Time     // the caller's deadline, zero when none
	ready      chan struct{} // buffered: signalled once, when state leaves waiting
	state      waiterState
	reason     reason
}

// tierQueue holds one tier's waiters, oldest at head. It is an intrusive
// list so that a waiter that gives up leaves in O(1) without a search.
type tierQueue struct {
	head, tail *waiter
	n          int
	// nonEmptySince is when the queue last went from empty to non-empty.
	nonEmptySince time.Time
}

func (q *tierQueue) push(w *waiter, now time.Time) {
	if q.n == 0 {
		q.nonEmptySince = now
	}
	w.prev, w.next = q.tail, nil
	if q.tail != nil {
		q.tail.next = w
	} else {
		q.head = w
	}
	q.tail = w
	q.n++
}

func (q *tierQueue) remove(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		q.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		q.tail = w.prev
	}
	w.prev, w.next = nil, nil
	q.n--
}

// standing reports a queue that has not emptied for interval: the arrival
// rate has exceeded the service rate for longer than a burst lasts. This is
// the signal of Facebook's adaptive LIFO rather than CoDel's sojourn minimum,
// because a queue served newest-first has no meaningful minimum sojourn.
func (q *tierQueue) standing(now time.Time, interval time.Duration) bool {
	return q.n > 0 && now.Sub(q.nonEmptySince) >= interval
}
