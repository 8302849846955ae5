package admin

import (
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/rempart/rempart/internal/problem"
)

// alwaysOpen are the paths that never need an admin: probes and scrapers,
// and the ceremonies by which an admin gets a session. Matched exactly.
var alwaysOpen = []string{
	"/healthz", "/readyz", "/metrics",
	PathLogin, PathLoginBegin, PathLoginFinish,
	PathEnrol, PathEnrolBegin, PathEnrolFinish, PathLogout,
}

// RequireAdmin guards the ops API: with Options.Required, every request but
// the open paths needs a valid admin session cookie or, outside /ops/admin/,
// the machine token. Anything not explicitly open is protected, so an ops
// endpoint added later is guarded without anyone remembering to.
//
// A state-changing request authenticated by cookie must come from the
// console's own origin: browsers count every port of localhost as one site,
// so SameSite alone would let a page on the public listener drive the ops
// API with an admin's cookie.
func (a *Admins) RequireAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.opts.Required || a.isOpen(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		if _, ok := a.sessionFrom(r); ok {
			if !a.originOK(r) {
				problem.Write(w, problem.New(http.StatusForbidden, "cross-origin", "ops requests must come from the ops console's origin"))
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if !strings.HasPrefix(r.URL.Path, PathPrefix) && a.machineOK(r) {
			if slices.ContainsFunc(a.opts.MachineDenied, func(p string) bool { return strings.HasPrefix(r.URL.Path, p) }) {
				problem.Write(w, problem.New(http.StatusForbidden, "token-scope",
					"the automation token does not reach "+r.URL.Path+" (an admin login does; for a demo, serve --ops-token-sms)"))
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		a.unauthorized(w, r)
	})
}

func (a *Admins) isOpen(p string) bool {
	if slices.Contains(alwaysOpen, p) {
		return true
	}
	for _, o := range a.opts.OpenPaths {
		if p == o || strings.HasSuffix(o, "/") && strings.HasPrefix(p, o) && path.Clean(p) == p {
			return true
		}
	}
	return false
}

// originOK accepts safe methods, and unsafe ones whose Origin (sent by
// every browser on them) is the console's. Clients that send no Origin are
// not browsers and carry no ambient cookie by accident.
func (a *Admins) originOK(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return r.Header.Get("Sec-Fetch-Site") == "" || r.Header.Get("Sec-Fetch-Site") == "same-origin"
	}
	return slices.ContainsFunc(a.opts.Origins, func(s string) bool { return strings.EqualFold(s, o) })
}

// unauthorized sends a browser to the login page and anything else a 401.
func (a *Admins) unauthorized(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && strings.Contains(r.Header.Get("Accept"), "text/html") {
		http.Redirect(w, r, PathLogin+"?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="rempart-ops"`)
	problem.Write(w, problem.New(http.StatusUnauthorized, "admin-required",
		"the ops API needs an admin login (WebAuthn at "+PathLogin+") or the automation token"))
}
