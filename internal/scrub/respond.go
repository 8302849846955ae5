package scrub

import (
	"bytes"
	"encoding/json"
	"github.com/rempart/rempart/internal/heldform"
	"html/template"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/rempart/rempart/internal/problem"
	"github.com/rempart/rempart/internal/scrub/ratelimit"
)

// blockedBody is the answer to a blocked network, encoded once: the reason
// stays in the ops API, since telling a bot which rule caught it helps it
// route around the rule.
func blockedBody() []byte {
	b, _ := json.Marshal(problem.New(http.StatusForbidden, "blocked",
		"requests from this network are blocked; if you are a customer, use the mobile app or call the bank"))
	return append(b, '\n')
}

// refuseBlocked answers a request from a blocked network.
func (s *Scrubber) refuseBlocked(w http.ResponseWriter, _ ListEntry) {
	h := w.Header()
	h["Content-Type"] = s.fixed.problemType
	h["X-Content-Type-Options"] = s.fixed.nosniff
	w.WriteHeader(http.StatusForbidden)
	w.Write(s.blocked)
}

// refuseLimited answers 429 with Retry-After and the IETF RateLimit and
// RateLimit-Policy fields (draft-ietf-httpapi-ratelimit-headers), so
// well-behaved clients slow down by themselves.
func (s *Scrubber) refuseLimited(w http.ResponseWriter, d decision) {
	retry := d.result.RetryAfter
	if retry < 0 {
		retry = d.limit.Window()
	}
	secs := max(int(math.Ceil(retry.Seconds())), 1)
	h := w.Header()
	// Canonical keys assigned directly: this is the flood's answer, and
	// canonicalising constant names per request is measurable.
	h["Retry-After"] = []string{strconv.Itoa(secs)}
	setRateLimitFields(h, d.policy, d.limit, d.result.Remaining, secs)
	h["Content-Type"] = s.fixed.problemType
	h["X-Content-Type-Options"] = s.fixed.nosniff
	w.WriteHeader(http.StatusTooManyRequests)
	// Written by hand, not through problem.Write: this is the answer a flood
	// gets, and the policy names are ours (no escaping needed).
	b := make([]byte, 0, 256)
	b = append(b, `{"type":"`+problem.TypeBase+`rate-limited","title":"Too Many Requests","status":429,"detail":"too many requests; retry after `...)
	b = strconv.AppendInt(b, int64(secs), 10)
	b = append(b, ` s","policy":"`...)
	b = append(b, d.policy...)
	b = append(b, `","retry_after":`...)
	b = strconv.AppendInt(b, int64(secs), 10)
	b = append(b, "}\n"...)
	w.Write(b)
}

// setRateLimitFields writes the structured fields of the ratelimit-headers
// draft: RateLimit-Policy: "per-address";q=10;w=5 and
// RateLimit: "per-address";r=0;t=3 (quota, window, remaining, seconds until
// the quota is usable again).
func setRateLimitFields(h http.Header, policy string, l ratelimit.Limit, remaining, reset int) {
	w := max(int(math.Ceil(l.Window().Seconds())), 1)
	h["Ratelimit-Policy"] = []string{`"` + policy + `";q=` + strconv.Itoa(l.Burst) + ";w=" + strconv.Itoa(w)}
	h["Ratelimit"] = []string{`"` + policy + `";r=` + strconv.Itoa(max(remaining, 0)) + ";t=" + strconv.Itoa(reset)}
}

// fixedHeaders are header values shared by every refusal, built once per
// Scrubber and never modified.
type fixedHeaders struct {
	problemType, nosniff, noStore, retryOne []string
}

func newFixedHeaders() fixedHeaders {
	return fixedHeaders{problemType: []string{problem.ContentType}, nosniff: []string{"nosniff"},
		noStore: []string{"no-store"}, retryOne: []string{"1"}}
}

// wantsHTML reports whether the client is a browser navigating (it asks for
// HTML first), which gets the page that solves the challenge in JavaScript.
func wantsHTML(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return strings.Contains(a, "text/html") && !strings.HasPrefix(a, "application/json")
}

// challenge answers an unknown client under attack with a proof-of-work
// challenge: a small page for browsers, problem+json for apps and the SDK;
// both carry the Rempart-Challenge header.
func (s *Scrubber) challenge(w http.ResponseWriter, r *http.Request, prefix netip.Prefix, bits int, now time.Time) {
	c := s.issueChallenge(prefix, bits, now)
	tok := c.String()
	h := w.Header()
	h[HeaderChallenge] = []string{tok}
	h["Cache-Control"] = s.fixed.noStore
	h["Retry-After"] = s.fixed.retryOne
	if wantsHTML(r) {
		var buf bytes.Buffer
		again := heldform.FromRequest(r)
		lang := heldform.PageLanguage(again, r.Header.Get("Accept-Language"))
		d := pageData{Challenge: tok, Bits: bits, Method: r.Method, T: challengeTexts[lang], Again: again}
		if err := s.page.Execute(&buf, d); err == nil {
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Content-Language", lang)
			h.Set("Content-Security-Policy", "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("X-Content-Type-Options", "nosniff")
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write(buf.Bytes())
			return
		}
	}
	// Written by hand for the same reason as refuseLimited; the token is
	// base64url and dots, safe inside a JSON string.
	h["Content-Type"] = s.fixed.problemType
	h["X-Content-Type-Options"] = s.fixed.nosniff
	w.WriteHeader(http.StatusTooManyRequests)
	b := make([]byte, 0, 512)
	b = append(b, `{"type":"`+problem.TypeBase+`proof-of-work","title":"Too Many Requests","status":429,`+
		`"detail":"this service is under attack: solve the proof-of-work challenge and retry with the `+HeaderSolution+` header",`+
		`"challenge":"`...)
	b = append(b, tok...)
	b = append(b, `","difficulty":`...)
	b = strconv.AppendInt(b, int64(bits), 10)
	b = append(b, `,"algorithm":"sha256-leading-zero-bits","expires":"`...)
	b = time.Unix(c.Expires, 0).UTC().AppendFormat(b, time.RFC3339)
	b = append(b, "\"}\n"...)
	w.Write(b)
}

type pageData struct {
	Challenge string
	Bits      int
	Method    string
	T         challengeText
	// Again is the login form the browser posted, sent again once the
	// work is done (nil for anything but a form POST).
	Again *heldform.Form
}

// challengeText is the challenge page's words in one language: the login's
// (its form's lang field) or the browser's.
type challengeText struct {
	Lang, Title, Heading, NoScript, NoCrypto, Done, DoneBack, Continue string
	// Why is what the page says before its script runs, and all it says
	// without JavaScript: nothing about carrying on by itself, which only
	// the script can do. Working and WorkingForm replace it once the script
	// runs (a GET, a login form held).
	Why, Working, WorkingForm string
}

var challengeTexts = map[string]challengeText{
	"fr": {
		Lang: "fr", Title: "Vérification de votre connexion", Heading: "Un instant, s'il vous plaît",
		Why: "Ce service subit une forte attaque automatisée. Pour laisser entrer les clients, il demande à chaque navigateur " +
			"un court calcul que les robots doivent payer aussi.",
		Working: "Ce service subit une forte attaque automatisée. Pour laisser entrer les clients, votre navigateur fait " +
			"un court calcul que les robots doivent payer aussi. Cela prend en général quelques secondes, puis la page continue d'elle-même.",
		WorkingForm: "Ce service subit une forte attaque automatisée. Pour laisser entrer les clients, votre navigateur fait " +
			"un court calcul que les robots doivent payer aussi. Cela prend en général quelques secondes, puis votre connexion " +
			"reprend d'elle-même, sans rien ressaisir.",
		NoScript: "JavaScript est désactivé : le calcul en a besoin. Activez-le pour ce site puis rechargez la page, ou " +
			"utilisez l'application de la banque. Les paiements par carte, les retraits et les codes 3-D Secure ne sont pas concernés.",
		NoCrypto: "Ce navigateur ne peut pas faire ce calcul (il faut un navigateur récent et une connexion sécurisée). " +
			"Utilisez l'application de la banque ou un autre navigateur.",
		Done: "C'est fait, merci.", DoneBack: "C'est fait, merci. Renvoyez le formulaire.", Continue: "Continuer",
	},
	"en": {
		Lang: "en", Title: "Checking your connection", Heading: "One moment, please",
		Why: "This service is under a heavy automated attack. To let customers in, it asks every browser for a short " +
			"calculation that bots must pay for too.",
		Working: "This service is under a heavy automated attack. To let customers in, your browser is doing a short " +
			"calculation that bots must pay for too. It usually takes a few seconds, and then this page continues by itself.",
		WorkingForm: "This service is under a heavy automated attack. To let customers in, your browser is doing a short " +
			"calculation that bots must pay for too. It usually takes a few seconds, and then your sign-in carries on by " +
			"itself, with nothing to type again.",
		NoScript: "JavaScript is turned off, and the calculation needs it. Turn it on for this site and reload, or use " +
			"the bank's mobile app. Card payments, cash withdrawals and 3-D Secure codes are not affected.",
		NoCrypto: "This browser cannot do the calculation (it needs a recent browser and a secure connection). " +
			"Please use the bank's mobile app or another browser.",
		Done: "Done, thank you.", DoneBack: "Done, thank you. Please send the form again.", Continue: "Continue",
	},
}

// challengePage is the browser's side of the challenge: no dependency, the
// Web Crypto API hashing in batches, a <noscript> that says what to do. The
// solution goes back in the rempart_solution cookie; a GET reloads, a login
// form the page carried back is sent again (the customer types nothing
// twice), and any other POST goes back to its form.
func challengePage() *template.Template {
	return template.Must(template.New("challenge").Parse(`<!doctype html>
<html lang="{{.T.Lang}}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex"><title>{{.T.Title}}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em;color:#1a1a1a}</style>
</head><body>
<h1>{{.T.Heading}}</h1>
<p id="status" role="status">{{.T.Why}}</p>
<noscript><p><strong>{{.T.NoScript}}</strong></p></noscript>
{{with .Again}}<form method="post" action="{{.Action}}" id="again">
{{range .Fields}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}</form>
{{end}}<script>
(async function () {
  var challenge = {{.Challenge}}, bits = {{.Bits}}, method = {{.Method}}, again = {{if .Again}}true{{else}}false{{end}};
  var status = document.getElementById("status");
  if (!window.crypto || !crypto.subtle || !window.TextEncoder) {
    status.textContent = {{.T.NoCrypto}};
    return;
  }
  status.textContent = again ? {{.T.WorkingForm}} : {{.T.Working}};
  var enc = new TextEncoder(), whole = Math.floor(bits / 8), rest = bits % 8;
  function enough(h) {
    for (var i = 0; i < whole; i++) if (h[i] !== 0) return false;
    return rest === 0 || (h[whole] >> (8 - rest)) === 0;
  }
  for (var base = 0; ; base += 512) {
    var batch = [];
    for (var j = 0; j < 512; j++) batch.push(crypto.subtle.digest("SHA-256", enc.encode(challenge + "." + (base + j))));
    var sums = await Promise.all(batch);
    for (var k = 0; k < sums.length; k++) {
      if (!enough(new Uint8Array(sums[k]))) continue;
      document.cookie = "rempart_solution=" + challenge + "." + (base + k) + "; path=/; max-age=120; samesite=lax" +
        (location.protocol === "https:" ? "; secure" : "");
      if (method === "GET" || method === "HEAD") { location.reload(); return; }
      if (again) { status.textContent = {{.T.Done}}; document.getElementById("again").submit(); return; }
      status.textContent = {{.T.DoneBack}};
      history.back();
      return;
    }
  }
})();
</script>
</body></html>
`))
}
