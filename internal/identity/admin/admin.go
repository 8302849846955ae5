package admin

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// Admins is the admin directory, the WebAuthn relying party of the ops
// console and the guard of the ops API.
type Admins struct {
	dir    string
	opts   Options
	log    *slog.Logger
	wa     *webauthn.WebAuthn
	key    []byte   // session cookie HMAC key
	ops    [32]byte // SHA-256 of the machine token
	hasOps bool
	secure bool // the console is served over https

	mu         sync.Mutex
	admins     []*Admin
	ceremonies map[string]*ceremony

	handler http.Handler
}

// ceremonyTTL is how long a begun enrolment or login may take to finish;
// a person with a security key needs well under a minute.
const ceremonyTTL = 5 * time.Minute

// maxCeremonies bounds begun, unfinished ceremonies held in memory.
const maxCeremonies = 1024

type ceremony struct {
	kind    string // "enrol" or "login"
	data    webauthn.SessionData
	admin   *Admin   // enrol: the admin being created; login: nil
	adminID []byte   // login: whose credentials were offered
	token   [32]byte // enrol: hash of the token that allowed it
	expires time.Time
}

// Open loads (or creates) the admin directory dir — conventionally
// <data_dir>/admin — with its admins, the session key and, if
// opts.MachineToken, the machine token.
func Open(dir string, opts Options) (*Admins, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if dir == "" {
		return nil, fmt.Errorf("admin: no directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	a := &Admins{dir: dir, opts: opts, log: opts.Logger, ceremonies: map[string]*ceremony{},
		secure: strings.HasPrefix(opts.Origins[0], "https://")}
	var err error
	if a.admins, err = loadAdmins(dir); err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	k, err := loadOrCreate(dir, sessionKey, func() (string, error) {
		b := make([]byte, 32)
		_, err := rand.Read(b)
		return hex.EncodeToString(b), err
	})
	if err != nil {
		return nil, fmt.Errorf("admin: session key: %w", err)
	}
	if a.key, err = hex.DecodeString(k); err != nil || len(a.key) != 32 {
		return nil, fmt.Errorf("admin: %s is corrupt", filepath.Join(dir, sessionKey))
	}
	if opts.MachineToken {
		t, err := loadOrCreate(dir, opsTokenFile, func() (string, error) { return randomToken(opsPrefix) })
		if err != nil {
			return nil, fmt.Errorf("admin: machine token: %w", err)
		}
		h, ok := parseToken(opsPrefix, t)
		if !ok {
			return nil, fmt.Errorf("admin: %s is corrupt", a.MachineTokenPath())
		}
		a.ops, a.hasOps = h, true
	}
	uv := protocol.VerificationRequired
	if opts.AllowNoUserVerification {
		uv = protocol.VerificationPreferred
	}
	a.wa, err = webauthn.New(&webauthn.Config{
		RPID: opts.RPID, RPDisplayName: opts.RPName, RPOrigins: opts.Origins,
		// Without a metadata service an attestation proves nothing more
		// than the key itself, so none is asked for.
		AttestationPreference:  protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{UserVerification: uv, ResidentKey: protocol.ResidentKeyRequirementDiscouraged},
		// rempart requests no extensions and reads none, so an output a
		// browser volunteers cannot change any decision; refusing it would
		// only break enrolment on that browser.
		ExtensionsUnsolicitedOutputPolicy: protocol.UnsolicitedOutputPolicyIgnore,
	})
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	a.handler = a.routes()
	return a, nil
}

// Enrolled is how many admins exist.
func (a *Admins) Enrolled() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.admins)
}

// IssueEnrolToken issues a one-time enrolment token (see the package
// function of the same name), withdrawing any earlier one.
func (a *Admins) IssueEnrolToken() (string, time.Time, error) {
	return IssueEnrolToken(a.dir, a.opts.EnrolTokenTTL, a.opts.Now())
}

// Bootstrap is what `rempart serve` says at start: while no admin exists it
// issues an enrolment token and prints it, with where to use it, to w.
// It names the machine token's file, never its value.
//
// It also records the console's origin in the admin directory, so that
// `rempart admin enrol-token`, which finds the directory but not the
// server's flags, prints the address this server answers at (Origin).
func (a *Admins) Bootstrap(w io.Writer) error {
	if err := writeAtomic(filepath.Join(a.dir, originFile), []byte(a.opts.Origins[0]+"\n")); err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	if a.hasOps {
		fmt.Fprintf(w, "rempart: ops API automation token (bearer) in %s\n", a.MachineTokenPath())
	}
	if a.Enrolled() > 0 {
		// The first admin is in: a leftover token file is only a risk.
		if err := os.Remove(a.EnrolTokenPath()); err != nil && !os.IsNotExist(err) {
			return err
		}
		return nil
	}
	tok, exp, err := a.IssueEnrolToken()
	if err != nil {
		return err
	}
	// The token goes to a file only its owner can read, not to the output:
	// start-up output ends in log collectors, where a token that makes an
	// admin must not be.
	if err := writeAtomic(a.EnrolTokenPath(), []byte(tok+"\n")); err != nil {
		return fmt.Errorf("enrolment token: %w", err)
	}
	fmt.Fprintf(w, "rempart: no admin is enrolled yet. Enrol the first one with a FIDO2 security key or passkey at\n"+
		"  %s/ops/admin/enrol\nwith the one-time token in %s (mode 0600, valid until %s;\n"+
		"`rempart admin enrol-token` issues a new one)\n",
		a.opts.Origins[0], a.EnrolTokenPath(), exp.Format(time.RFC3339))
	return nil
}

// Origin is the console origin the last server on the admin directory dir
// announced (Bootstrap), or "" when none did.
func Origin(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, originFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("admin: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// EnrolTokenPath is the file the first admin's enrolment token is written to.
func (a *Admins) EnrolTokenPath() string { return filepath.Join(a.dir, enrolTokenFile) }

// enrolTokenFile holds the first admin's one-time enrolment token until an
// admin is enrolled.
const enrolTokenFile = "enrol-token"

// MachineTokenPath is the file holding the machine token.
func (a *Admins) MachineTokenPath() string { return filepath.Join(a.dir, opsTokenFile) }

// Handler serves the console page and the enrolment and login ceremonies,
// to mount at /ops/admin/ on the ops listener.
func (a *Admins) Handler() http.Handler { return a.handler }

func (a *Admins) byID(id []byte) *Admin {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byIDLocked(id)
}

func (a *Admins) byIDLocked(id []byte) *Admin {
	for _, ad := range a.admins {
		if bytes.Equal(ad.ID, id) {
			return ad
		}
	}
	return nil
}

func (a *Admins) byNameLocked(name string) *Admin {
	for _, ad := range a.admins {
		if ad.Name == name {
			return ad
		}
	}
	return nil
}

// machineOK reports whether r carries the machine token, compared by hash
// in constant time.
func (a *Admins) machineOK(r *http.Request) bool {
	if !a.hasOps {
		return false
	}
	auth := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	h, ok := parseToken(opsPrefix, tok)
	if !ok {
		return false
	}
	return subtle.ConstantTimeCompare(h[:], a.ops[:]) == 1
}

// newCeremony stores c and returns its id; the caller holds no lock.
func (a *Admins) newCeremony(c *ceremony) (string, error) {
	id, err := randomToken("")
	if err != nil {
		return "", err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.opts.Now()
	if len(a.ceremonies) >= maxCeremonies {
		for k, v := range a.ceremonies {
			if now.After(v.expires) {
				delete(a.ceremonies, k)
			}
		}
		if len(a.ceremonies) >= maxCeremonies {
			return "", errBusy
		}
	}
	c.expires = now.Add(ceremonyTTL)
	a.ceremonies[id] = c
	return id, nil
}

// takeCeremony removes and returns a live ceremony: each is finished at
// most once, successfully or not. The caller holds mu.
func (a *Admins) takeCeremonyLocked(id, kind string) *ceremony {
	c, ok := a.ceremonies[id]
	if !ok {
		return nil
	}
	delete(a.ceremonies, id)
	if c.kind != kind || a.opts.Now().After(c.expires) {
		return nil
	}
	return c
}
