package identity

import (
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/identity/keys"
	"github.com/rempart/rempart/internal/identity/users"
	"github.com/rempart/rempart/internal/session"
)

// Demo client ids and the confidential client's demo secret. They are public
// on purpose: they exist for the README's walk-through and the drill.
const (
	DemoAppClient     = "rempart-demo-app"
	DemoServiceClient = "rempart-demo-service"
	DemoServiceSecret = "rempart-demo-service-secret"
)

// Config configures a Provider. The zero value of every field but Issuer has
// a working default; New fills them in.
type Config struct {
	// Issuer is the provider's identifier and the base of every endpoint
	// URL, e.g. http://127.0.0.1:8080 (the default). An http issuer is only
	// accepted on a loopback host.
	Issuer string
	// Audience is the "aud" of access tokens: the resource the gateway
	// serves. Default "rempart".
	Audience string
	// DataDir keeps the signing keys and the device-cookie key
	// (identity/keys.json) unless KeyStore is set. Empty keeps both in
	// memory: a restart then invalidates every token and device cookie.
	DataDir string
	// KeyStore, when set, keeps the signing keys and the device-cookie key
	// instead of DataDir: a store the nodes of a cluster share (see
	// keys/postgres), so that all of them sign and publish the same keys.
	// It needs KeyKEK.
	KeyStore keys.Store
	// KeyKEK is the key-encryption key (32 bytes, AES-256-GCM) the key set
	// is sealed with in its store; optional for the file in DataDir.
	KeyKEK []byte
	// Sessions stores browser sessions and grants (refresh-token families).
	// Nil opens an in-memory store that does not survive a restart.
	Sessions session.Store
	// Logins stores the logins in progress: authorization requests, their
	// SMS-code and passkey steps, and authorization codes. Give every node
	// of a cluster the same one (the shared Redis session store) so that a
	// balancer may send each step of a login to any node. Nil keeps them in
	// this process's memory, lost on restart (the customer starts again),
	// as a single node needs. Its clock must be Now's.
	Logins session.Store
	// Users is the customer directory. Nil uses the embedded one (demo
	// customers plus DerivedCustomers derived ones).
	Users UserDirectory
	// DerivedCustomers is how many derived customers C00000000… the embedded
	// directory knows. Zero means 10,000,000, the estate's population.
	DerivedCustomers int
	// PasswordParams are the embedded directory's argon2id costs; zero means
	// OWASP's (m=19 MiB, t=2, p=1). Lower them only in tests.
	PasswordParams users.Params
	// SMS sends the one-time login codes. Nil drops them (and logs that it
	// did, without the code).
	SMS SMSSender
	// Observer hears of every login attempt; nil ignores them.
	Observer LoginObserver
	// Limiter may refuse a login attempt before the password is checked;
	// nil allows all.
	Limiter LoginLimiter
	// PasswordResetURL is the bank's own page for choosing a new password,
	// linked from the login's "forgot your password" page; empty, that
	// page only says how to reach the bank.
	PasswordResetURL string
	// DirectoryWrites queues what logins write to the directory (see
	// dirwrites.go); nil writes nothing.
	DirectoryWrites DirectoryWriter
	// Passkeys configures WebAuthn passkeys as the second factor (see
	// PasskeyConfig); the zero value derives them from the issuer.
	Passkeys PasskeyConfig
	// Logger receives the provider's logs; nil discards them.
	Logger *slog.Logger

	// AccessTokenTTL is the lifetime of access tokens. Default 10 minutes.
	AccessTokenTTL time.Duration
	// IDTokenTTL is the lifetime of ID tokens. Default 10 minutes.
	IDTokenTTL time.Duration
	// GrantTTL is how long a refresh-token family lives at most after the
	// login that started it. Default 30 days.
	GrantTTL time.Duration
	// GrantIdle ends a family that has not been refreshed for this long.
	// Default 7 days.
	GrantIdle time.Duration
	// BrowserSessionTTL is how long a login lets the same browser skip the
	// login page. Default 12 hours.
	BrowserSessionTTL time.Duration
	// BackupWindow is how long a device's backup-login snapshot lives
	// after the login that took it (default 72 hours, Entra ID's window);
	// negative turns the backup path off, and with it the directory's
	// breaker (every login waits on the directory). See backup.go.
	BackupWindow time.Duration
	// BackupAfter is how long a login from a device with a backup
	// snapshot waits for the directory before it is checked against the
	// snapshot instead (default 1 s; others wait LoginTimeout).
	BackupAfter time.Duration
	// DirectoryBreakerDelay is how long the user directory's breaker stays
	// open before one login tries the directory again (default 2 s).
	DirectoryBreakerDelay time.Duration
	// Registerer, when set, receives the provider's metrics.
	Registerer prometheus.Registerer
	// LoginTimeout is how long a login waits for the user directory before
	// the page asks the customer to come back. Default 5 seconds.
	LoginTimeout time.Duration
	// OTPTTL is how long an SMS code is valid. Default 5 minutes.
	OTPTTL time.Duration
	// DeviceCookieTTL is how long a device cookie marks a returning
	// customer's device. Default 180 days.
	DeviceCookieTTL time.Duration
	// KeyRotateEvery is how long a signing key signs. Default 24 hours.
	KeyRotateEvery time.Duration
	// VerifierCacheSize bounds the verified-token cache (entries). Default
	// 100,000; negative disables it.
	VerifierCacheSize int
	// MaxPendingLogins bounds logins in progress started on this node (default
	// 100,000), MaxPendingPerSource those of one client address or IPv6 /64
	// (default 64) and MaxPendingPerPrefix those of one /24 or /48 (default
	// 1,024); see PendingLimits. Each node counts the logins started on it:
	// behind a balancer of n nodes a source may hold n times as many.
	MaxPendingLogins, MaxPendingPerSource, MaxPendingPerPrefix int
	// Now tells the time; nil means time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() error {
	if c.Issuer == "" {
		c.Issuer = "http://127.0.0.1:8080"
	}
	u, err := url.Parse(c.Issuer)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("issuer %q: want an absolute http(s) URL without query or fragment", c.Issuer)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Audience == "" {
		c.Audience = "rempart"
	}
	if c.DerivedCustomers == 0 {
		c.DerivedCustomers = 10_000_000
	}
	def(&c.AccessTokenTTL, 10*time.Minute)
	def(&c.IDTokenTTL, 10*time.Minute)
	def(&c.GrantTTL, 30*24*time.Hour)
	def(&c.GrantIdle, 7*24*time.Hour)
	def(&c.BrowserSessionTTL, 12*time.Hour)
	def(&c.LoginTimeout, 5*time.Second)
	if c.BackupWindow == 0 { // negative: off
		c.BackupWindow = 72 * time.Hour
	}
	def(&c.DirectoryBreakerDelay, 2*time.Second)
	def(&c.BackupAfter, time.Second)
	def(&c.OTPTTL, 5*time.Minute)
	def(&c.DeviceCookieTTL, 180*24*time.Hour)
	def(&c.KeyRotateEvery, 24*time.Hour)
	if c.VerifierCacheSize == 0 {
		c.VerifierCacheSize = 100_000
	}
	if c.MaxPendingLogins <= 0 {
		c.MaxPendingLogins = 100_000
	}
	if c.MaxPendingPerSource <= 0 {
		c.MaxPendingPerSource = 64
	}
	if c.MaxPendingPerPrefix <= 0 {
		c.MaxPendingPerPrefix = 1024
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
