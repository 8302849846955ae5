package waitroom

import (
	"bytes"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rempart/rempart/internal/heldform"
	"github.com/rempart/rempart/internal/problem"
)

// cookieName carries the ticket for browsers, which cannot be told to send a
// header; it is accepted exactly like the Rempart-Ticket header.
const cookieName = "rempart_ticket"

func (r *Room) cookie(req *http.Request, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     cookieName,
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   req.TLS != nil || r.opts.SecureCookie,
		SameSite: http.SameSiteLaxMode,
	}
}

// seconds renders a wait as whole seconds, at least one: what Retry-After
// can say.
func seconds(d time.Duration) int { return max(1, int(math.Ceil(d.Seconds()))) }

// Header marks every answer the room gives itself (waiting, full) with what
// it is, so the gateway can tell them from the backend's own 503s: a status
// page that counted customers waiting their turn as failures would call the
// login channel down in the middle of a surge it is handling.
const Header = "Rempart-Waiting-Room"

// TurnedAway says whether a response's headers are the room's own answer
// (waiting or full) rather than the backend's.
func TurnedAway(h http.Header) bool { return h.Get(Header) != "" }

func noStore(h http.Header) {
	// A waiting answer is personal (it carries a ticket) and stale a second
	// later: no cache may keep it.
	h.Set("Cache-Control", "no-store")
	h.Add("Vary", "Accept, Accept-Language, Cookie, Rempart-Ticket")
}

// writeWaiting answers a client in the line: 503 with its ticket, position
// and estimate, as problem+json for apps (the client SDK follows it) or as a
// page that reloads itself for browsers.
func (r *Room) writeWaiting(w http.ResponseWriter, req *http.Request, d decision) {
	h := w.Header()
	poll := seconds(d.pollAfter)
	h.Set("Retry-After", strconv.Itoa(poll))
	h.Set("Rempart-Ticket", d.ticket)
	h.Set(Header, "waiting")
	noStore(h)
	if prefersHTML(req.Header.Get("Accept")) {
		http.SetCookie(w, r.cookie(req, d.ticket, seconds(d.pollAfter+r.opts.Grace)))
		again := resubmission(req)
		r.writePage(w, pageLanguage(again, req), page{Position: d.position, Wait: d.eta, Poll: poll, Again: again})
		return
	}
	// Rounded up to a tenth of a second: an estimate may be late, never early.
	eta := math.Ceil(d.eta.Seconds()*10) / 10
	p := problem.New(http.StatusServiceUnavailable, "waiting-room", fmt.Sprintf(
		"Many customers are signing in: you are number %d in line, estimated wait %.0f s. "+
			"Send the same request again after %d s with the header Rempart-Ticket.",
		d.position, math.Ceil(eta), poll))
	p.Title = "Waiting room"
	p.With("ticket", d.ticket).
		With("position", d.position).
		With("estimated_wait_seconds", eta).
		With("poll_after_seconds", poll)
	problem.Write(w, p)
}

// writeFull answers a newcomer when the line is at MaxWaiting.
func (r *Room) writeFull(w http.ResponseWriter, req *http.Request, d decision) {
	h := w.Header()
	retry := seconds(d.retryAfter)
	h.Set("Retry-After", strconv.Itoa(retry))
	h.Set(Header, "full")
	noStore(h)
	if prefersHTML(req.Header.Get("Accept")) {
		again := resubmission(req)
		r.writePage(w, pageLanguage(again, req), page{Full: true, Poll: retry, Again: again})
		return
	}
	p := problem.New(http.StatusServiceUnavailable, "waiting-room-full", fmt.Sprintf(
		"The waiting room is full. Try again in %d s.", retry))
	p.Title = "Waiting room full"
	p.With("poll_after_seconds", retry)
	problem.Write(w, p)
}

// prefersHTML says whether an Accept header ranks an HTML page above JSON.
// A wildcard alone counts for neither, so curl and SDKs (*/* or JSON) get the
// problem document and browsers (text/html first) the page.
func prefersHTML(accept string) bool {
	var qHTML, qJSON float64
	for part := range strings.SplitSeq(accept, ",") {
		typ, q := mediaRange(part)
		switch typ {
		case "text/html", "application/xhtml+xml":
			qHTML = max(qHTML, q)
		case "application/json", "application/problem+json", "application/*":
			qJSON = max(qJSON, q)
		}
	}
	return qHTML > 0 && qHTML >= qJSON
}

func mediaRange(s string) (string, float64) { return heldform.MediaRange(s) }

func language(acceptLanguage string) string { return heldform.Language(acceptLanguage) }

// pageLanguage is the language the customer chose on the login form the
// page holds (its lang field), else the browser's: a customer who chose
// English on a French browser was shown the line in French, and the step
// after it in English.
func pageLanguage(again *form, req *http.Request) string {
	return heldform.PageLanguage(again, req.Header.Get("Accept-Language"))
}

// page is what the waiting page shows.
type page struct {
	Full     bool
	Position int
	Wait     time.Duration
	Poll     int
	// Again, when set, is the form the browser posted: the page sends it
	// again instead of reloading (a reload would GET an address that takes
	// only POST, and lose what the customer typed).
	Again *form
}

// form and field are the held form the page carries back.
type (
	form  = heldform.Form
	field = heldform.Field
)

// Bounds on the form a waiting page carries back.
const (
	maxFormBytes  = heldform.MaxBytes
	maxFormFields = heldform.MaxFields
)

// resubmission returns the form of a POST the room holds back, so that the
// waiting page can send it again when the customer's turn comes, or nil for
// anything else (a GET reloads itself).
func resubmission(req *http.Request) *form { return heldform.FromRequest(req) }

// text holds the page's words in one language.
type text struct {
	Lang, Title, Heading, Why, Position, Wait, Keep, FullHeading string
	// refresh and fullBody say how often the page reloads and when it tries
	// again, for one second and for %d seconds: "toutes les 1 secondes"
	// is not French.
	refresh, refreshN, fullBody, fullBodyN string
	// How a wait is said: under a minute, about one minute, about %d minutes.
	underMinute, oneMinute, minutes string
	// Continue labels the button that sends the held form again; resend and
	// resendN say when the page does it by itself, and what to do without
	// JavaScript.
	Continue        string
	resend, resendN string
}

// plural says n seconds with one, the sentence for one second, or many, the
// sentence with a %d.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return fmt.Sprintf(many, n)
}

// waitFor says a wait in whole minutes: more precision than that would be
// false.
func (t text) waitFor(d time.Duration) string {
	switch m := int(math.Round(d.Minutes())); {
	case d < time.Minute:
		return t.underMinute
	case m <= 1:
		return t.oneMinute
	default:
		return fmt.Sprintf(t.minutes, m)
	}
}

var texts = map[string]text{
	"fr": {
		Lang:        "fr",
		Title:       "Salle d'attente — connexion",
		Heading:     "Vous êtes dans la file d'attente",
		Why:         "Beaucoup de clients se connectent en même temps. Pour que chacun y parvienne, les connexions se font dans l'ordre d'arrivée.",
		Position:    "Votre position dans la file",
		Wait:        "Attente estimée",
		refresh:     "Cette page se met à jour d'elle-même chaque seconde.",
		refreshN:    "Cette page se met à jour d'elle-même toutes les %d secondes.",
		Keep:        "Gardez-la ouverte : vous conservez votre place. Recharger la page ne vous fait pas avancer plus vite, ni reculer.",
		FullHeading: "La file d'attente est complète",
		fullBody:    "Trop de clients attendent déjà pour se connecter. Cette page réessaiera d'elle-même dans 1 seconde.",
		fullBodyN:   "Trop de clients attendent déjà pour se connecter. Cette page réessaiera d'elle-même dans %d secondes.",
		underMinute: "moins d'une minute",
		oneMinute:   "environ 1 minute",
		minutes:     "environ %d minutes",
		Continue:    "Continuer",
		resend:      "Votre connexion repart d'elle-même dans 1 seconde, sans rien ressaisir. Si rien ne se passe (JavaScript désactivé), appuyez sur « Continuer ».",
		resendN:     "Votre connexion repart d'elle-même dans %d secondes, sans rien ressaisir. Si rien ne se passe (JavaScript désactivé), appuyez sur « Continuer ».",
	},
	"en": {
		Lang:        "en",
		Title:       "Waiting room — sign in",
		Heading:     "You are in the waiting line",
		Why:         "Many customers are signing in at the same time. So that everyone gets through, sign-ins are let in in order of arrival.",
		Position:    "Your place in line",
		Wait:        "Estimated wait",
		refresh:     "This page updates itself every second.",
		refreshN:    "This page updates itself every %d seconds.",
		Keep:        "Keep it open: you keep your place. Reloading it does not move you forward, nor back.",
		FullHeading: "The waiting line is full",
		fullBody:    "Too many customers are already waiting to sign in. This page will try again by itself in 1 second.",
		fullBodyN:   "Too many customers are already waiting to sign in. This page will try again by itself in %d seconds.",
		underMinute: "less than a minute",
		oneMinute:   "about 1 minute",
		minutes:     "about %d minutes",
		Continue:    "Continue",
		resend:      "Your sign-in carries on by itself in 1 second, with nothing to type again. If nothing happens (JavaScript off), press “Continue”.",
		resendN:     "Your sign-in carries on by itself in %d seconds, with nothing to type again. If nothing happens (JavaScript off), press “Continue”.",
	},
}

// pageTmpl is a single self-contained page, no external asset. For a GET the
// refresh reloads the same address (no script: it works with JavaScript off);
// for a held POST the page carries the form back and a one-line script sends
// it again when due, with a button for browsers without JavaScript. The
// cookie carries the ticket either way.
var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="{{.T.Lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{{if not .P.Again}}<meta http-equiv="refresh" content="{{.P.Poll}}">{{end}}
<title>{{.T.Title}}</title>
<style>body{font:1.1rem/1.5 system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;color:#111;background:#fff}
dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem 1rem}dt{font-weight:600}dd{margin:0}</style>
</head>
<body>
<main>
{{if .P.Full}}<h1>{{.T.FullHeading}}</h1>
<p>{{.FullBody}}</p>
{{else}}<h1>{{.T.Heading}}</h1>
<p>{{.T.Why}}</p>
<dl>
<dt>{{.T.Position}}</dt><dd>{{.P.Position}}</dd>
<dt>{{.T.Wait}}</dt><dd>{{.Wait}}</dd>
</dl>
{{if not .P.Again}}<p>{{.Refresh}}</p>{{end}}
<p>{{.T.Keep}}</p>
{{end}}{{with .P.Again}}<form method="post" action="{{.Action}}" id="again">
{{range .Fields}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}<p>{{$.Resend}}</p>
<button type="submit">{{$.T.Continue}}</button>
</form>
<script nonce="{{.Nonce}}">setTimeout(function(){document.getElementById("again").submit()},{{$.P.Poll}}*1000)</script>
{{end}}</main>
</body>
</html>
`))

func (r *Room) writePage(w http.ResponseWriter, lang string, p page) {
	t := texts[lang]
	var b bytes.Buffer
	err := pageTmpl.Execute(&b, struct {
		T                               text
		P                               page
		Wait, Refresh, FullBody, Resend string
	}{t, p, t.waitFor(p.Wait), plural(p.Poll, t.refresh, t.refreshN), plural(p.Poll, t.fullBody, t.fullBodyN),
		plural(p.Poll, t.resend, t.resendN)})
	if err != nil {
		// The template is fixed and its data plain: this cannot happen, but a
		// waiting client must still get an answer it can follow.
		problem.Error(w, http.StatusServiceUnavailable, "waiting-room", "waiting room page failed")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Language", lang)
	// Nothing but this page's own style and, for a held form, its one
	// script; the form goes back to this site only, and no other site may
	// frame the page.
	csp := "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	if p.Again != nil {
		csp += "; script-src 'nonce-" + p.Again.Nonce + "'"
	}
	h.Set("Content-Security-Policy", csp)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write(b.Bytes())
}
