package users

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Kinds of Event: what a login writes to the directory.
const (
	// EventLogin is a completed login (Method says how, Device from where).
	EventLogin = "login"
	// EventPasswordFailed is a wrong password for an existing customer.
	EventPasswordFailed = "password-failed"
	// EventCodeFailed is a wrong one-time code.
	EventCodeFailed = "code-failed"
)

// Limits on an Event's fields: events come from the provider, but the
// directory keeps them, so their size is bounded here too.
const (
	// MaxEventID bounds Event.ID, as the journal bounds its keys.
	MaxEventID = 128
	// maxEventField bounds Method and Device.
	maxEventField = 64
	// maxDevices is how many of a customer's devices the directory keeps,
	// the most recent first.
	maxDevices = 8
	// appliedWindow is how many of a customer's latest event ids the
	// directory remembers to refuse a second application. The queue
	// delivers an event again only when the first delivery's answer was
	// lost, on the very next pass, so the window only has to cover the
	// events of one customer delivered in between.
	appliedWindow = 64
)

// ErrInvalidEvent means an event cannot be applied as given.
var ErrInvalidEvent = errors.New("invalid directory event")

// Event is one write a login makes to the directory. ID is unique per
// write and makes applying it idempotent: the same event applied twice
// counts once.
type Event struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	Account string    `json:"account"`
	At      time.Time `json:"at"`
	// Method is how a login was made: "pwd+otp", "passkey", "backup".
	Method string `json:"method,omitempty"`
	// Device is the login's device, an opaque id (the provider sends a
	// digest of its device cookie's nonce, never the cookie).
	Device string `json:"device,omitempty"`
}

// Validate reports, wrapping ErrInvalidEvent, why e cannot be applied.
func (e Event) Validate() error {
	switch {
	case e.ID == "" || len(e.ID) > MaxEventID:
		return fmt.Errorf("id must be 1 to %d bytes: %w", MaxEventID, ErrInvalidEvent)
	case e.Kind != EventLogin && e.Kind != EventPasswordFailed && e.Kind != EventCodeFailed:
		return fmt.Errorf("kind %q is not %s, %s or %s: %w", e.Kind, EventLogin, EventPasswordFailed, EventCodeFailed, ErrInvalidEvent)
	case e.Account == "" || len(e.Account) > 64:
		return fmt.Errorf("account must be 1 to 64 bytes: %w", ErrInvalidEvent)
	case e.At.IsZero():
		return fmt.Errorf("at is required: %w", ErrInvalidEvent)
	case len(e.Method) > maxEventField || len(e.Device) > maxEventField:
		return fmt.Errorf("method and device are at most %d bytes: %w", maxEventField, ErrInvalidEvent)
	}
	return nil
}

// Activity is what the directory knows of a customer's logins. Counts are
// totals, independent of the order events arrive in: a queue drained by
// several workers delivers them in any order.
type Activity struct {
	Logins          int
	FailedPasswords int
	FailedCodes     int
	// LastLogin and LastMethod are the latest login's, by its own time.
	LastLogin  time.Time
	LastMethod string
	// Devices are the devices logged in from, the most recent first.
	Devices []string
}

type activity struct {
	Activity
	applied []string // latest event ids, oldest first
}

// Apply records the event, unless an event with its ID was applied lately:
// it reports whether this call changed anything. It waits while the
// directory is stuck, like every other call. Events for customers that do
// not exist answer ErrNotFound and change nothing.
func (m *Memory) Apply(ctx context.Context, e Event) (bool, error) {
	if err := e.Validate(); err != nil {
		return false, err
	}
	if err := m.wait(ctx); err != nil {
		return false, err
	}
	if _, ok := m.find(e.Account); !ok {
		return false, ErrNotFound
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.activity[e.Account]
	if a == nil {
		a = &activity{}
		m.activity[e.Account] = a
	}
	if slices.Contains(a.applied, e.ID) {
		return false, nil
	}
	if len(a.applied) == appliedWindow {
		a.applied = slices.Delete(a.applied, 0, 1)
	}
	a.applied = append(a.applied, e.ID)
	switch e.Kind {
	case EventPasswordFailed:
		a.FailedPasswords++
	case EventCodeFailed:
		a.FailedCodes++
	case EventLogin:
		a.Logins++
		if e.At.After(a.LastLogin) {
			a.LastLogin, a.LastMethod = e.At, e.Method
		}
		if e.Device != "" {
			a.Devices = slices.DeleteFunc(a.Devices, func(d string) bool { return d == e.Device })
			a.Devices = slices.Insert(a.Devices, 0, e.Device)
			if len(a.Devices) > maxDevices {
				a.Devices = a.Devices[:maxDevices]
			}
		}
	}
	return true, nil
}

// ActivityOf returns what the directory recorded of the customer's logins
// (the zero Activity if nothing yet).
func (m *Memory) ActivityOf(ctx context.Context, id string) (Activity, error) {
	if err := m.wait(ctx); err != nil {
		return Activity{}, err
	}
	if _, ok := m.find(id); !ok {
		return Activity{}, ErrNotFound
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.activity[id]
	if a == nil {
		return Activity{}, nil
	}
	out := a.Activity
	out.Devices = slices.Clone(a.Devices)
	return out, nil
}
