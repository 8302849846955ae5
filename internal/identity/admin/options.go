package admin

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"
)

// Options configures the admin identity. The zero value of every field has
// a working default except Origins, which DefaultRP derives from the ops
// listener's address.
type Options struct {
	// Required makes RequireAdmin refuse requests without an admin session
	// (or the machine token). False lets every request through: the ops API
	// is then protected only by its loopback bind. Config: ops_auth.
	Required bool
	// RPID is the WebAuthn relying-party id, the host name the admin's
	// browser shows. It cannot be an IP address (browsers refuse them), so
	// a loopback ops listener uses "localhost": open the console at
	// http://localhost:PORT, not http://127.0.0.1:PORT. Default "localhost".
	RPID string
	// Origins are the exact origins the ops console is served from, e.g.
	// http://localhost:9090. Assertions made for any other origin — a
	// phishing site — are refused. See DefaultRP.
	Origins []string
	// RPName is the name authenticators show. Default "rempart ops".
	RPName string
	// MachineToken keeps a bearer token for automation in the admin
	// directory (ops-token, mode 0600), created on first Open. RequireAdmin
	// accepts it as "Authorization: Bearer" on the ops API, but never on the
	// admin endpoints: it is not an admin login.
	MachineToken bool
	// MachineDenied are ops path prefixes the machine token does not reach
	// (an admin session does), e.g. the SMS outbox's login codes.
	MachineDenied []string
	// SessionTTL is how long an admin login lasts, with no renewal.
	// Default 15 minutes.
	SessionTTL time.Duration
	// EnrolTokenTTL is how long a one-time enrolment token is valid.
	// Default 1 hour.
	EnrolTokenTTL time.Duration
	// AllowNoUserVerification accepts authenticators that only prove
	// presence (a touch) without a PIN or biometric. Default false: an
	// admin login is two factors, the key and its PIN.
	AllowNoUserVerification bool
	// Home is where the login page sends an admin once logged in when the
	// page was not opened for another ops page (?next=), e.g. the console;
	// empty stays on the page.
	Home string
	// OpenPaths are extra ops paths (exact, or prefixes ending in "/") that
	// RequireAdmin lets through besides /healthz, /readyz, /metrics and the
	// login and enrolment ceremonies.
	OpenPaths []string
	// Logger receives audit logs (enrolments, logins, refusals); nil
	// discards them.
	Logger *slog.Logger
	// Now tells the time; nil means time.Now.
	Now func() time.Time
}

func (o *Options) setDefaults() error {
	if o.RPID == "" {
		o.RPID = "localhost"
	}
	if len(o.Origins) == 0 {
		return fmt.Errorf("admin: no origins configured for the ops console")
	}
	for _, s := range o.Origins {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
			return fmt.Errorf("admin: origin %q: want scheme://host[:port]", s)
		}
	}
	if o.RPName == "" {
		o.RPName = "rempart ops"
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 15 * time.Minute
	}
	if o.EnrolTokenTTL <= 0 {
		o.EnrolTokenTTL = time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return nil
}

// DefaultRP derives the relying-party id and origin from the ops listener's
// address: a loopback or unspecified host gives "localhost" and
// http://localhost:PORT; a host name gives that name and https://NAME:PORT
// (browsers only offer WebAuthn on https, or on http://localhost). An IP
// address that is not loopback has no usable default: configure a name.
func DefaultRP(opsAddr string) (rpID string, origins []string, err error) {
	host, port, err := net.SplitHostPort(opsAddr)
	if err == nil {
		_, err = strconv.ParseUint(port, 10, 16)
	}
	if err != nil {
		return "", nil, fmt.Errorf("admin: ops listener address %q: %w", opsAddr, err)
	}
	ip := net.ParseIP(host)
	switch {
	case host == "" || host == "localhost" || (ip != nil && (ip.IsLoopback() || ip.IsUnspecified())):
		return "localhost", []string{"http://localhost:" + port}, nil
	case ip != nil:
		return "", nil, fmt.Errorf("admin: ops listener address %q is an IP address; WebAuthn needs a host name: configure the relying-party id and origin", opsAddr)
	default:
		return host, []string{"https://" + net.JoinHostPort(host, port)}, nil
	}
}
