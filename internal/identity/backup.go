package identity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/identity/users"
	"github.com/rempart/rempart/internal/session"
)

// The backup authentication path (after Microsoft Entra ID's, 2021): each
// successful login from a device leaves a snapshot of what the password and
// SMS-code checks need, keyed by the customer and the device cookie it set.
// While the directory is slow or stuck, a login from that device is checked
// against the snapshot instead, and nobody else gets in: a login without a
// snapshot is told, at once, that logins are degraded.
//
// Snapshots live in the session store (so a cluster shares them) under the
// subject "snap:<customer>", which keeps them apart from the customer's
// sessions and lets a directory change remove all of them in one call.

// amrBackup marks, in amr, a login checked against a snapshot instead of the
// directory (RFC 8176 allows values agreed between the parties). It rides on
// the grant, so refreshed tokens keep it.
const amrBackup = "backup"

// acrBackup is the ID token's acr of such a login.
const acrBackup = "urn:rempart:acr:backup"

// Snapshot attributes.
const (
	snapVerifier = "v"
	snapVersion  = "ver"
)

// DirectoryWatcher is a directory that tells of changes to a customer's
// password, phone or status (users.Memory does, synchronously).
type DirectoryWatcher interface {
	Watch(f func(id string))
}

func snapSubject(account string) string { return "snap:" + account }

// snapID is the snapshot's record id: a hash, so the device cookie's nonce is
// not stored in clear.
func snapID(account, nonce string) string {
	sum := sha256.Sum256([]byte("rempart backup snapshot\x00" + account + "\x00" + nonce))
	return "snap_" + hex.EncodeToString(sum[:16])
}

// backup is the provider's backup path: the directory's breaker and the
// snapshots.
type backup struct {
	window time.Duration
	cb     circuitbreaker.CircuitBreaker[any]
	logins *prometheus.CounterVec
}

func newBackup(cfg Config, log *slog.Logger) *backup {
	b := &backup{window: cfg.BackupWindow}
	// Five directory failures in a row (time-outs, errors: not wrong
	// passwords) open it; after DirectoryBreakerDelay one login tries the
	// directory again, and its success closes it.
	b.cb = circuitbreaker.NewBuilder[any]().
		WithFailureThreshold(5).WithDelay(cfg.DirectoryBreakerDelay).WithSuccessThreshold(1).
		OnStateChanged(func(e circuitbreaker.StateChangedEvent) {
			log.Warn("user directory breaker", slog.String("from", e.OldState.String()), slog.String("to", e.NewState.String()))
		}).Build()
	b.logins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rempart_identity_backup_logins_total",
		Help: "Password steps while the user directory was unavailable, by outcome: backup (checked against the device's snapshot), refused (wrong password against the snapshot), no_snapshot (degraded answer), and snapshots taken and invalidated.",
	}, []string{"outcome"})
	if cfg.Registerer != nil {
		state := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rempart_identity_directory_breaker_open",
			Help: "1 while the user directory's breaker is open or half-open (logins take the backup path), 0 when closed.",
		}, func() float64 {
			if b.cb.IsClosed() {
				return 0
			}
			return 1
		})
		for _, c := range []prometheus.Collector{b.logins, state} {
			if err := cfg.Registerer.Register(c); err != nil {
				log.Warn("identity metrics", slog.Any("err", err))
			}
		}
	}
	return b
}

// DirectoryBreakerState is the directory breaker's state: "open",
// "half-open" or "closed" ("" without a backup path, which has no
// breaker). The status page reads it: while it is not closed, new logins
// are degraded (known devices only) whatever the traffic says.
func (p *Provider) DirectoryBreakerState() string {
	switch {
	case p.backup.window < 0:
		return ""
	case p.backup.cb.IsOpen():
		return "open"
	case p.backup.cb.IsHalfOpen():
		return "half-open"
	}
	return "closed"
}

// errDirectoryOpen is the breaker refusing to call the directory.
var errDirectoryOpen = errors.New("user directory breaker open")

// authenticate checks a password with the directory, through its breaker.
// A wrong password or an unknown id is the directory working.
func (p *Provider) authenticate(ctx context.Context, account, password string) (users.User, error) {
	b := p.backup
	if b.window < 0 {
		// No backup path, and so no breaker: the directory is all there is.
		return p.users.Authenticate(ctx, account, password)
	}
	if !b.cb.TryAcquirePermit() {
		return users.User{}, errDirectoryOpen
	}
	u, err := p.users.Authenticate(ctx, account, password)
	switch {
	case directoryAnswered(err):
		b.cb.RecordSuccess()
	case ctx.Err() != nil && errors.Is(context.Cause(ctx), context.Canceled) && !errors.Is(err, context.DeadlineExceeded):
		// The customer left; that says nothing about the directory.
		b.cb.RecordSuccess()
	default:
		b.cb.RecordFailure()
	}
	return u, err
}

// takeSnapshot keeps what a backup login from this device needs, after a
// login checked by the directory. Best effort: a failure only means the
// device has no backup path until its next login.
func (p *Provider) takeSnapshot(ctx context.Context, u users.User, nonce string) {
	b := p.backup
	if b.window <= 0 || u.Verifier == "" || nonce == "" {
		return
	}
	now := p.cfg.Now()
	id := snapID(u.ID, nonce)
	s := session.Session{ID: id, Subject: snapSubject(u.ID), CreatedAt: now, ExpiresAt: now.Add(b.window),
		Attrs: map[string]string{snapVerifier: u.Verifier, snapVersion: strconv.FormatUint(u.Version, 10),
			attrName: u.Name, attrPhone: u.Phone}}
	if u.Email != "" { // most of the population has none: no key kept for it
		s.Attrs[attrEmail] = u.Email
	}
	_ = p.sessions.Delete(ctx, id) // the device's previous snapshot, if any
	if err := p.sessions.Create(ctx, s); err != nil {
		p.log.WarnContext(ctx, "backup snapshot", slog.String("account", u.ID), slog.Any("err", err))
		return
	}
	b.logins.WithLabelValues("snapshot").Inc()
}

// dropSnapshots removes every snapshot of the customer: the directory
// changed their password, phone or status.
func (p *Provider) dropSnapshots(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, err := p.sessions.DeleteSubject(ctx, snapSubject(id))
	if err != nil {
		// Fail loudly: a snapshot that outlives a block is a way in.
		p.log.Error("backup snapshots not invalidated", slog.String("account", id), slog.Any("err", err))
		return
	}
	if n > 0 {
		p.backup.logins.WithLabelValues("invalidated").Add(float64(n))
	}
}

// snapshot is a device's live backup-login snapshot.
type snapshot struct {
	user users.User
}

// loadSnapshot returns the live snapshot of account's device with the
// cookie nonce, if there is one.
func (p *Provider) loadSnapshot(ctx context.Context, account, nonce string) (snapshot, bool) {
	if p.backup.window <= 0 || nonce == "" {
		return snapshot{}, false
	}
	s, err := p.sessions.Get(ctx, snapID(account, nonce))
	if err != nil || s.Subject != snapSubject(account) || !s.Live(p.cfg.Now()) || s.Attrs[snapVerifier] == "" {
		return snapshot{}, false
	}
	ver, _ := strconv.ParseUint(s.Attrs[snapVersion], 10, 64)
	return snapshot{user: users.User{ID: account, Name: s.Attrs[attrName], Phone: s.Attrs[attrPhone],
		Email: s.Attrs[attrEmail], Verifier: s.Attrs[snapVerifier], Version: ver}}, true
}

// checkSnapshot checks a password against a snapshot while the directory
// is unavailable: one argon2id hash, like the directory's check.
func (p *Provider) checkSnapshot(ctx context.Context, snap snapshot, password string) (users.User, error) {
	match, err := p.verifyBounded(ctx, password, snap.user.Verifier)
	if err != nil {
		return users.User{}, err
	}
	if !match {
		p.backup.logins.WithLabelValues("refused").Inc()
		return users.User{}, users.ErrBadPassword
	}
	p.backup.logins.WithLabelValues("backup").Inc()
	return snap.user, nil
}

// directoryAnswered reports whether err is the directory's verdict on the
// password (right, wrong, unknown, blocked) rather than its failure.
func directoryAnswered(err error) bool {
	return err == nil || errors.Is(err, users.ErrNotFound) || errors.Is(err, users.ErrBadPassword) || errors.Is(err, users.ErrBlocked)
}

// verifyBounded is users.Verify with at most one hash per processor at
// once, the directory's own bound: logins released together must not
// allocate argon2's memory all at once.
func (p *Provider) verifyBounded(ctx context.Context, password, verifier string) (bool, error) {
	select {
	case p.hashing <- struct{}{}:
		defer func() { <-p.hashing }()
	case <-ctx.Done():
		return false, ctx.Err()
	}
	return users.Verify(password, verifier)
}
