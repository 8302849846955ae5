package admin

import (
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"strings"
)

// script is the console's whole client: it turns the JSON of a begun
// ceremony into the binary options navigator.credentials wants, and the
// credential back into JSON for the finish endpoint.
const script = `
const $ = id => document.getElementById(id);
const enc = b => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const dec = s => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), c => c.charCodeAt(0));
const say = (m, bad) => { const s = $('status'); s.textContent = m; s.className = bad ? 'error' : 'ok'; };
async function post(url, body) {
  const r = await fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json'},
    body: JSON.stringify(body), credentials: 'same-origin'});
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(j.detail || r.statusText);
  return j;
}
function done(who) {
  const next = new URLSearchParams(location.search).get('next') || form.dataset.home || '';
  say('Logged in as ' + who + '.');
  if (next.startsWith('/ops/') && !next.startsWith('//')) location.assign(next);
}
async function enrol(ev) {
  ev.preventDefault();
  try {
    const b = await post('/ops/admin/enrol/begin', {token: $('token').value.trim(), name: $('name').value.trim()});
    const o = b.publicKey;
    o.challenge = dec(o.challenge); o.user.id = dec(o.user.id);
    (o.excludeCredentials || []).forEach(c => { c.id = dec(c.id); });
    say('Touch your security key…');
    const c = await navigator.credentials.create({publicKey: o});
    const r = c.response;
    const f = await post('/ops/admin/enrol/finish', {ceremony: b.ceremony, credential: {
      id: c.id, rawId: enc(c.rawId), type: c.type, clientExtensionResults: c.getClientExtensionResults(),
      response: {clientDataJSON: enc(r.clientDataJSON), attestationObject: enc(r.attestationObject),
        transports: r.getTransports ? r.getTransports() : []}}});
    done(f.admin);
  } catch (e) { say(e.message, true); }
}
async function login(ev) {
  ev.preventDefault();
  try {
    const b = await post('/ops/admin/login/begin', {name: $('name').value.trim()});
    const o = b.publicKey;
    o.challenge = dec(o.challenge);
    (o.allowCredentials || []).forEach(c => { c.id = dec(c.id); });
    say('Touch your security key…');
    const c = await navigator.credentials.get({publicKey: o});
    const r = c.response;
    const f = await post('/ops/admin/login/finish', {ceremony: b.ceremony, credential: {
      id: c.id, rawId: enc(c.rawId), type: c.type, clientExtensionResults: c.getClientExtensionResults(),
      response: {clientDataJSON: enc(r.clientDataJSON), authenticatorData: enc(r.authenticatorData),
        signature: enc(r.signature), userHandle: r.userHandle ? enc(r.userHandle) : undefined}}});
    done(f.admin);
  } catch (e) { say(e.message, true); }
}
const form = $('form');
form.addEventListener('submit', form.dataset.mode === 'enrol' ? enrol : login);
if (!window.PublicKeyCredential) say('This browser cannot use security keys here (WebAuthn needs https or http://localhost).', true);
`

// scriptCSP allows exactly the script above and nothing else.
var scriptCSP = func() string {
	h := sha256.Sum256([]byte(script))
	return "default-src 'none'; style-src 'unsafe-inline'; connect-src 'self'; script-src 'sha256-" +
		base64.StdEncoding.EncodeToString(h[:]) + "'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
}()

var pageTmpl = template.Must(template.New("admin").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>rempart ops — {{if eq .Mode "enrol"}}enrol an admin{{else}}admin login{{end}}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem;line-height:1.5}
label{display:block;margin-top:1rem;font-weight:600}
input{font-size:1.1rem;padding:.5rem;width:100%;box-sizing:border-box}
button{margin-top:1.5rem;font-size:1.1rem;padding:.6rem 1.2rem}
.error{color:#a00000;border-left:4px solid #a00000;padding-left:.5rem}
:focus{outline:3px solid #1a5fb4;outline-offset:2px}
</style>
</head>
<body>
<main>
{{if eq .Mode "enrol"}}
<h1>Enrol an admin</h1>
<p>Admins log in with a FIDO2 security key or passkey only. Enter the one-time token printed by
<code>rempart serve</code> or <code>rempart admin enrol-token</code>.</p>
{{else}}
<h1>rempart ops — admin login</h1>
<p>Log in with your security key. New admin? <a href="/ops/admin/enrol">Enrol with a one-time token</a>.</p>
{{end}}
<form id="form" data-mode="{{.Mode}}" data-home="{{.Home}}">
<label for="name">Admin name</label>
<input id="name" name="name" autocomplete="username webauthn" required maxlength="64">
{{if eq .Mode "enrol"}}
<label for="token">One-time enrolment token</label>
<input id="token" name="token" autocomplete="off" required spellcheck="false">
{{end}}
<button type="submit">{{if eq .Mode "enrol"}}Enrol my key{{else}}Log in with my key{{end}}</button>
</form>
<p id="status" role="status" aria-live="polite"></p>
</main>
<script>{{.Script}}</script>
</body>
</html>
`))

func (a *Admins) page(mode string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// WebAuthn works only at the relying party's origin (browsers
		// refuse an IP address as one): at any other name for the ops
		// listener, say 127.0.0.1, send the browser to the console's own
		// origin instead of failing with the browser's "invalid domain".
		if o := a.opts.Origins[0]; !a.atOrigin(r) {
			http.Redirect(w, r, o+r.URL.RequestURI(), http.StatusSeeOther)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Security-Policy", scriptCSP)
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Referrer-Policy", "no-referrer")
		_ = pageTmpl.Execute(w, struct {
			Mode, Home string
			Script     template.JS
		}{mode, a.opts.Home, template.JS(script)})
	}
}

// atOrigin reports whether r reached the ops listener under the host of one
// of the console's origins.
func (a *Admins) atOrigin(r *http.Request) bool {
	for _, o := range a.opts.Origins {
		if u, err := url.Parse(o); err == nil && strings.EqualFold(u.Host, r.Host) {
			return true
		}
	}
	return false
}
