package identity

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/rempart/rempart/internal/identity/users"
	"github.com/rempart/rempart/internal/problem"
	"github.com/rempart/rempart/internal/session"
)

// RouteLoginPasskey is reported to the LoginObserver for passkey answers.
const RouteLoginPasskey = "login-passkey"

// Passkey endpoints, under PathLogin so the flow cookie reaches them.
const (
	PathPasskeyBegin          = PathLogin + "/passkey/begin"
	PathPasskeyFinish         = PathLogin + "/passkey/finish"
	PathLoginSMS              = PathLogin + "/sms"
	PathPasskeyRegister       = PathLogin + "/passkey/register"
	PathPasskeyRegisterBegin  = PathLogin + "/passkey/register/begin"
	PathPasskeyRegisterFinish = PathLogin + "/passkey/register/finish"
)

// PasskeyConfig configures WebAuthn passkeys as the customer's second
// factor, offered after the password instead of the SMS code once the
// customer has registered one (after a login with an SMS code).
type PasskeyConfig struct {
	// Disabled never offers passkeys.
	Disabled bool
	// RPID is the relying-party id. Default: the issuer's host name.
	// Browsers refuse IP addresses, so with the default issuer
	// (http://127.0.0.1:8080) passkeys stay off unless RPID and Origins are
	// set (e.g. "localhost" and http://localhost:8080).
	RPID string
	// Origins are the login page's origins. Default: the issuer.
	Origins []string
	// RecentLogin is how recent the SMS login must be to register a
	// passkey. Default 10 minutes.
	RecentLogin time.Duration
}

// passkeyAMR is the amr of a password + passkey login (RFC 8176): "pop",
// proof of possession of a key, since a synced passkey is not always
// hardware-bound.
var passkeyAMR = []string{"pwd", "pop", "mfa"}

// maxPasskeys bounds the passkeys one customer may register.
const maxPasskeys = 10

// passkeyCeremonyTTL is how long a begun passkey ceremony may take.
const passkeyCeremonyTTL = 5 * time.Minute

// passkeyUser is a customer as WebAuthn sees them. The handle is random so
// authenticators never hold the customer id.
type passkeyUser struct {
	Handle      []byte                `json:"handle"`
	Name        string                `json:"name"`
	Credentials []webauthn.Credential `json:"credentials"`
}

func (u *passkeyUser) WebAuthnID() []byte                         { return u.Handle }
func (u *passkeyUser) WebAuthnName() string                       { return u.Name }
func (u *passkeyUser) WebAuthnDisplayName() string                { return u.Name }
func (u *passkeyUser) WebAuthnCredentials() []webauthn.Credential { return u.Credentials }

func (u *passkeyUser) clone() *passkeyUser {
	c := *u
	c.Credentials = slices.Clone(u.Credentials)
	return &c
}

// passkeys holds customers' passkeys and the ceremonies in progress. The
// registry is a JSON file rewritten atomically on change (or memory only
// without a data directory): passkey holders are a small share of the
// population, and the file is read once at start, so a login never waits
// on a database for it.
type passkeys struct {
	wa     *webauthn.WebAuthn
	path   string
	now    func() time.Time
	recent time.Duration

	mu    sync.Mutex
	users map[string]*passkeyUser // by subject
}

// pkCeremony is a passkey step in progress: a login's lives in its
// authorization request's record, a registration's in a record of its own
// ("pr:" + the browser session's record id), both in the logins store, so
// begin and finish may reach different nodes.
type pkCeremony struct {
	subject  string
	data     *webauthn.SessionData
	expires  time.Time
	attempts int
	smsSent  bool
}

// pkRecord is a pkCeremony as the store keeps it.
type pkRecord struct {
	Subject  string                `json:"sub"`
	Data     *webauthn.SessionData `json:"data,omitempty"`
	Expires  time.Time             `json:"exp"`
	Attempts int                   `json:"attempts,omitempty"`
	SMSSent  bool                  `json:"sms,omitempty"`
}

func (c *pkCeremony) record() *pkRecord {
	if c == nil {
		return nil
	}
	return &pkRecord{Subject: c.subject, Data: c.data, Expires: c.expires, Attempts: c.attempts, SMSSent: c.smsSent}
}

func (r *pkRecord) ceremony() *pkCeremony {
	if r == nil {
		return nil
	}
	return &pkCeremony{subject: r.Subject, data: r.Data, expires: r.Expires, attempts: r.Attempts, smsSent: r.SMSSent}
}

// passkeyRPFromIssuer derives the relying party from the issuer: its host
// when that is a name, nothing when it is an IP address.
func passkeyRPFromIssuer(issuer string) (string, []string) {
	u, err := url.Parse(issuer)
	if err != nil || u.Hostname() == "" || net.ParseIP(u.Hostname()) != nil {
		return "", nil
	}
	return u.Hostname(), []string{u.Scheme + "://" + u.Host}
}

func newPasskeys(cfg Config, dir string) (*passkeys, error) {
	pc := cfg.Passkeys
	if pc.Disabled {
		return nil, nil
	}
	rp, origins := pc.RPID, pc.Origins
	if rp == "" || len(origins) == 0 {
		drp, dorigins := passkeyRPFromIssuer(cfg.Issuer)
		if rp == "" {
			rp = drp
		}
		if len(origins) == 0 {
			origins = dorigins
		}
	}
	if rp == "" || len(origins) == 0 {
		return nil, nil // an IP issuer: browsers would refuse every ceremony
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID: rp, RPDisplayName: "rempart", RPOrigins: origins,
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			UserVerification: protocol.VerificationPreferred,
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
		},
		// No extension is requested or read; see the admin package.
		ExtensionsUnsolicitedOutputPolicy: protocol.UnsolicitedOutputPolicyIgnore,
	})
	if err != nil {
		return nil, fmt.Errorf("passkeys: %w", err)
	}
	k := &passkeys{wa: wa, now: cfg.Now, recent: pc.RecentLogin, users: map[string]*passkeyUser{}}
	if k.recent <= 0 {
		k.recent = 10 * time.Minute
	}
	if dir != "" {
		k.path = filepath.Join(dir, "passkeys.json")
		b, err := os.ReadFile(k.path)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("passkeys: %w", err)
		default:
			if err := json.Unmarshal(b, &k.users); err != nil {
				return nil, fmt.Errorf("passkeys: %s: %w", k.path, err)
			}
		}
	}
	return k, nil
}

// saveLocked writes the registry; the caller holds mu.
func (k *passkeys) saveLocked(users map[string]*passkeyUser) error {
	if k.path == "" {
		return nil
	}
	b, err := json.Marshal(users)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(k.path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(k.path), ".passkeys.*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
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
	return os.Rename(f.Name(), k.path)
}

// has reports whether subject has a passkey.
func (k *passkeys) has(subject string) bool {
	if k == nil {
		return false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	u := k.users[subject]
	return u != nil && len(u.Credentials) > 0
}

// offerPasskey is called once the password is right: when the customer has
// a passkey (and did not ask for the SMS code) it shows the passkey step
// instead of sending a code, and reports true.
func (p *Provider) offerPasskey(w http.ResponseWriter, r *http.Request, a *authRequest, u users.User, device bool, lang string) bool {
	if !p.passkeys.has(u.ID) {
		return false
	}
	expires := p.passkeys.now().Add(passkeyCeremonyTTL)
	err := p.pending.update(r.Context(), a.id, func(s *authRequest) error {
		s.passwordChecked(u, device) // no code is valid until one is sent
		s.pk = &pkCeremony{subject: u.ID, expires: expires}
		return nil
	})
	if err != nil {
		p.expired(w, lang)
		return true
	}
	p.renderPasskey(w, http.StatusOK, lang, "login", a.id, "")
	return true
}

// passkeyProblem answers a ceremony step with an RFC 9457 problem whose
// detail is the customer's message in their language (the page shows it).
func passkeyProblem(w http.ResponseWriter, status int, slug, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	problem.Write(w, problem.New(status, slug, msg))
}

func writeJSONStatus(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// passkeyLogin returns the login's passkey ceremony after checking the flow
// cookie; nil answers the request.
func (p *Provider) passkeyLogin(w http.ResponseWriter, r *http.Request) (*authRequest, *pkCeremony) {
	a, ok := p.checkFlow(r)
	if !ok || a.user == nil || p.passkeys == nil {
		passkeyProblem(w, http.StatusBadRequest, "login-expired", messages[pickLang(r, "")]["expired"])
		return nil, nil
	}
	c := a.pk
	if c == nil || c.subject != a.user.ID || p.passkeys.now().After(c.expires) {
		passkeyProblem(w, http.StatusBadRequest, "login-expired", messages[pickLang(r, a.lang)]["expired"])
		return nil, nil
	}
	return a, c
}

func (p *Provider) passkeyBegin(w http.ResponseWriter, r *http.Request) {
	a, c := p.passkeyLogin(w, r)
	if a == nil {
		return
	}
	k := p.passkeys
	k.mu.Lock()
	u := k.users[c.subject].clone()
	k.mu.Unlock()
	assertion, sd, err := k.wa.BeginLogin(u)
	if err != nil {
		p.log.ErrorContext(r.Context(), "passkey begin", slog.Any("err", err))
		passkeyProblem(w, http.StatusInternalServerError, "internal", "internal error")
		return
	}
	err = p.pending.update(r.Context(), a.id, func(s *authRequest) error {
		if s.pk == nil || s.pk.subject != c.subject {
			return errUnknownRequest
		}
		s.pk.data = sd
		return nil
	})
	if err != nil {
		passkeyProblem(w, http.StatusBadRequest, "login-expired", messages[pickLang(r, a.lang)]["expired"])
		return
	}
	writeJSONStatus(w, http.StatusOK, map[string]any{"publicKey": assertion.Response})
}

func (p *Provider) passkeyFinish(w http.ResponseWriter, r *http.Request) {
	a, c := p.passkeyLogin(w, r)
	if a == nil {
		return
	}
	lang := pickLang(r, a.lang)
	t := passkeyMessages[lang]
	addr := clientAddr(r)
	u, device := *a.user, a.device
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	var parsed *protocol.ParsedCredentialAssertionData
	if err == nil {
		parsed, err = protocol.ParseCredentialRequestResponseBytes(body)
	}
	// One answer per begun ceremony, and every answer counts, on whichever
	// node it lands: the challenge is taken and the attempt counted in one
	// atomic update of the request.
	var sd *webauthn.SessionData
	tooMany := false
	if uerr := p.pending.update(r.Context(), a.id, func(s *authRequest) error {
		if s.pk == nil || s.pk.subject != c.subject {
			return errUnknownRequest
		}
		sd = s.pk.data
		s.pk.data = nil
		s.pk.attempts++
		tooMany = s.pk.attempts > maxOTPAttempts
		return nil
	}); uerr != nil {
		passkeyProblem(w, http.StatusBadRequest, "login-expired", messages[lang]["expired"])
		return
	}
	k := p.passkeys
	k.mu.Lock()
	var cred *webauthn.Credential
	if err == nil && sd != nil && !tooMany {
		cred, err = k.wa.ValidateLogin(k.users[c.subject].clone(), *sd, parsed)
		if err == nil && cred.Authenticator.CloneWarning {
			err = errors.New("signature counter did not advance: the passkey may be cloned")
		}
		if err == nil {
			next := maps(k.users)
			pu := next[c.subject].clone()
			for i := range pu.Credentials {
				if bytes.Equal(pu.Credentials[i].ID, cred.ID) {
					pu.Credentials[i] = *cred
				}
			}
			next[c.subject] = pu
			if err = k.saveLocked(next); err == nil {
				k.users = next
			}
		}
	} else if err == nil {
		err = errors.New("no begun ceremony or too many attempts")
	}
	k.mu.Unlock()
	if err != nil {
		p.observe(RouteLoginPasskey, addr, u.ID, false, device)
		var pe *protocol.Error
		reason := err.Error()
		if errors.As(err, &pe) {
			reason = pe.Details + ": " + pe.DevInfo
		}
		p.log.WarnContext(r.Context(), "passkey refused", slog.String("account", u.ID), slog.String("client", addr.String()), slog.String("reason", reason))
		passkeyProblem(w, http.StatusUnauthorized, "bad-passkey", t["bad_passkey"])
		return
	}
	now := p.cfg.Now()
	var amr []string
	err = p.pending.update(r.Context(), a.id, func(s *authRequest) error {
		s.otpHash, s.pk = [32]byte{}, nil
		s.done, s.subject, s.authTime = true, u.ID, now
		s.amr = slices.Clone(passkeyAMR)
		if s.backup {
			s.amr, s.acr = append(s.amr, amrBackup), acrBackup
		}
		amr = s.amr
		s.profile = map[string]string{attrName: u.Name, attrPhone: u.Phone, attrEmail: u.Email}
		s.grant = randomID(16)
		return nil
	})
	if err != nil {
		passkeyProblem(w, http.StatusBadRequest, "login-expired", messages[lang]["expired"])
		return
	}
	p.observe(RouteLoginPasskey, addr, u.ID, true, device)
	p.log.InfoContext(r.Context(), "login", slog.String("account", u.ID), slog.String("client", addr.String()), slog.Bool("device", device), slog.String("factor", "passkey"))
	p.startBrowserSession(w, r, u, amr)
	method, nonce := "passkey", ""
	if slices.Contains(amr, amrBackup) {
		method = "passkey+backup"
		nonce, _ = p.deviceNonce(r, u.ID)
	} else {
		nonce = p.setDeviceCookie(w, r, u.ID)
		p.takeSnapshot(r.Context(), u, nonce)
	}
	p.writeDirectory(r.Context(), users.EventLogin, u.ID, a.id, "login", method, nonce)
	writeJSONStatus(w, http.StatusOK, map[string]string{"redirect": PathAuthorize + "/callback?id=" + url.QueryEscape(a.id)})
}

// registrationID is the store id of a browser's passkey registration.
func registrationID(sid string) string { return "pr:" + browserRecordID(sid) }

// saveRegistration stores a begun registration, replacing the browser's
// previous one.
func (p *Provider) saveRegistration(ctx context.Context, sid string, c *pkCeremony) error {
	b, err := json.Marshal(c.record())
	if err != nil {
		return err
	}
	id, now := registrationID(sid), p.cfg.Now()
	_ = p.logins.Delete(ctx, id)
	return p.logins.Create(ctx, session.Session{ID: id, Subject: id, CreatedAt: now, ExpiresAt: c.expires,
		Attrs: map[string]string{attrRequest: string(b)}})
}

// takeRegistration returns the browser's begun registration and deletes
// it: of two finishes on two nodes, only the one whose Delete succeeds
// gets it. Nil when there is none.
func (p *Provider) takeRegistration(ctx context.Context, sid string) *pkCeremony {
	id := registrationID(sid)
	s, err := p.logins.Get(ctx, id)
	if err != nil || p.logins.Delete(ctx, id) != nil {
		return nil
	}
	var rec pkRecord
	if json.Unmarshal([]byte(s.Attrs[attrRequest]), &rec) != nil {
		return nil
	}
	return rec.ceremony()
}

func maps(m map[string]*passkeyUser) map[string]*passkeyUser {
	c := make(map[string]*passkeyUser, len(m)+1)
	for k, v := range m {
		c[k] = v
	}
	return c
}

// loginSMS is the way out of the passkey step: it sends the SMS code, once
// per login, and shows the code step.
func (p *Provider) loginSMS(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	a, ok := p.checkFlow(r)
	if !ok || a.user == nil {
		p.expired(w, pickLang(r, ""))
		return
	}
	lang := pickLang(r, a.lang)
	u := *a.user
	first := false
	if a.pk != nil && !a.pk.smsSent {
		// Atomic: of two clicks on two nodes, one sends the first code.
		err := p.pending.update(r.Context(), a.id, func(s *authRequest) error {
			first = s.pk != nil && !s.pk.smsSent
			if first {
				s.pk.smsSent = true
			}
			return nil
		})
		if err != nil {
			p.expired(w, lang)
			return
		}
	}
	if !first {
		// The code step's "send a new code".
		p.resendOTP(w, r, a, u, lang)
		return
	}
	if err := p.sendOTP(r, a.id, u, lang); err != nil {
		p.expired(w, lang)
		return
	}
	p.render(w, http.StatusOK, pageData{Lang: lang, Step: "otp", ID: a.id, FormAction: a.redirectOrigin(), Hint: otpHint(lang, &u)})
}

// browserSession returns the browser's login session and its id.
func (p *Provider) browserSession(r *http.Request) (session.Session, string, bool) {
	c, err := r.Cookie(browserCookie)
	if err != nil || len(c.Value) >= 64 {
		return session.Session{}, "", false
	}
	s, err := p.sessions.Get(r.Context(), browserRecordID(c.Value))
	if err != nil {
		return session.Session{}, "", false
	}
	return s, c.Value, true
}

// recentSMSLogin returns the subject of a browser that logged in with an
// SMS code recently enough to register a passkey.
func (p *Provider) recentSMSLogin(r *http.Request) (session.Session, string, bool) {
	s, sid, ok := p.browserSession(r)
	if !ok || !slices.Contains(s.AMR, "otp") {
		return session.Session{}, "", false
	}
	at, _ := strconv.ParseInt(s.Attrs[attrAuthTime], 10, 64)
	if p.cfg.Now().Sub(time.Unix(at, 0)) > p.passkeys.recent {
		return session.Session{}, "", false
	}
	return s, sid, true
}

func (p *Provider) passkeyRegisterPage(w http.ResponseWriter, r *http.Request) {
	lang := pickLang(r, "")
	if p.passkeys == nil {
		http.NotFound(w, r)
		return
	}
	if _, _, ok := p.recentSMSLogin(r); !ok {
		p.renderPasskey(w, http.StatusUnauthorized, lang, "register", "", passkeyMessages[lang]["need_login"])
		return
	}
	p.renderPasskey(w, http.StatusOK, lang, "register", "", "")
}

func (p *Provider) passkeyRegisterBegin(w http.ResponseWriter, r *http.Request) {
	lang := pickLang(r, "")
	if p.passkeys == nil {
		http.NotFound(w, r)
		return
	}
	s, sid, ok := p.recentSMSLogin(r)
	if !ok {
		passkeyProblem(w, http.StatusUnauthorized, "login-required", passkeyMessages[lang]["need_login"])
		return
	}
	k := p.passkeys
	k.mu.Lock()
	u := k.users[s.Subject]
	if u == nil {
		h := make([]byte, 32)
		rand.Read(h)
		u = &passkeyUser{Handle: h, Name: s.Subject}
	}
	u = u.clone()
	k.mu.Unlock()
	if len(u.Credentials) >= maxPasskeys {
		passkeyProblem(w, http.StatusConflict, "too-many-passkeys", passkeyMessages[lang]["too_many"])
		return
	}
	creation, sd, err := k.wa.BeginRegistration(u,
		webauthn.WithExclusions(webauthn.Credentials(u.Credentials).CredentialDescriptors()))
	if err != nil {
		p.log.ErrorContext(r.Context(), "passkey register begin", slog.Any("err", err))
		passkeyProblem(w, http.StatusInternalServerError, "internal", "internal error")
		return
	}
	if err := p.saveRegistration(r.Context(), sid, &pkCeremony{subject: s.Subject, data: sd, expires: k.now().Add(passkeyCeremonyTTL)}); err != nil {
		p.log.ErrorContext(r.Context(), "passkey register begin", slog.Any("err", err))
		passkeyProblem(w, http.StatusInternalServerError, "internal", "internal error")
		return
	}
	writeJSONStatus(w, http.StatusOK, map[string]any{"publicKey": creation.Response})
}

func (p *Provider) passkeyRegisterFinish(w http.ResponseWriter, r *http.Request) {
	lang := pickLang(r, "")
	if p.passkeys == nil {
		http.NotFound(w, r)
		return
	}
	s, sid, ok := p.recentSMSLogin(r)
	if !ok {
		passkeyProblem(w, http.StatusUnauthorized, "login-required", passkeyMessages[lang]["need_login"])
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	var parsed *protocol.ParsedCredentialCreationData
	if err == nil {
		parsed, err = protocol.ParseCredentialCreationResponseBytes(body)
	}
	k := p.passkeys
	c := p.takeRegistration(r.Context(), sid)
	k.mu.Lock()
	if err == nil && (c == nil || c.subject != s.Subject || k.now().After(c.expires)) {
		err = errors.New("no begun registration")
	}
	var cred *webauthn.Credential
	if err == nil {
		u := k.users[s.Subject]
		if u == nil {
			u = &passkeyUser{Handle: c.data.UserID, Name: s.Subject}
		}
		u = u.clone()
		if cred, err = k.wa.CreateCredential(u, *c.data, parsed); err == nil {
			if len(u.Credentials) >= maxPasskeys {
				err = errors.New("too many passkeys")
			} else {
				u.Credentials = append(u.Credentials, *cred)
				next := maps(k.users)
				next[s.Subject] = u
				if err = k.saveLocked(next); err == nil {
					k.users = next
				}
			}
		}
	}
	k.mu.Unlock()
	if err != nil {
		var pe *protocol.Error
		reason := err.Error()
		if errors.As(err, &pe) {
			reason = pe.Details + ": " + pe.DevInfo
		}
		p.log.WarnContext(r.Context(), "passkey registration refused", slog.String("account", s.Subject), slog.String("reason", reason))
		passkeyProblem(w, http.StatusBadRequest, "bad-passkey", passkeyMessages[lang]["bad_passkey"])
		return
	}
	p.log.InfoContext(r.Context(), "passkey registered", slog.String("account", s.Subject))
	writeJSONStatus(w, http.StatusOK, map[string]string{"status": passkeyMessages[lang]["registered"]})
}

var passkeyMessages = map[string]map[string]string{
	"fr": {
		"login_title": "Confirmez avec votre clé d'accès",
		"login_hint":  "Utilisez la clé d'accès (passkey) enregistrée pour ce compte.",
		"use_passkey": "Utiliser ma clé d'accès",
		"use_sms":     "Recevoir plutôt un code par SMS",
		"reg_title":   "Enregistrer une clé d'accès",
		"reg_hint":    "La prochaine fois, confirmez votre connexion avec cette clé d'accès au lieu d'un code SMS.",
		"register":    "Enregistrer une clé d'accès",
		"bad_passkey": "La clé d'accès n'a pas été acceptée.",
		"need_login":  "Connectez-vous d'abord avec votre mot de passe et un code SMS.",
		"too_many":    "Ce compte a déjà le nombre maximal de clés d'accès.",
		"registered":  "Clé d'accès enregistrée.",
		"no_webauthn": "Ce navigateur ne prend pas en charge les clés d'accès.",
	},
	"en": {
		"login_title": "Confirm with your passkey",
		"login_hint":  "Use the passkey registered for this account.",
		"use_passkey": "Use my passkey",
		"use_sms":     "Get a code by text message instead",
		"reg_title":   "Register a passkey",
		"reg_hint":    "Next time, confirm your login with this passkey instead of a text-message code.",
		"register":    "Register a passkey",
		"bad_passkey": "The passkey was not accepted.",
		"need_login":  "Log in with your password and a text-message code first.",
		"too_many":    "This account already has the most passkeys allowed.",
		"registered":  "Passkey registered.",
		"no_webauthn": "This browser does not support passkeys.",
	},
}

// passkeyScript runs the passkey step and the registration page.
const passkeyScript = `
const $ = id => document.getElementById(id);
const enc = b => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const dec = s => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), c => c.charCodeAt(0));
const say = m => { const e = $('err'); e.textContent = m; e.hidden = !m; };
async function post(url, body) {
  const r = await fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body || {})});
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(j.detail || r.statusText);
  return j;
}
const main = $('passkey'), mode = main.dataset.mode, q = '?id=' + encodeURIComponent(main.dataset.id);
async function go() {
  try {
    if (mode === 'login') {
      const o = (await post('` + PathPasskeyBegin + `' + q)).publicKey;
      o.challenge = dec(o.challenge);
      (o.allowCredentials || []).forEach(c => { c.id = dec(c.id); });
      const c = await navigator.credentials.get({publicKey: o}), r = c.response;
      const f = await post('` + PathPasskeyFinish + `' + q, {id: c.id, rawId: enc(c.rawId), type: c.type,
        clientExtensionResults: c.getClientExtensionResults(), response: {clientDataJSON: enc(r.clientDataJSON),
        authenticatorData: enc(r.authenticatorData), signature: enc(r.signature), userHandle: r.userHandle ? enc(r.userHandle) : undefined}});
      location.assign(f.redirect);
    } else {
      const o = (await post('` + PathPasskeyRegisterBegin + `')).publicKey;
      o.challenge = dec(o.challenge); o.user.id = dec(o.user.id);
      (o.excludeCredentials || []).forEach(c => { c.id = dec(c.id); });
      const c = await navigator.credentials.create({publicKey: o}), r = c.response;
      const f = await post('` + PathPasskeyRegisterFinish + `', {id: c.id, rawId: enc(c.rawId), type: c.type,
        clientExtensionResults: c.getClientExtensionResults(), response: {clientDataJSON: enc(r.clientDataJSON),
        attestationObject: enc(r.attestationObject), transports: r.getTransports ? r.getTransports() : []}});
      say(''); $('done').textContent = f.status;
    }
  } catch (e) { say(e.message); }
}
$('go').addEventListener('click', go);
if (!window.PublicKeyCredential) { $('go').disabled = true; say(main.dataset.nowebauthn); }
`

var passkeyCSP = func() string {
	h := sha256.Sum256([]byte(passkeyScript))
	return "default-src 'none'; style-src 'unsafe-inline'; connect-src 'self'; script-src 'sha256-" +
		base64.StdEncoding.EncodeToString(h[:]) + "'; form-action 'self'; frame-ancestors 'none'"
}()

var passkeyTmpl = template.Must(template.New("passkey").Parse(`<!doctype html>
<html lang="{{.Lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem;line-height:1.5}
button{margin-top:1.5rem;font-size:1.1rem;padding:.6rem 1.2rem}
.error{color:#a00000;border-left:4px solid #a00000;padding-left:.5rem}
:focus{outline:3px solid #1a5fb4;outline-offset:2px}
</style>
</head>
<body>
<main id="passkey" data-mode="{{.Mode}}" data-id="{{.ID}}" data-nowebauthn="{{.T.no_webauthn}}">
<h1>{{.Title}}</h1>
<p>{{.Hint}}</p>
<p class="error" role="alert" id="err"{{if not .Error}} hidden{{end}}>{{.Error}}</p>
<button id="go" type="button">{{.Button}}</button>
<p id="done" role="status" aria-live="polite"></p>
{{if eq .Mode "login"}}
<form method="post" action="` + PathLoginSMS + `">
<input type="hidden" name="id" value="{{.ID}}">
<input type="hidden" name="lang" value="{{.Lang}}">
<button type="submit">{{.T.use_sms}}</button>
</form>
{{end}}
</main>
<script>{{.Script}}</script>
</body>
</html>
`))

func (p *Provider) renderPasskey(w http.ResponseWriter, status int, lang, mode, id, errMsg string) {
	t := passkeyMessages[lang]
	d := struct {
		Lang, Mode, ID, Error, Title, Hint, Button string
		T                                          map[string]string
		Script                                     template.JS
	}{Lang: lang, Mode: mode, ID: id, Error: errMsg, T: t, Script: template.JS(passkeyScript)}
	if mode == "login" {
		d.Title, d.Hint, d.Button = t["login_title"], t["login_hint"], t["use_passkey"]
	} else {
		d.Title, d.Hint, d.Button = t["reg_title"], t["reg_hint"], t["register"]
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", passkeyCSP)
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_ = passkeyTmpl.Execute(w, d)
}

func (p *Provider) passkeyRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+PathPasskeyBegin, p.passkeyBegin)
	mux.HandleFunc("POST "+PathPasskeyFinish, p.passkeyFinish)
	mux.HandleFunc("POST "+PathLoginSMS, p.loginSMS)
	mux.HandleFunc("GET "+PathPasskeyRegister, p.passkeyRegisterPage)
	mux.HandleFunc("POST "+PathPasskeyRegisterBegin, p.passkeyRegisterBegin)
	mux.HandleFunc("POST "+PathPasskeyRegisterFinish, p.passkeyRegisterFinish)
}
