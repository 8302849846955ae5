package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// endSession is RP-initiated logout (OpenID Connect RP-Initiated Logout
// 1.0). op parses and validates the request: the id_token_hint is verified
// with the provider's own EdDSA keys (expired hints are accepted, as the
// spec allows), its azp must match client_id, and post_logout_redirect_uri
// must be registered for the client, else nothing ends and nothing
// redirects. The session ends in the session store, so on every node
// sharing it, and the browser's cookie is cleared.
//
// With a verified hint the customer it names is logged out: their browser
// sessions and the app's grants. Without one, anybody could have sent the
// browser here (a cross-site link), so the customer is asked first; the
// confirmation is a same-site POST carrying a token bound to this
// browser's session.
func (p *Provider) endSession(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	r = r.WithContext(op.ContextWithIssuer(r.Context(), p.cfg.Issuer))
	ctx := r.Context()
	req, err := op.ParseEndSessionRequest(r, p.op.Decoder())
	if err != nil {
		op.RequestError(w, r, err, nil)
		return
	}
	es, err := op.ValidateEndSessionRequest(ctx, req, p.op)
	if err != nil {
		op.RequestError(w, r, err, nil)
		return
	}
	ui := ""
	if len(req.UILocales) > 0 {
		ui = req.UILocales[0].String()
	}
	lang := pickLang(r, ui)
	// op merges state into its default redirect even when there is none;
	// only a registered post_logout_redirect_uri of a known client counts.
	redirect := es.RedirectURI
	if req.PostLogoutRedirectURI == "" || es.ClientID == "" {
		redirect = ""
	}
	s, sid, live := p.browserSession(r)
	switch {
	case es.UserID != "":
		if err := (storage{p}).TerminateSession(ctx, es.UserID, es.ClientID); err != nil {
			p.log.ErrorContext(ctx, "end session", slog.String("account", es.UserID), slog.Any("err", err))
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		// Another customer's session in this browser is not what the
		// hint asked to end; TerminateSession ended the hint's own.
		if !live || s.Subject == es.UserID {
			p.clearBrowserCookie(w)
		}
		p.log.InfoContext(ctx, "logout", slog.String("account", es.UserID), slog.String("client", es.ClientID))
	case !live:
		p.clearBrowserCookie(w)
	case r.Method == http.MethodPost && hmac.Equal([]byte(r.PostFormValue("confirm")), []byte(p.logoutToken(sid))):
		if err := p.sessions.Delete(ctx, browserRecordID(sid)); err != nil {
			p.log.ErrorContext(ctx, "end browser session", slog.Any("err", err))
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		p.clearBrowserCookie(w)
		p.log.InfoContext(ctx, "logout", slog.String("account", s.Subject), slog.String("client", es.ClientID))
	default:
		p.confirmLogout(w, req.ClientID, req.PostLogoutRedirectURI, req.State, redirect, p.logoutToken(sid), lang)
		return
	}
	if redirect == "" {
		p.render(w, http.StatusOK, pageData{Lang: lang, Step: "logged_out", OtherLink: PathEndSession + "?lang=" + messages[lang]["other_code"]})
		return
	}
	http.Redirect(w, r, redirect, http.StatusFound)
}

// confirmLogout asks the customer whether to log out, repeating the app's
// parameters in the form so the confirmation is validated like the request.
func (p *Provider) confirmLogout(w http.ResponseWriter, clientID, postLogout, state, redirect, token, lang string) {
	hidden := map[string]string{}
	for k, v := range map[string]string{"client_id": clientID, "post_logout_redirect_uri": postLogout, "state": state} {
		if v != "" {
			hidden[k] = v
		}
	}
	q := url.Values{"lang": {messages[lang]["other_code"]}}
	for k, v := range hidden {
		q.Set(k, v)
	}
	hidden["confirm"] = token
	d := pageData{Lang: lang, Step: "logout", Hidden: hidden, OtherLink: PathEndSession + "?" + q.Encode()}
	if u, err := url.Parse(redirect); err == nil && u.Host != "" && (u.Scheme == "http" || u.Scheme == "https") {
		d.FormAction = u.Scheme + "://" + u.Host
	}
	p.render(w, http.StatusOK, d)
}

// logoutToken binds a logout confirmation to the browser session it ends.
func (p *Provider) logoutToken(sid string) string {
	m := hmac.New(sha256.New, p.refKey)
	m.Write([]byte("logout\x00" + sid))
	return b64.EncodeToString(m.Sum(nil))
}

func (p *Provider) clearBrowserCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: browserCookie, Value: "", Path: "/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: strings.HasPrefix(p.cfg.Issuer, "https://"), MaxAge: -1})
}
