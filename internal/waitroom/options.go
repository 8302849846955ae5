package waitroom

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Clock tells the time; tests pass a fake that moves only when told to.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Options configure a Room. The zero value is usable: every zero field takes
// the default named in its comment. MinRate and MaxRate only bound the
// admission rate; the rate itself is measured, not configured.
type Options struct {
	// ID names the room. A ticket is valid only in the room that issued it, so
	// give every replica and every protected backend its own ID. It labels the
	// metrics (room="ID"). At most 64 bytes. Default "login".
	ID string
	// Key signs tickets with HMAC-SHA256; at least 32 bytes. Empty draws a
	// random key at start: tickets then die with the process, which loses the
	// line it indexes anyway.
	Key []byte

	// MinRate is the floor of the admission rate, in logins per second: what a
	// failing identity provider still gets, so the room sees it recover.
	// Default 5.
	MinRate float64
	// MaxRate is the ceiling of the admission rate, in logins per second.
	// Default 1000.
	MaxRate float64
	// InitialRate is the admission rate before anything has been measured.
	// Default MinRate: a room that starts in the middle of a surge lets
	// through what the floor allows and climbs from there.
	InitialRate float64
	// LatencyTarget is how long a healthy login takes at most; calls slower
	// than this are a sign the backend is saturated. Default 1s.
	LatencyTarget time.Duration
	// Window is how far back the room looks when it measures completions.
	// Shorter reacts faster and is noisier. Default 5s.
	Window time.Duration

	// Grace is how late after the time it was told to poll a waiting client
	// may come back and keep its place: a ticket expires then, and the place
	// is given up (the line passes it over without spending a call). A
	// waiting client gets a fresh ticket on every poll, so only a client that
	// stopped polling loses its place; one that comes back later starts
	// again at the back. Default 3s.
	Grace time.Duration
	// MaxWaiting bounds the line. Beyond it newcomers get 503
	// waiting-room-full. Default 50000.
	MaxWaiting int
	// MaxPoll is the longest a waiting client is told to wait before polling
	// again, however long its estimated wait. Shorter keeps clients closer to
	// their turn when the rate climbs (each poll re-estimates), at the cost of
	// one cheap request per waiting client per MaxPoll. Default 10s.
	MaxPoll time.Duration
	// ReplayLimit bounds the set of used tickets kept to refuse a second use.
	// When it is full the oldest entries go, and with them the validity of
	// every ticket numbered up to theirs. Default 262144 (about 10 MB).
	ReplayLimit int

	// BindClient binds a ticket to the client's network (IPv4 /24, IPv6 /48,
	// from request.Info.Client): a ticket copied elsewhere is worthless. Off
	// by default because mobile clients change address while they wait.
	BindClient bool
	// SecureCookie marks the rempart_ticket cookie Secure even when the
	// request reached rempart without TLS (TLS terminated in front of it). A
	// request that arrived over TLS always gets a Secure cookie.
	SecureCookie bool

	// Clock tells the time. Default the wall clock.
	Clock Clock
	// Registerer receives the metrics (rempart_waitroom_*{room=ID}). Nil
	// leaves them unregistered; Stats still works.
	Registerer prometheus.Registerer
}

func (o Options) withDefaults() Options {
	if o.ID == "" {
		o.ID = "login"
	}
	if o.MinRate <= 0 {
		o.MinRate = 5
	}
	if o.MaxRate <= 0 {
		o.MaxRate = 1000
	}
	if o.MaxRate < o.MinRate {
		o.MaxRate = o.MinRate
	}
	if o.InitialRate <= 0 {
		o.InitialRate = o.MinRate
	}
	o.InitialRate = min(max(o.InitialRate, o.MinRate), o.MaxRate)
	if o.LatencyTarget <= 0 {
		o.LatencyTarget = time.Second
	}
	if o.Window < time.Second {
		o.Window = 5 * time.Second
	}
	if o.Grace <= 0 {
		o.Grace = 3 * time.Second
	}
	if o.MaxWaiting <= 0 {
		o.MaxWaiting = 50000
	}
	if o.MaxPoll < time.Second {
		o.MaxPoll = 10 * time.Second
	}
	if o.ReplayLimit <= 0 {
		o.ReplayLimit = 1 << 18
	}
	if o.Clock == nil {
		o.Clock = systemClock{}
	}
	return o
}
