package session

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Errors returned by every Store; test for them with errors.Is.
var (
	// ErrNotFound means the session does not exist, has expired or has been
	// idle too long: to a caller the three are the same.
	ErrNotFound = errors.New("session not found")
	// ErrAlreadyExists means a live session already has the ID.
	ErrAlreadyExists = errors.New("session already exists")
	// ErrInvalid means the session cannot be stored as given.
	ErrInvalid = errors.New("invalid session")
)

// DefaultMaxPerSubject is how many live sessions one customer may hold when a
// backend is not told otherwise: enough for a phone, a tablet and a few
// browsers, few enough that a credential-stuffing bot cannot fill memory with
// one customer's sessions.
const DefaultMaxPerSubject = 10

// MaxFieldLen bounds ID, Subject, ClientID and DeviceID. They arrive from
// requests, so an unbounded length would let a client choose how much memory
// each session costs.
const MaxFieldLen = 1024

// Session is one authenticated customer on one device.
type Session struct {
	// ID is the opaque, unguessable handle the client presents.
	ID string `json:"id"`
	// Subject is the customer the session belongs to.
	Subject string `json:"sub"`
	// ClientID is the OAuth client the customer logged in through.
	ClientID string `json:"client_id,omitempty"`
	// DeviceID ties the session to a device cookie, if any.
	DeviceID string `json:"device_id,omitempty"`
	// AMR lists the authentication methods used (RFC 8176), e.g. pwd, otp, hwk.
	AMR []string `json:"amr,omitempty"`
	// CreatedAt orders a customer's sessions: the oldest are evicted first.
	CreatedAt time.Time `json:"created_at"`
	// LastSeen is the last Touch; zero on Create means CreatedAt.
	LastSeen time.Time `json:"last_seen"`
	// ExpiresAt ends the session whatever its activity.
	ExpiresAt time.Time `json:"expires_at"`
	// IdleTimeout, when positive, ends the session that long after LastSeen.
	IdleTimeout time.Duration `json:"idle_timeout,omitempty"`
	// Attrs holds small extra claims; keep it empty when possible, because
	// backends store sessions without attributes more compactly.
	Attrs map[string]string `json:"attrs,omitempty"`
}

// Validate reports, wrapping ErrInvalid, why s cannot be stored.
func (s Session) Validate() error {
	switch {
	case s.ID == "":
		return fmt.Errorf("empty id: %w", ErrInvalid)
	case s.Subject == "":
		return fmt.Errorf("empty subject: %w", ErrInvalid)
	case len(s.ID) > MaxFieldLen, len(s.Subject) > MaxFieldLen,
		len(s.ClientID) > MaxFieldLen, len(s.DeviceID) > MaxFieldLen:
		return fmt.Errorf("field longer than %d bytes: %w", MaxFieldLen, ErrInvalid)
	case s.CreatedAt.IsZero() || s.ExpiresAt.IsZero():
		return fmt.Errorf("created_at and expires_at are required: %w", ErrInvalid)
	case !s.ExpiresAt.After(s.CreatedAt):
		return fmt.Errorf("expires_at not after created_at: %w", ErrInvalid)
	case s.LastSeen.After(s.ExpiresAt):
		return fmt.Errorf("last_seen after expires_at: %w", ErrInvalid)
	case s.IdleTimeout < 0:
		return fmt.Errorf("negative idle timeout: %w", ErrInvalid)
	case !inNanoRange(s.CreatedAt) || !inNanoRange(s.ExpiresAt) || (!s.LastSeen.IsZero() && !inNanoRange(s.LastSeen)):
		// Backends keep instants as Unix nanoseconds.
		return fmt.Errorf("time outside years 1678-2262: %w", ErrInvalid)
	}
	return nil
}

func inNanoRange(t time.Time) bool {
	return t.Year() > 1677 && t.Year() < 2262
}

// Deadline is the instant s stops being live unless touched before.
func (s Session) Deadline() time.Time {
	d := s.ExpiresAt
	if s.IdleTimeout > 0 {
		last := s.LastSeen
		if last.IsZero() {
			last = s.CreatedAt
		}
		if idle := last.Add(s.IdleTimeout); idle.Before(d) {
			d = idle
		}
	}
	return d
}

// Live reports whether s can still be used at now.
func (s Session) Live(now time.Time) bool {
	return now.Before(s.Deadline())
}

// Store keeps sessions. Implementations are safe for concurrent use.
type Store interface {
	// Create stores s. It fails with ErrAlreadyExists when a live session has
	// the ID and with ErrInvalid when s.Validate does. It keeps at most the
	// backend's per-subject bound of live sessions for s.Subject by evicting
	// that subject's oldest others. A nil error means the session is durable
	// as far as the backend promises durability.
	Create(ctx context.Context, s Session) error
	// Get returns the live session with the ID, or ErrNotFound.
	Get(ctx context.Context, id string) (Session, error)
	// Touch records activity: LastSeen becomes now, which pushes the idle
	// deadline out but never past ExpiresAt. ErrNotFound as Get.
	Touch(ctx context.Context, id string) (Session, error)
	// Update applies f to a copy of the live session with the ID and stores
	// the result atomically: no other Update of the session falls between
	// the read f is given and the write, so concurrent read-modify-writes
	// (an attempt counter on two gateways) lose nothing. f may change Attrs
	// and ExpiresAt only; any other change fails with ErrInvalid, as does a
	// result Validate refuses. An error from f is returned as is and nothing
	// is written. A backend may call f more than once (after a conflicting
	// write) and may hold a lock while it runs, so f must be quick, have no
	// effect besides its argument and never call the store. Update returns
	// the stored session; ErrNotFound as Get. Durability is Create's.
	Update(ctx context.Context, id string, f func(*Session) error) (Session, error)
	// Delete removes the session, or fails with ErrNotFound.
	Delete(ctx context.Context, id string) error
	// DeleteSubject removes every session of the subject (logout
	// everywhere) and returns how many live ones it removed.
	DeleteSubject(ctx context.Context, subject string) (int, error)
	// ListSubject returns the subject's live sessions, oldest first.
	ListSubject(ctx context.Context, subject string) ([]Session, error)
	// Close releases the backend's resources.
	Close() error
}

// CheckUpdate reports, wrapping ErrInvalid, whether next changes anything of
// prev that Update must keep: everything but Attrs, ExpiresAt and LastSeen
// (which Touch owns), and whether next is valid.
func CheckUpdate(prev, next Session) error {
	if next.ID != prev.ID || next.Subject != prev.Subject || next.ClientID != prev.ClientID ||
		next.DeviceID != prev.DeviceID || !next.CreatedAt.Equal(prev.CreatedAt) ||
		next.IdleTimeout != prev.IdleTimeout || !slices.Equal(next.AMR, prev.AMR) {
		return fmt.Errorf("update changes more than attrs and expiry: %w", ErrInvalid)
	}
	next.LastSeen = prev.LastSeen
	return next.Validate()
}

// Clock tells the time. Backends take one so tests can move time by hand.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }
