package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"math/big"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/rempart/rempart/internal/identity/users"
	"github.com/rempart/rempart/internal/request"
	"github.com/rempart/rempart/internal/session"
	"github.com/rempart/rempart/internal/waitroom"
)

// Cookies of the login flow.
const (
	flowCookie    = "rempart_flow" // binds a login to the browser that started it
	browserCookie = "rempart_sso"  // a browser session: later logins skip the form
)

// Routes reported to the LoginObserver.
const (
	RouteLoginPassword = "login-password"
	RouteLoginOTP      = "login-otp"
)

// maxOTPAttempts is how many wrong codes one login tolerates before the
// customer has to start again with the password.
const maxOTPAttempts = 5

var langMatcher = language.NewMatcher([]language.Tag{language.French, language.English})

// pickLang chooses French or English: an explicit ?lang= or form field, then
// the app's ui_locales, then Accept-Language; French when nothing says.
func pickLang(r *http.Request, uiLocale string) string {
	if l := r.FormValue("lang"); l == "fr" || l == "en" {
		return l
	}
	prefs := []string{uiLocale, r.Header.Get("Accept-Language")}
	for _, p := range prefs {
		if p == "" {
			continue
		}
		tags, _, err := language.ParseAcceptLanguage(p)
		if err != nil || len(tags) == 0 {
			continue
		}
		_, i, conf := langMatcher.Match(tags...)
		if conf > language.No {
			return []string{"fr", "en"}[i]
		}
	}
	return "fr"
}

var messages = map[string]map[string]string{
	"fr": {
		"title":       "Connexion à votre banque",
		"user":        "Identifiant client",
		"password":    "Mot de passe",
		"continue":    "Continuer",
		"otp":         "Code reçu par SMS",
		"otp_hint":    "Nous avons envoyé un code à 6 chiffres au %s.",
		"verify":      "Valider",
		"bad_creds":   "Identifiant ou mot de passe incorrect.",
		"bad_otp":     "Code incorrect ou expiré.",
		"too_many":    "Trop d'essais. Recommencez avec votre mot de passe.",
		"throttled":   "Trop de tentatives pour ce compte. Réessayez dans %d secondes.",
		"busy":        "Le service de connexion est très sollicité. Réessayez dans %d secondes : votre identifiant reste saisi. Les paiements par carte et les retraits restent disponibles.",
		"stepped":     "Plusieurs mots de passe erronés ont été saisis pour ce compte depuis des appareils que nous ne connaissons pas. Pour le protéger, ce navigateur fait un court calcul avant que votre mot de passe soit vérifié : saisissez-le à nouveau pendant ce temps.",
		"working":     "Calcul de sécurité en cours…",
		"ready":       "Prêt : vous pouvez continuer.",
		"waiting":     "Prêt dans %s secondes.",
		"nojs":        "Cette étape demande JavaScript. Activez-le, ou connectez-vous depuis l'appareil que vous utilisez d'habitude ou depuis l'application de la banque.",
		"nocrypto":    "Ce navigateur ne peut pas faire le calcul (il faut un navigateur récent et une connexion sécurisée). Utilisez l'application de la banque ou un autre navigateur.",
		"code_capped": "Trop de codes erronés pour ce compte aujourd'hui. Connectez-vous depuis l'appareil que vous utilisez d'habitude, ou réessayez dans %d heures.",
		"resend":      "Envoyer un nouveau code",
		"forgot":      "Mot de passe oublié ?",
		"forgot_text": "Cette page de connexion ne change pas les mots de passe : c'est votre banque qui le fait. Appelez le service client au numéro inscrit au dos de votre carte, ou passez en agence avec une pièce d'identité. Personne de la banque ne vous demandera jamais votre mot de passe ni un code reçu par SMS.",
		"forgot_go":   "Choisir un nouveau mot de passe sur le site de la banque",
		"back":        "Revenir à la connexion",
		"cancel":      "Annuler et revenir à l'application",
		"resent":      "Un nouveau code a été envoyé.",
		"resend_wait": "Un nouveau code pourra être envoyé dans %d secondes.",
		"resend_max":  "Plus de nouveau code possible pour cette connexion. Recommencez avec votre mot de passe si le code n'arrive pas.",
		"expired":     "Cette demande de connexion a expiré. Retournez dans l'application pour recommencer.",
		"sms":         "Code de connexion : %s. Ne le communiquez jamais, votre banque ne vous le demandera pas.",
		"other_lang":  "English",
		"other_code":  "en",
		"skip":        "Aller au formulaire",
		"logout_q":    "Vous déconnecter de votre banque sur ce navigateur ?",
		"logout":      "Se déconnecter",
		"logged_out":  "Vous êtes déconnecté. Vous pouvez fermer cette page.",
	},
	"en": {
		"title":       "Log in to your bank",
		"user":        "Customer ID",
		"password":    "Password",
		"continue":    "Continue",
		"otp":         "Code received by text message",
		"otp_hint":    "We sent a 6-digit code to %s.",
		"verify":      "Verify",
		"bad_creds":   "Wrong customer ID or password.",
		"bad_otp":     "Wrong or expired code.",
		"too_many":    "Too many attempts. Start again with your password.",
		"throttled":   "Too many attempts on this account. Try again in %d seconds.",
		"busy":        "The login service is very busy. Try again in %d seconds: your customer ID stays filled in. Card payments and cash withdrawals still work.",
		"stepped":     "Several wrong passwords were typed for this account from devices we do not know. To protect it, this browser does a short calculation before your password is checked: type your password again meanwhile.",
		"working":     "Security check in progress…",
		"ready":       "Ready: you can continue.",
		"waiting":     "Ready in %s seconds.",
		"nojs":        "This step needs JavaScript. Turn it on, or log in from the device you usually use or from the bank's app.",
		"nocrypto":    "This browser cannot do the calculation (it needs a recent browser and a secure connection). Use the bank's app or another browser.",
		"code_capped": "Too many wrong codes for this account today. Log in from the device you usually use, or try again in %d hours.",
		"resend":      "Send a new code",
		"forgot":      "Forgot your password?",
		"forgot_text": "This login page does not change passwords: your bank does. Call customer service on the number on the back of your card, or visit a branch with an identity document. Nobody from the bank will ever ask for your password or for a code sent by SMS.",
		"forgot_go":   "Choose a new password on the bank's site",
		"back":        "Back to the login",
		"cancel":      "Cancel and go back to the app",
		"resent":      "A new code was sent.",
		"resend_wait": "A new code can be sent in %d seconds.",
		"resend_max":  "No more new codes for this login. Start again with your password if the code does not arrive.",
		"expired":     "This login request has expired. Go back to the app to start again.",
		"sms":         "Login code: %s. Never share it; your bank will never ask for it.",
		"other_lang":  "Français",
		"other_code":  "fr",
		"skip":        "Skip to the form",
		"logout_q":    "Log out of your bank in this browser?",
		"logout":      "Log out",
		"logged_out":  "You are logged out. You may close this page.",
	},
}

type pageData struct {
	Lang, Step, ID, Error, Hint, User string
	// ForgotLink is the password step's "forgot" link; BackLink and
	// ResetURL the forgot page's way back and the bank's reset page.
	ForgotLink, BackLink, ResetURL string
	T                              map[string]string
	OtherLink                      string
	// Hidden are the logout form's fields; FormAction is one more origin
	// the form may end up at (the app's post-logout redirect).
	Hidden     map[string]string
	FormAction string
	// Challenge and Bits are a stepped login's proof of work, which the
	// page's script solves into the "pow" field; Wait is how many seconds
	// it keeps the button off afterwards. Nonce lets that script run.
	Challenge  string
	Bits, Wait int
	Nonce      string
	Info       string // a non-error notice, e.g. a new code was sent
}

var loginTmpl = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="{{.Lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.T.title}}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem;line-height:1.5}
label{display:block;margin-top:1rem;font-weight:600}
input{font-size:1.1rem;padding:.5rem;width:100%;box-sizing:border-box}
button{margin-top:1.5rem;font-size:1.1rem;padding:.6rem 1.2rem}
.error{color:#a00000;border-left:4px solid #a00000;padding-left:.5rem}
button.link{background:none;border:none;color:#1a5fb4;text-decoration:underline;padding:0;font-size:1rem;margin-top:1rem;cursor:pointer}
:focus{outline:3px solid #1a5fb4;outline-offset:2px}
</style>
</head>
<body>
<a href="#main">{{.T.skip}}</a>
<main id="main">
<h1>{{.T.title}}</h1>
<p><a href="{{.OtherLink}}" lang="{{.T.other_code}}" hreflang="{{.T.other_code}}">{{.T.other_lang}}</a></p>
{{if .Error}}<p class="error" role="alert" id="err">{{.Error}}</p>{{end}}
{{if .Info}}<p role="status" id="info">{{.Info}}</p>{{end}}
{{if eq .Step "password"}}
<form method="post" action="/login/password">
<input type="hidden" name="id" value="{{.ID}}">
<input type="hidden" name="lang" value="{{.Lang}}">
<label for="username">{{.T.user}}</label>
<input id="username" name="username" autocomplete="username" required value="{{.User}}"{{if .Error}} aria-describedby="err"{{end}}>
<label for="password">{{.T.password}}</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
{{if .Challenge}}<input type="hidden" name="pow" id="pow" value="">
<p id="powstatus" role="status" data-challenge="{{.Challenge}}" data-bits="{{.Bits}}" data-wait="{{.Wait}}"
 data-ready="{{.T.ready}}" data-waiting="{{.T.waiting}}" data-nocrypto="{{.T.nocrypto}}">{{.T.working}}</p>
<noscript><p>{{.T.nojs}}</p></noscript>
{{end}}<button type="submit" id="go"{{if .Challenge}} disabled{{end}}>{{.T.continue}}</button>
</form>
<p><a href="{{.ForgotLink}}" id="forgot">{{.T.forgot}}</a></p>
{{template "cancel" .}}
{{if .Challenge}}<script nonce="{{.Nonce}}">
(async function () {
  var st = document.getElementById("powstatus"), btn = document.getElementById("go"), t0 = Date.now();
  var ch = st.dataset.challenge, bits = +st.dataset.bits, wait = +st.dataset.wait;
  if (!window.crypto || !crypto.subtle || !window.TextEncoder) { st.textContent = st.dataset.nocrypto; return; }
  var enc = new TextEncoder(), whole = Math.floor(bits / 8), rest = bits % 8;
  function enough(h) {
    for (var i = 0; i < whole; i++) if (h[i] !== 0) return false;
    return rest === 0 || (h[whole] >> (8 - rest)) === 0;
  }
  search: for (var base = 0; ; base += 512) {
    var batch = [];
    for (var j = 0; j < 512; j++) batch.push(crypto.subtle.digest("SHA-256", enc.encode(ch + "." + (base + j))));
    var sums = await Promise.all(batch);
    for (var k = 0; k < sums.length; k++) {
      if (enough(new Uint8Array(sums[k]))) { document.getElementById("pow").value = ch + "." + (base + k); break search; }
    }
  }
  function tick() {
    var left = Math.ceil((t0 + wait * 1000 - Date.now()) / 1000);
    if (left > 0) { st.textContent = st.dataset.waiting.replace("%s", left); setTimeout(tick, 1000); return; }
    btn.disabled = false; st.textContent = st.dataset.ready;
  }
  tick();
})();
</script>{{end}}
{{else if eq .Step "otp"}}
<form method="post" action="/login/otp">
<input type="hidden" name="id" value="{{.ID}}">
<input type="hidden" name="lang" value="{{.Lang}}">
<p id="hint">{{.Hint}}</p>
<label for="code">{{.T.otp}}</label>
<input id="code" name="code" inputmode="numeric" pattern="[0-9]{6}" maxlength="6" autocomplete="one-time-code" required aria-describedby="hint{{if .Error}} err{{end}}"{{if .Error}} aria-invalid="true"{{end}}>
<button type="submit">{{.T.verify}}</button>
</form>
<form method="post" action="/login/sms">
<input type="hidden" name="id" value="{{.ID}}">
<input type="hidden" name="lang" value="{{.Lang}}">
<button type="submit" class="link">{{.T.resend}}</button>
</form>
{{template "cancel" .}}
{{else if eq .Step "forgot"}}
<p>{{.T.forgot_text}}</p>
{{if .ResetURL}}<p><a href="{{.ResetURL}}" id="reset">{{.T.forgot_go}}</a></p>{{end}}
{{if .ID}}<p><a href="{{.BackLink}}" id="back">{{.T.back}}</a></p>{{end}}
{{else if eq .Step "logout"}}
<form method="post" action="/oauth/end_session">
{{range $k, $v := .Hidden}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}<input type="hidden" name="lang" value="{{.Lang}}">
<p>{{.T.logout_q}}</p>
<button type="submit">{{.T.logout}}</button>
</form>
{{else if eq .Step "logged_out"}}
<p role="status">{{.T.logged_out}}</p>
{{end}}
</main>
</body>
</html>
{{define "cancel"}}<form method="post" action="/login/cancel">
<input type="hidden" name="id" value="{{.ID}}">
<input type="hidden" name="lang" value="{{.Lang}}">
<button type="submit" class="link" id="cancel">{{.T.cancel}}</button>
</form>{{end}}
`))

func (p *Provider) render(w http.ResponseWriter, status int, d pageData) {
	d.T = messages[d.Lang]
	if d.Step == "password" {
		d.ForgotLink = PathLogin + "/forgot?" + url.Values{"id": {d.ID}, "lang": {d.Lang}}.Encode()
	}
	if d.OtherLink == "" {
		q := url.Values{"id": {d.ID}, "lang": {d.T["other_code"]}}
		d.OtherLink = PathLogin + "?" + q.Encode()
	}
	formAction := "'self'"
	if d.FormAction != "" {
		formAction += " " + d.FormAction
	}
	csp := "default-src 'none'; style-src 'unsafe-inline'; form-action " + formAction + "; frame-ancestors 'none'"
	if d.Challenge != "" {
		d.Nonce = randomID(16)
		csp += "; script-src 'nonce-" + d.Nonce + "'"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", csp)
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	_ = loginTmpl.Execute(w, d)
}

func (p *Provider) expired(w http.ResponseWriter, lang string) {
	p.render(w, http.StatusBadRequest, pageData{Lang: lang, Step: "none", Error: messages[lang]["expired"]})
}

// clientAddr is the real client address the gateway established, or the
// connection's peer outside the gateway.
func clientAddr(r *http.Request) netip.Addr {
	if info := request.From(r.Context()); info != nil && info.Client.IsValid() {
		return info.Client
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func (p *Provider) loginPage(w http.ResponseWriter, r *http.Request) {
	a, ok := p.checkFlow(r)
	if !ok {
		p.expired(w, pickLang(r, ""))
		return
	}
	p.pending.show(r.Context(), a)
	lang := pickLang(r, a.lang)
	// A live browser session finishes the login without the form: only
	// this browser's own request, checked above, and only as the app's
	// prompt, max_age and id_token_hint allow.
	if s, _, ok := p.browserSession(r); ok && a.allowsSSO(s, p.cfg.Now()) {
		if p.finishFromSession(r.Context(), a.id, s) == nil {
			http.Redirect(w, r, PathAuthorize+"/callback?id="+url.QueryEscape(a.id), http.StatusSeeOther)
			return
		}
	}
	if a.promptNone {
		// No page may be shown: the app learns that a login is needed.
		p.pending.remove(r.Context(), a.id)
		op.AuthRequestError(w, r, a, oidc.ErrLoginRequired(), p.op)
		return
	}
	step := "password"
	if a.user != nil {
		step = "otp"
	}
	p.render(w, http.StatusOK, pageData{Lang: lang, Step: step, ID: a.id, FormAction: a.redirectOrigin(), Hint: otpHint(lang, a.user)})
}

func otpHint(lang string, u *users.User) string {
	if u == nil {
		return ""
	}
	return fmt.Sprintf(messages[lang]["otp_hint"], maskPhone(u.Phone))
}

// maskPhone shows only the last two digits.
func maskPhone(ph string) string {
	digits := 0
	for _, c := range ph {
		if c >= '0' && c <= '9' {
			digits++
		}
	}
	var b strings.Builder
	seen := 0
	for _, c := range ph {
		if c >= '0' && c <= '9' {
			seen++
			if seen <= digits-2 && seen > 2 {
				b.WriteByte('*')
				continue
			}
		}
		b.WriteRune(c)
	}
	return b.String()
}

// flowKey carries the browser's flow cookie value from bindBrowser to
// CreateAuthRequest.
type flowKey struct{}

// clientKey carries the client's address from bindBrowser to
// CreateAuthRequest, for the pending table's per-source bounds.
type clientKey struct{}

// sourceOf returns the units of the pending table's bounds for a client:
// its address (IPv6: its /64) and its network (/24, /48).
func sourceOf(a netip.Addr) (source, prefix netip.Prefix) {
	if !a.IsValid() {
		return netip.Prefix{}, netip.Prefix{}
	}
	a = a.Unmap()
	bits, netBits := 32, 24
	if a.Is6() {
		bits, netBits = 64, 48
	}
	source, _ = a.Prefix(bits)
	prefix, _ = a.Prefix(netBits)
	return source, prefix
}

// flowCookieLen is the length of a flow cookie's value, randomID(24).
const flowCookieLen = 32

// bindBrowser gives the browser its flow cookie on its answer to
// /oauth/authorize, the redirect to the login page, and hands the value to
// CreateAuthRequest through the context: the request op stores then
// belongs to this browser, and a login link sent to anyone else is dead.
// A browser that already has a flow cookie keeps it, so logins in several
// tabs all stay valid.
func (p *Provider) bindBrowser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := ""
		for _, c := range r.Cookies() {
			if c.Name == flowCookie && len(c.Value) == flowCookieLen {
				v = c.Value
				break
			}
		}
		if v == "" {
			v = randomID(24)
		}
		// The cookie lives as long as the newest request it binds, which
		// outlives every older one.
		http.SetCookie(w, &http.Cookie{Name: flowCookie, Value: v, Path: "/", HttpOnly: true,
			SameSite: http.SameSiteLaxMode, Secure: strings.HasPrefix(p.cfg.Issuer, "https://"),
			MaxAge: int(pendingTTL / time.Second)})
		ctx := context.WithValue(r.Context(), flowKey{}, v)
		next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, clientKey{}, clientAddr(r))))
	})
}

// flowHash is what a login request keeps of its browser's flow cookie.
func flowHash(v string) [32]byte { return sha256.Sum256([]byte("rempart-flow\x00" + v)) }

// checkFlow loads the login and checks it belongs to this browser: one of
// the flow cookies it sends is the one the request was created with.
func (p *Provider) checkFlow(r *http.Request) (*authRequest, bool) {
	a, err := p.pending.get(r.Context(), r.FormValue("id"))
	if err != nil {
		return nil, false
	}
	for _, c := range r.Cookies() {
		if c.Name != flowCookie {
			continue
		}
		if h := flowHash(c.Value); subtle.ConstantTimeCompare(h[:], a.flow[:]) == 1 {
			return a, true
		}
	}
	return nil, false
}

// loginCancel ends a login the customer gave up on and sends the browser
// back to the app with access_denied (RFC 6749, section 4.1.2.1), as the
// app expects of a login refused, rather than leaving it on the page.
func (p *Provider) loginCancel(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	a, ok := p.checkFlow(r)
	if !ok {
		p.expired(w, pickLang(r, ""))
		return
	}
	p.pending.remove(r.Context(), a.id)
	op.AuthRequestError(w, r, a, oidc.ErrAccessDenied().WithDescription("the customer cancelled the login"), p.op)
}

// loginForgot says how to get a new password: the directory, not this
// page, changes it (Config.PasswordResetURL links to the bank's own page).
func (p *Provider) loginForgot(w http.ResponseWriter, r *http.Request) {
	lang := pickLang(r, r.URL.Query().Get("lang"))
	d := pageData{Lang: lang, Step: "forgot", ResetURL: p.cfg.PasswordResetURL}
	other := url.Values{"lang": {messages[lang]["other_code"]}}
	if id := r.URL.Query().Get("id"); id != "" && len(id) <= 64 {
		d.ID = id
		d.BackLink = PathLogin + "?" + url.Values{"id": {id}, "lang": {lang}}.Encode()
		other.Set("id", id)
	}
	d.OtherLink = PathLogin + "/forgot?" + other.Encode()
	p.render(w, http.StatusOK, d)
}

// authorizeCallback hands a finished login to op, which redirects to the
// app with the code, only in the browser the login belongs to.
func (p *Provider) authorizeCallback(w http.ResponseWriter, r *http.Request) {
	if _, ok := p.checkFlow(r); !ok {
		p.expired(w, pickLang(r, ""))
		return
	}
	p.op.ServeHTTP(w, r)
}

func (p *Provider) loginPassword(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	a, ok := p.checkFlow(r)
	if !ok {
		p.expired(w, pickLang(r, ""))
		return
	}
	lang := pickLang(r, a.lang)
	t := messages[lang]
	account := strings.TrimSpace(r.FormValue("username"))
	password := r.FormValue("password")
	addr := clientAddr(r)
	device := account != "" && p.VerifyDeviceCookie(r, account)
	page := pageData{Lang: lang, Step: "password", ID: a.id, FormAction: a.redirectOrigin(), User: account}
	if account == "" || len(account) > 64 || password == "" || len(password) > 1024 {
		page.Error = t["bad_creds"]
		p.render(w, http.StatusUnauthorized, page)
		return
	}
	if p.cfg.Limiter != nil {
		if g := p.cfg.Limiter.GateLogin(account, addr, device, r.FormValue("pow")); !g.Allowed {
			// Not checked: no hash spent, nothing observed as a failure.
			page.Challenge, page.Bits = g.Challenge, g.Bits
			secs := 0
			if g.RetryAfter > 0 {
				secs = max(1, int((g.RetryAfter+time.Second-1)/time.Second))
				w.Header().Set("Retry-After", strconv.Itoa(secs))
			}
			switch {
			case g.Challenge != "":
				// A stepped login: the page solves the challenge while the
				// customer types the password again, then sends both.
				page.Wait, page.Error = secs, t["stepped"]
			default:
				page.Error = fmt.Sprintf(t["throttled"], secs)
			}
			p.render(w, http.StatusTooManyRequests, page)
			return
		}
	}
	// A device with a backup snapshot waits BackupAfter for the directory,
	// then is checked against its snapshot; anyone else waits LoginTimeout.
	var snap snapshot
	hasSnap := false
	if device {
		if nonce, ok := p.deviceNonce(r, account); ok {
			snap, hasSnap = p.loadSnapshot(r.Context(), account, nonce)
		}
	}
	wait := p.cfg.LoginTimeout
	if hasSnap {
		wait = min(wait, p.cfg.BackupAfter)
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait)
	defer cancel()
	u, err := p.authenticate(ctx, account, password)
	viaBackup := false
	if !directoryAnswered(err) {
		if hasSnap {
			u, err = p.checkSnapshot(r.Context(), snap, password)
			viaBackup = err == nil
		} else {
			p.backup.logins.WithLabelValues("no_snapshot").Inc()
		}
	}
	switch {
	case errors.Is(err, users.ErrBlocked):
		p.observe(RouteLoginPassword, addr, account, false, device)
		p.log.InfoContext(r.Context(), "login refused: customer blocked", slog.String("account", account), slog.String("client", addr.String()))
		page.Error = t["blocked"]
		p.render(w, http.StatusForbidden, page)
		return
	case errors.Is(err, users.ErrNotFound), errors.Is(err, users.ErrBadPassword):
		p.observe(RouteLoginPassword, addr, account, false, device)
		if errors.Is(err, users.ErrBadPassword) {
			p.writeDirectory(r.Context(), users.EventPasswordFailed, account, a.id, "pw-"+randomID(6), "", "")
		}
		p.log.InfoContext(r.Context(), "login refused", slog.String("account", account), slog.String("client", addr.String()), slog.Bool("device", device))
		page.Error = t["bad_creds"]
		p.render(w, http.StatusUnauthorized, page)
		return
	case err != nil:
		// The directory is stuck or failing: this new login waits, with an
		// honest estimate, while customers holding sessions carry on.
		if errors.Is(err, errDirectoryOpen) {
			// The breaker logged its opening once; not once per login.
			p.log.DebugContext(r.Context(), "user directory breaker open: login without a backup snapshot refused", slog.String("account", account))
			// Answered at once, without the directory: the login service is
			// degraded, not saturated (the waiting room must not slow the
			// backup path's line for it).
			w.Header().Set(waitroom.DegradedHeader, "directory")
		} else {
			p.log.WarnContext(r.Context(), "user directory unavailable for login", slog.String("account", account), slog.Any("err", err))
		}
		secs := 30
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		page.Error = fmt.Sprintf(t["busy"], secs)
		p.render(w, http.StatusServiceUnavailable, page)
		return
	}
	p.observe(RouteLoginPassword, addr, account, true, device)
	if p.offerPasskey(w, r, a, u, device, lang) {
		return
	}
	if viaBackup {
		p.log.InfoContext(r.Context(), "password checked against the device's backup snapshot", slog.String("account", account))
	}
	err = p.pending.update(r.Context(), a.id, func(s *authRequest) error {
		s.passwordChecked(u, device)
		s.backup = viaBackup
		return nil
	})
	if err == nil {
		err = p.sendOTP(r, a.id, u, lang)
	}
	if err != nil {
		p.expired(w, lang)
		return
	}
	p.render(w, http.StatusOK, pageData{Lang: lang, Step: "otp", ID: a.id, FormAction: a.redirectOrigin(), Hint: otpHint(lang, &u)})
}

// sendOTP sets a fresh code on the login and sends it to u by SMS.
func (p *Provider) sendOTP(r *http.Request, id string, u users.User, lang string) error {
	code := newOTP()
	err := p.pending.update(r.Context(), id, func(s *authRequest) error {
		now := p.cfg.Now()
		s.setOTP(code, now, now.Add(p.cfg.OTPTTL))
		return nil
	})
	if err != nil {
		return err
	}
	if p.cfg.SMS != nil {
		if err := p.cfg.SMS.Send(r.Context(), u.Phone, fmt.Sprintf(messages[lang]["sms"], code)); err != nil {
			p.log.ErrorContext(r.Context(), "send login code", slog.String("account", u.ID), slog.Any("err", err))
		}
	} else {
		p.log.WarnContext(r.Context(), "no SMS sender configured; login code dropped", slog.String("account", u.ID))
	}
	return nil
}

// Resending login codes: at most maxResends per login, resendEvery apart,
// and the account's daily cap (LoginLimiter.AllowResend).
const (
	maxResends  = 3
	resendEvery = 30 * time.Second
)

// resendOTP sends the login's code step a new code on the customer's
// request, within the bounds above; the wrong-code attempts are not given
// back.
func (p *Provider) resendOTP(w http.ResponseWriter, r *http.Request, a *authRequest, u users.User, lang string) {
	t := messages[lang]
	page := pageData{Lang: lang, Step: "otp", ID: a.id, FormAction: a.redirectOrigin(), Hint: otpHint(lang, &u)}
	now := p.cfg.Now()
	var verdict string
	var wait time.Duration
	err := p.pending.update(r.Context(), a.id, func(s *authRequest) error {
		switch {
		case s.user == nil:
			verdict = "restart"
		case s.resends >= maxResends:
			verdict = "max"
		case now.Sub(s.sentAt) < resendEvery:
			verdict, wait = "wait", resendEvery-now.Sub(s.sentAt)
		default:
			verdict = "send"
			s.resends++
			s.sentAt = now
		}
		return nil
	})
	if err != nil || verdict == "restart" {
		p.expired(w, lang)
		return
	}
	if verdict == "send" && p.cfg.Limiter != nil {
		if ok, d := p.cfg.Limiter.AllowResend(u.ID); !ok {
			verdict, wait = "capped", d
		}
	}
	switch verdict {
	case "send":
		if err := p.sendOTP(r, a.id, u, lang); err != nil {
			p.expired(w, lang)
			return
		}
		page.Info = t["resent"]
		p.render(w, http.StatusOK, page)
	case "max", "capped":
		page.Error = t["resend_max"]
		p.render(w, http.StatusTooManyRequests, page)
	default:
		secs := max(1, int((wait+time.Second-1)/time.Second))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		page.Error = fmt.Sprintf(t["resend_wait"], secs)
		p.render(w, http.StatusTooManyRequests, page)
	}
}

func newOTP() string {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		panic(err)
	}
	return fmt.Sprintf("%06d", n.Int64())
}

func (p *Provider) observe(route string, addr netip.Addr, account string, ok, device bool) {
	if p.cfg.Observer != nil {
		p.cfg.Observer.ObserveLogin(route, addr, account, ok, device)
	}
}

func (p *Provider) loginOTP(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	a, ok := p.checkFlow(r)
	if !ok || a.user == nil {
		p.expired(w, pickLang(r, ""))
		return
	}
	lang := pickLang(r, a.lang)
	t := messages[lang]
	addr := clientAddr(r)
	code := strings.TrimSpace(r.FormValue("code"))
	if p.cfg.Limiter != nil {
		if ok, wait := p.cfg.Limiter.AllowCode(a.user.ID, a.device); !ok {
			// The account's day of wrong codes is spent: not checked.
			hours := max(1, int((wait+time.Hour-1)/time.Hour))
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(wait/time.Second))))
			p.render(w, http.StatusTooManyRequests, pageData{Lang: lang, Step: "otp", ID: a.id, FormAction: a.redirectOrigin(),
				Error: fmt.Sprintf(t["code_capped"], hours), Hint: otpHint(lang, a.user)})
			return
		}
	}
	var outcome string
	var u users.User
	var device, viaBackup bool
	err := p.pending.update(r.Context(), a.id, func(s *authRequest) error {
		if s.user == nil {
			outcome = "restart"
			return nil
		}
		u, device, viaBackup = *s.user, s.device, s.backup
		s.otpAttempts++
		switch {
		case s.otpAttempts > maxOTPAttempts:
			s.user, s.otpHash = nil, [32]byte{}
			outcome = "restart"
		case p.cfg.Now().After(s.otpExpiry) || len(code) != 6 || !s.checkOTP(code):
			outcome = "wrong"
		default:
			now := p.cfg.Now()
			s.otpHash = [32]byte{}
			s.done, s.subject, s.authTime = true, u.ID, now
			s.amr = []string{"pwd", "otp", "mfa"}
			if s.backup {
				s.amr, s.acr = append(s.amr, amrBackup), acrBackup
			}
			s.profile = map[string]string{attrName: u.Name, attrPhone: u.Phone, attrEmail: u.Email}
			s.grant = randomID(16)
			outcome = "ok"
		}
		return nil
	})
	if err != nil {
		p.expired(w, lang)
		return
	}
	switch outcome {
	case "restart":
		p.observe(RouteLoginOTP, addr, u.ID, false, device)
		p.render(w, http.StatusUnauthorized, pageData{Lang: lang, Step: "password", ID: a.id, FormAction: a.redirectOrigin(), Error: t["too_many"]})
		return
	case "wrong":
		p.observe(RouteLoginOTP, addr, u.ID, false, device)
		if p.cfg.Limiter != nil {
			p.cfg.Limiter.CodeFailed(u.ID, device)
		}
		p.writeDirectory(r.Context(), users.EventCodeFailed, u.ID, a.id, "code-"+randomID(6), "", "")
		p.render(w, http.StatusUnauthorized, pageData{Lang: lang, Step: "otp", ID: a.id, FormAction: a.redirectOrigin(), Error: t["bad_otp"], Hint: otpHint(lang, &u)})
		return
	}
	p.observe(RouteLoginOTP, addr, u.ID, true, device)
	p.log.InfoContext(r.Context(), "login", slog.String("account", u.ID), slog.String("client", addr.String()), slog.Bool("device", device))
	amr := []string{"pwd", "otp", "mfa"}
	method, nonce := "pwd+otp", ""
	if viaBackup {
		// The device keeps its cookie, and with it its snapshot: a login
		// from a snapshot never makes a new one, so none outlives its window.
		p.startBrowserSession(w, r, u, append(amr, amrBackup))
		method = "pwd+otp+backup"
		nonce, _ = p.deviceNonce(r, u.ID)
	} else {
		p.startBrowserSession(w, r, u, amr)
		nonce = p.setDeviceCookie(w, r, u.ID)
		p.takeSnapshot(r.Context(), u, nonce)
	}
	p.writeDirectory(r.Context(), users.EventLogin, u.ID, a.id, "login", method, nonce)
	http.Redirect(w, r, PathAuthorize+"/callback?id="+url.QueryEscape(a.id), http.StatusSeeOther)
}

// startBrowserSession records the login in the session store so this
// browser's next authorization request skips the form.
func (p *Provider) startBrowserSession(w http.ResponseWriter, r *http.Request, u users.User, amr []string) {
	// A new login (prompt=login, max_age, another customer) replaces the
	// browser's previous session rather than leaving it alive behind.
	if _, old, ok := p.browserSession(r); ok {
		if err := p.sessions.Delete(r.Context(), browserRecordID(old)); err != nil {
			p.log.WarnContext(r.Context(), "end previous browser session", slog.Any("err", err))
		}
	}
	now := p.cfg.Now()
	sid := randomID(24)
	s := session.Session{
		ID: browserRecordID(sid), Subject: u.ID, AMR: amr,
		CreatedAt: now, ExpiresAt: now.Add(p.cfg.BrowserSessionTTL),
		Attrs: map[string]string{attrName: u.Name, attrPhone: u.Phone, attrEmail: u.Email,
			attrAuthTime: strconv.FormatInt(now.Unix(), 10)},
	}
	if err := p.sessions.Create(r.Context(), s); err != nil {
		p.log.WarnContext(r.Context(), "store browser session", slog.Any("err", err))
		return
	}
	http.SetCookie(w, &http.Cookie{Name: browserCookie, Value: sid, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: strings.HasPrefix(p.cfg.Issuer, "https://"),
		MaxAge: int(p.cfg.BrowserSessionTTL / time.Second)})
}

// finishFromSession completes a login from a live browser session: no
// directory call, so it works while the directory is stuck.
func (p *Provider) finishFromSession(ctx context.Context, id string, s session.Session) error {
	at, _ := strconv.ParseInt(s.Attrs[attrAuthTime], 10, 64)
	return p.pending.update(ctx, id, func(a *authRequest) error {
		a.done, a.subject, a.authTime, a.amr = true, s.Subject, time.Unix(at, 0), s.AMR
		a.profile = map[string]string{attrName: s.Attrs[attrName], attrPhone: s.Attrs[attrPhone], attrEmail: s.Attrs[attrEmail]}
		a.grant = randomID(16)
		return nil
	})
}
