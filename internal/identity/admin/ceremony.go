package admin

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/rempart/rempart/internal/problem"
)

// Paths of the console and its ceremonies on the ops listener.
const (
	PathPrefix      = "/ops/admin/"
	PathLogin       = "/ops/admin/login"
	PathLoginBegin  = "/ops/admin/login/begin"
	PathLoginFinish = "/ops/admin/login/finish"
	PathEnrol       = "/ops/admin/enrol"
	PathEnrolBegin  = "/ops/admin/enrol/begin"
	PathEnrolFinish = "/ops/admin/enrol/finish"
	PathLogout      = "/ops/admin/logout"
	// PathSession (GET) tells who is logged in; PathEnrolToken (POST) lets
	// a logged-in admin issue a token to enrol another admin. Both need an
	// admin session: the machine token is refused.
	PathSession    = "/ops/admin/session"
	PathEnrolToken = "/ops/admin/enrol-token"
)

// maxBody bounds a ceremony request: an attestation with a certificate
// chain is a few kilobytes.
const maxBody = 64 << 10

var errBusy = errors.New("too many ceremonies in progress")

func (a *Admins) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathLogin, a.page("login"))
	mux.HandleFunc("GET "+PathEnrol, a.page("enrol"))
	mux.HandleFunc("POST "+PathEnrolBegin, a.enrolBegin)
	mux.HandleFunc("POST "+PathEnrolFinish, a.enrolFinish)
	mux.HandleFunc("POST "+PathLoginBegin, a.loginBegin)
	mux.HandleFunc("POST "+PathLoginFinish, a.loginFinish)
	mux.HandleFunc("POST "+PathLogout, a.logout)
	mux.HandleFunc("GET "+PathSession, a.whoami)
	mux.HandleFunc("POST "+PathEnrolToken, a.enrolToken)
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// refuse answers a failed ceremony. The client hears only a stable slug;
// why it failed goes to the audit log.
func (a *Admins) refuse(w http.ResponseWriter, r *http.Request, status int, slug, detail string, why error, attrs ...any) {
	attrs = append(attrs, slog.String("path", r.URL.Path), slog.String("client", r.RemoteAddr))
	if why != nil {
		attrs = append(attrs, slog.String("reason", why.Error()))
	}
	a.log.WarnContext(r.Context(), "admin ceremony refused", attrs...)
	problem.Write(w, problem.New(status, slug, detail))
}

func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return errors.New("content type must be application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data")
	}
	return nil
}

// validName accepts a display name of 1 to 64 printable characters.
func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !unicode.IsPrint(c) {
			return false
		}
	}
	return true
}

type beginResponse struct {
	Ceremony  string `json:"ceremony"`
	PublicKey any    `json:"publicKey"`
}

type finishRequest struct {
	Ceremony   string          `json:"ceremony"`
	Credential json.RawMessage `json:"credential"`
}

func (a *Admins) enrolBegin(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Token string `json:"token"`
		Name  string `json:"name"`
	}
	if err := decode(w, r, &req); err != nil {
		problem.Write(w, problem.New(http.StatusBadRequest, "malformed-json", `body must be {"token","name"}`))
		return
	}
	req.Name = strings.TrimSpace(req.Name)
	if !validName(req.Name) {
		problem.Write(w, problem.New(http.StatusBadRequest, "invalid-field", "name must be 1 to 64 printable characters").WithField("name"))
		return
	}
	h, ok := parseToken(enrolPrefix, req.Token)
	if !ok {
		a.refuse(w, r, http.StatusUnauthorized, "invalid-enrol-token", "the enrolment token is not valid", errors.New("malformed token"))
		return
	}
	if err := checkEnrolToken(a.dir, h, a.opts.Now()); err != nil {
		a.refuse(w, r, http.StatusUnauthorized, "invalid-enrol-token", "the enrolment token is not valid", err)
		return
	}
	a.mu.Lock()
	taken := a.byNameLocked(req.Name) != nil
	var exclude []protocol.CredentialDescriptor
	for _, ad := range a.admins {
		exclude = append(exclude, webauthn.Credentials(ad.Credentials).CredentialDescriptors()...)
	}
	a.mu.Unlock()
	if taken {
		problem.Write(w, problem.New(http.StatusConflict, "admin-exists", "an admin of that name exists").WithField("name"))
		return
	}
	id := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		problem.Write(w, problem.New(http.StatusInternalServerError, "internal", "no randomness"))
		return
	}
	ad := &Admin{ID: id, Name: req.Name}
	// Excluding the keys already enrolled stops one key from being enrolled
	// twice (the authenticator itself refuses).
	creation, sd, err := a.wa.BeginRegistration(ad, webauthn.WithExclusions(exclude))
	if err != nil {
		problem.Write(w, problem.New(http.StatusInternalServerError, "internal", "cannot begin enrolment"))
		a.log.ErrorContext(r.Context(), "begin registration", slog.Any("err", err))
		return
	}
	cid, err := a.newCeremony(&ceremony{kind: "enrol", data: *sd, admin: ad, token: h})
	if err != nil {
		w.Header().Set("Retry-After", "10")
		problem.Write(w, problem.New(http.StatusServiceUnavailable, "busy", "too many ceremonies in progress"))
		return
	}
	writeJSON(w, http.StatusOK, beginResponse{Ceremony: cid, PublicKey: creation.Response})
}

func (a *Admins) enrolFinish(w http.ResponseWriter, r *http.Request) {
	var req finishRequest
	if err := decode(w, r, &req); err != nil {
		problem.Write(w, problem.New(http.StatusBadRequest, "malformed-json", `body must be {"ceremony","credential"}`))
		return
	}
	a.mu.Lock()
	c := a.takeCeremonyLocked(req.Ceremony, "enrol")
	a.mu.Unlock()
	if c == nil {
		a.refuse(w, r, http.StatusUnauthorized, "ceremony-expired", "start the enrolment again", errors.New("unknown or expired ceremony"))
		return
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(req.Credential)
	if err != nil {
		a.refuse(w, r, http.StatusBadRequest, "invalid-credential", "the authenticator's answer is malformed", err)
		return
	}
	cred, err := a.wa.CreateCredential(c.admin, c.data, parsed)
	if err != nil {
		a.refuse(w, r, http.StatusUnauthorized, "enrolment-refused", "the authenticator's answer was refused", withDevInfo(err), slog.String("admin", c.admin.Name))
		return
	}
	// The token is spent only now, by the enrolment that completes: a
	// cancelled ceremony does not burn it, and of two racing, one wins.
	now := a.opts.Now()
	if err := spendEnrolToken(a.dir, c.token, now); err != nil {
		a.refuse(w, r, http.StatusUnauthorized, "invalid-enrol-token", "the enrolment token is not valid", err)
		return
	}
	a.mu.Lock()
	if a.byNameLocked(c.admin.Name) != nil || a.credentialOwnerLocked(cred.ID) != nil {
		a.mu.Unlock()
		problem.Write(w, problem.New(http.StatusConflict, "admin-exists", "that admin or key is already enrolled"))
		return
	}
	ad := &Admin{ID: c.admin.ID, Name: c.admin.Name, Created: now.UTC(), Credentials: []webauthn.Credential{*cred}}
	next := append(slices.Clone(a.admins), ad)
	if err := saveAdmins(a.dir, next); err != nil {
		a.mu.Unlock()
		a.log.ErrorContext(r.Context(), "save admins", slog.Any("err", err))
		problem.Write(w, problem.New(http.StatusInternalServerError, "internal", "cannot store the admin"))
		return
	}
	a.admins = next
	a.mu.Unlock()
	a.log.WarnContext(r.Context(), "admin enrolled", slog.String("admin", ad.Name), slog.String("client", r.RemoteAddr),
		slog.String("attestation", cred.AttestationFormat))
	a.setSession(w, ad.ID)
	writeJSON(w, http.StatusOK, map[string]string{"admin": ad.Name})
}

func (a *Admins) credentialOwnerLocked(id []byte) *Admin {
	for _, ad := range a.admins {
		for _, c := range ad.Credentials {
			if bytes.Equal(c.ID, id) {
				return ad
			}
		}
	}
	return nil
}

func (a *Admins) loginBegin(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
	}
	if err := decode(w, r, &req); err != nil {
		problem.Write(w, problem.New(http.StatusBadRequest, "malformed-json", `body must be {"name"}`))
		return
	}
	a.mu.Lock()
	ad := a.byNameLocked(strings.TrimSpace(req.Name))
	var snapshot *Admin
	if ad != nil {
		snapshot = ad.clone()
	}
	a.mu.Unlock()
	if snapshot == nil || len(snapshot.Credentials) == 0 {
		a.refuse(w, r, http.StatusUnauthorized, "login-refused", "login refused", errors.New("unknown admin"), slog.String("admin", req.Name))
		return
	}
	assertion, sd, err := a.wa.BeginLogin(snapshot)
	if err != nil {
		problem.Write(w, problem.New(http.StatusInternalServerError, "internal", "cannot begin login"))
		a.log.ErrorContext(r.Context(), "begin login", slog.Any("err", err))
		return
	}
	cid, err := a.newCeremony(&ceremony{kind: "login", data: *sd, adminID: snapshot.ID})
	if err != nil {
		w.Header().Set("Retry-After", "10")
		problem.Write(w, problem.New(http.StatusServiceUnavailable, "busy", "too many ceremonies in progress"))
		return
	}
	writeJSON(w, http.StatusOK, beginResponse{Ceremony: cid, PublicKey: assertion.Response})
}

func (a *Admins) loginFinish(w http.ResponseWriter, r *http.Request) {
	var req finishRequest
	if err := decode(w, r, &req); err != nil {
		problem.Write(w, problem.New(http.StatusBadRequest, "malformed-json", `body must be {"ceremony","credential"}`))
		return
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(req.Credential)
	// The whole check runs under the lock so two assertions from one key
	// cannot both pass against the same stored signature counter.
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.takeCeremonyLocked(req.Ceremony, "login")
	if c == nil {
		a.refuse(w, r, http.StatusUnauthorized, "ceremony-expired", "start the login again", errors.New("unknown or expired ceremony"))
		return
	}
	if err != nil {
		a.refuse(w, r, http.StatusBadRequest, "invalid-credential", "the authenticator's answer is malformed", err)
		return
	}
	ad := a.byIDLocked(c.adminID)
	if ad == nil {
		a.refuse(w, r, http.StatusUnauthorized, "login-refused", "login refused", errors.New("admin removed"))
		return
	}
	snapshot := ad.clone()
	cred, err := a.wa.ValidateLogin(snapshot, c.data, parsed)
	if err != nil {
		a.refuse(w, r, http.StatusUnauthorized, "login-refused", "login refused", withDevInfo(err), slog.String("admin", ad.Name))
		return
	}
	if cred.Authenticator.CloneWarning {
		// The signature counter did not advance: two authenticators hold
		// this credential's key. Refuse, and leave the stored counter where
		// it is so the genuine key, whose counter is ahead, keeps working.
		a.log.ErrorContext(r.Context(), "admin login refused: signature counter went backwards, the key may be cloned",
			slog.String("admin", ad.Name), slog.String("credential", b64.EncodeToString(cred.ID)),
			slog.Uint64("counter", uint64(parsed.Response.AuthenticatorData.Counter)), slog.String("client", r.RemoteAddr))
		problem.Write(w, problem.New(http.StatusUnauthorized, "login-refused", "login refused"))
		return
	}
	next := ad.clone()
	for i := range next.Credentials {
		if bytes.Equal(next.Credentials[i].ID, cred.ID) {
			next.Credentials[i] = *cred
		}
	}
	all := slices.Clone(a.admins)
	for i := range all {
		if bytes.Equal(all[i].ID, next.ID) {
			all[i] = next
		}
	}
	if err := saveAdmins(a.dir, all); err != nil {
		// A counter that is not stored would let a clone replay past it.
		a.log.ErrorContext(r.Context(), "save admins", slog.Any("err", err))
		problem.Write(w, problem.New(http.StatusInternalServerError, "internal", "cannot record the login"))
		return
	}
	a.admins = all
	a.log.InfoContext(r.Context(), "admin login", slog.String("admin", ad.Name), slog.String("client", r.RemoteAddr))
	a.setSession(w, ad.ID)
	writeJSON(w, http.StatusOK, map[string]string{"admin": ad.Name})
}

func (ad *Admin) clone() *Admin {
	c := *ad
	c.Credentials = slices.Clone(ad.Credentials)
	return &c
}

// withDevInfo adds the library's developer detail (which check failed) to
// an error for the audit log.
func withDevInfo(err error) error {
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.DevInfo != "" {
		return errors.New(pe.Details + ": " + pe.DevInfo)
	}
	return err
}

// logout ends the admin's sessions, not only this browser's cookie: a
// copied or stolen cookie dies with it.
func (a *Admins) logout(w http.ResponseWriter, r *http.Request) {
	if s, ok := a.sessionFrom(r); ok && a.originOK(r) {
		a.mu.Lock()
		ad := a.byIDLocked(s.admin)
		var err error
		if ad != nil {
			ad.LoggedOut = a.opts.Now()
			err = saveAdmins(a.dir, a.admins)
		}
		a.mu.Unlock()
		if err != nil {
			a.refuse(w, r, http.StatusInternalServerError, "logout-failed", "the logout could not be recorded; the session is still valid", err)
			return
		}
		a.log.Info("admin logged out", "admin", ad.Name)
	}
	a.clearSession(w)
	w.WriteHeader(http.StatusNoContent)
}

// needSession answers 401 unless r has an admin session (not the machine
// token) from an allowed origin.
func (a *Admins) needSession(w http.ResponseWriter, r *http.Request) (*Admin, bool) {
	s, ok := a.sessionFrom(r)
	if !ok || !a.originOK(r) {
		a.unauthorized(w, r)
		return nil, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ad := a.byIDLocked(s.admin)
	if ad == nil {
		a.unauthorized(w, r)
		return nil, false
	}
	return ad.clone(), true
}

func (a *Admins) whoami(w http.ResponseWriter, r *http.Request) {
	ad, ok := a.needSession(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"admin": ad.Name})
}

func (a *Admins) enrolToken(w http.ResponseWriter, r *http.Request) {
	ad, ok := a.needSession(w, r)
	if !ok {
		return
	}
	tok, exp, err := a.IssueEnrolToken()
	if err != nil {
		a.log.ErrorContext(r.Context(), "issue enrolment token", slog.Any("err", err))
		problem.Write(w, problem.New(http.StatusInternalServerError, "internal", "cannot issue a token"))
		return
	}
	a.log.WarnContext(r.Context(), "admin enrolment token issued", slog.String("by", ad.Name))
	writeJSON(w, http.StatusOK, map[string]any{"token": tok, "expires": exp.Format(time.RFC3339)})
}
