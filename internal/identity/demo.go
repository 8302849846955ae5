package identity

import (
	"html/template"
	"net/http"
	"net/url"
	"strings"
)

// The demo page is a public client in a browser: it starts an authorization
// code flow with PKCE (S256) and exchanges the code itself, to show the flow
// end to end with nothing but `rempart serve`.
var demoTmpl = template.Must(template.New("demo").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>rempart demo app</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}pre{white-space:pre-wrap;word-break:break-all;background:#f4f4f4;padding:1rem}</style>
</head>
<body>
<h1>rempart demo app</h1>
<p>Public client <code>{{.Client}}</code>: authorization code with PKCE (S256). Demo customers: alice / alice-demo-2025, bruno / bruno-demo-2025, camille / camille-demo-2025; the SMS code is in the estate's outbox (<code>GET /ops/estate/sms</code> on the ops listener: an admin session, or the automation token when serve runs with <code>--ops-token-sms</code>).</p>
<button id="login" type="button">Log in</button>
<pre id="out" aria-live="polite"></pre>
<script>
const issuer = {{.Issuer}}, client = {{.Client}}, redirect = issuer + "/demo/callback";
const b64 = b => btoa(String.fromCharCode(...new Uint8Array(b))).replace(/\+/g,"-").replace(/\//g,"_").replace(/=+$/,"");
const rnd = () => b64(crypto.getRandomValues(new Uint8Array(32)));
document.getElementById("login").onclick = async () => {
  const verifier = rnd(), state = rnd();
  sessionStorage.setItem("pkce", JSON.stringify({verifier, state}));
  const challenge = b64(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const q = new URLSearchParams({client_id: client, response_type: "code", redirect_uri: redirect,
    scope: "openid profile phone offline_access accounts payments", state, code_challenge: challenge, code_challenge_method: "S256"});
  location = issuer + "/oauth/authorize?" + q;
};
const params = new URLSearchParams(location.search);
if (params.get("code")) {
  const saved = JSON.parse(sessionStorage.getItem("pkce") || "{}");
  const out = document.getElementById("out");
  if (saved.state !== params.get("state")) { out.textContent = "state mismatch"; }
  else fetch(issuer + "/oauth/token", {method: "POST", body: new URLSearchParams({grant_type: "authorization_code",
      code: params.get("code"), redirect_uri: redirect, client_id: client, code_verifier: saved.verifier})})
    .then(r => r.json()).then(t => {
      const claims = t.access_token ? JSON.parse(atob(t.access_token.split(".")[1].replace(/-/g,"+").replace(/_/g,"/"))) : t;
      out.textContent = JSON.stringify({token_response: t, access_token_claims: claims}, null, 2);
    });
} else if (params.get("error")) {
  document.getElementById("out").textContent = params.get("error") + ": " + (params.get("error_description") || "");
}
</script>
</body>
</html>
`))

func (p *Provider) demoPage(w http.ResponseWriter, r *http.Request) {
	// The demo app's redirect URI and its state live at the issuer's
	// origin: opened at another name for the same listener (localhost for
	// 127.0.0.1), the login would come back to the issuer's and fail on
	// "state mismatch". Send the browser to the issuer's address first.
	if u, err := url.Parse(p.cfg.Issuer); err == nil && u.Host != "" && !strings.EqualFold(r.Host, u.Host) && r.URL.Path == "/demo/" {
		http.Redirect(w, r, p.cfg.Issuer+r.URL.RequestURI(), http.StatusSeeOther)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_ = demoTmpl.Execute(w, struct{ Issuer, Client string }{p.cfg.Issuer, DemoAppClient})
}
