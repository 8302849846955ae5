package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
)

// Files in the admin directory. Everything is written to a temporary file,
// synced and renamed, so a crash leaves either the old or the new version.
const (
	adminsFile   = "admins.json"
	enrolDir     = "enrol"       // one file per live enrolment token, named by its hash
	sessionKey   = "session.key" // HMAC key of admin session cookies
	opsTokenFile = "ops-token"   // the machine token for automation
	originFile   = "console"     // the console's origin, as the last serve on this directory announced it
)

// Token prefixes: they tell the two secrets apart at a glance and let
// secret scanners find them.
const (
	enrolPrefix = "enrol_"
	opsPrefix   = "ops_"
)

var b64 = base64.RawURLEncoding

// Admin is one enrolled administrator.
type Admin struct {
	// ID is the WebAuthn user handle: 32 random bytes.
	ID          []byte                `json:"id"`
	Name        string                `json:"name"`
	Created     time.Time             `json:"created"`
	Credentials []webauthn.Credential `json:"credentials"`
	// LoggedOut is when the admin last logged out: every session issued
	// before it is dead, in every browser, across restarts.
	LoggedOut time.Time `json:"logged_out,omitzero"`
}

// WebAuthn's view of an admin.
func (a *Admin) WebAuthnID() []byte                         { return a.ID }
func (a *Admin) WebAuthnName() string                       { return a.Name }
func (a *Admin) WebAuthnDisplayName() string                { return a.Name }
func (a *Admin) WebAuthnCredentials() []webauthn.Credential { return a.Credentials }

var _ webauthn.User = (*Admin)(nil)

type adminsDoc struct {
	Version int      `json:"version"`
	Admins  []*Admin `json:"admins"`
}

func loadAdmins(dir string) ([]*Admin, error) {
	b, err := os.ReadFile(filepath.Join(dir, adminsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var d adminsDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", adminsFile, err)
	}
	if d.Version != 1 {
		return nil, fmt.Errorf("%s: unknown version %d", adminsFile, d.Version)
	}
	return d.Admins, nil
}

func saveAdmins(dir string, admins []*Admin) error {
	b, err := json.MarshalIndent(adminsDoc{Version: 1, Admins: admins}, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, adminsFile), append(b, '\n'))
}

// writeAtomic replaces path with data (mode 0600): temporary file, fsync,
// rename, fsync of the directory.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// loadOrCreateSecret reads dir/name, creating it with fresh random bytes
// (n of them, made text by mk) when missing.
func loadOrCreate(dir, name string, mk func() (string, error)) (string, error) {
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	if err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	v, err := mk()
	if err != nil {
		return "", err
	}
	return v, writeAtomic(path, []byte(v+"\n"))
}

func randomToken(prefix string) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return prefix + b64.EncodeToString(b), nil
}

// parseToken checks a presented token's shape: the prefix then 32 bytes in
// unpadded base64url. It returns the token's hash, the only form ever stored
// or compared.
func parseToken(prefix, s string) ([32]byte, bool) {
	s = strings.TrimSpace(s)
	if len(s) != len(prefix)+43 || !strings.HasPrefix(s, prefix) {
		return [32]byte{}, false
	}
	raw, err := b64.DecodeString(s[len(prefix):])
	if err != nil || len(raw) != 32 {
		return [32]byte{}, false
	}
	return sha256.Sum256([]byte(s)), true
}

type enrolRecord struct {
	Expires time.Time `json:"expires"`
}

// IssueEnrolToken writes a new one-time enrolment token into the admin
// directory dir and returns it. Tokens issued before are withdrawn: only the
// newest works. The running server checks the directory on every enrolment,
// so it accepts the token without a restart. Only the token's hash is
// written; the token itself exists only in what the caller prints.
func IssueEnrolToken(dir string, ttl time.Duration, now time.Time) (string, time.Time, error) {
	if ttl <= 0 {
		ttl = time.Hour
	}
	tok, err := randomToken(enrolPrefix)
	if err != nil {
		return "", time.Time{}, err
	}
	h := sha256.Sum256([]byte(tok))
	exp := now.Add(ttl).UTC().Truncate(time.Second)
	b, _ := json.Marshal(enrolRecord{Expires: exp})
	ed := filepath.Join(dir, enrolDir)
	if err := os.MkdirAll(ed, 0o700); err != nil {
		return "", time.Time{}, fmt.Errorf("admin: %w", err)
	}
	if err := writeAtomic(filepath.Join(ed, hex.EncodeToString(h[:])), b); err != nil {
		return "", time.Time{}, fmt.Errorf("admin: write enrolment token: %w", err)
	}
	ents, _ := os.ReadDir(ed)
	for _, e := range ents {
		if e.Name() != hex.EncodeToString(h[:]) {
			os.Remove(filepath.Join(ed, e.Name()))
		}
	}
	return tok, exp, nil
}

// Errors of enrolment tokens. They are told apart in logs, never to the
// client, which only hears that the token is not valid.
var (
	errTokenUnknown = errors.New("unknown or already used enrolment token")
	errTokenExpired = errors.New("expired enrolment token")
)

// checkEnrolToken reports whether h names a live token, without spending it.
func checkEnrolToken(dir string, h [32]byte, now time.Time) error {
	b, err := os.ReadFile(filepath.Join(dir, enrolDir, hex.EncodeToString(h[:])))
	if err != nil {
		return errTokenUnknown
	}
	var r enrolRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return errTokenUnknown
	}
	if !now.Before(r.Expires) {
		return errTokenExpired
	}
	return nil
}

// spendEnrolToken consumes the token: removing its file is atomic, so of two
// enrolments racing on one token (even in two processes) exactly one wins.
func spendEnrolToken(dir string, h [32]byte, now time.Time) error {
	if err := checkEnrolToken(dir, h, now); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, enrolDir, hex.EncodeToString(h[:]))); err != nil {
		return errTokenUnknown
	}
	return nil
}
