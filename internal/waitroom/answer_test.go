package waitroom

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestPageWording: the waiting page says one second and several seconds
// as each language does, waiting in line and with the line full.
func TestPageWording(t *testing.T) {
	for _, c := range []struct {
		lang string
		p    page
		want string
	}{
		{"fr", page{Position: 3, Wait: time.Second, Poll: 1}, "Cette page se met à jour d&#39;elle-même chaque seconde."},
		{"fr", page{Position: 3, Wait: time.Second, Poll: 5}, "Cette page se met à jour d&#39;elle-même toutes les 5 secondes."},
		{"en", page{Position: 3, Wait: time.Second, Poll: 1}, "This page updates itself every second."},
		{"en", page{Position: 3, Wait: time.Second, Poll: 5}, "This page updates itself every 5 seconds."},
		{"fr", page{Full: true, Poll: 1}, "réessaiera d&#39;elle-même dans 1 seconde."},
		{"fr", page{Full: true, Poll: 7}, "réessaiera d&#39;elle-même dans 7 secondes."},
		{"en", page{Full: true, Poll: 1}, "will try again by itself in 1 second."},
		{"en", page{Full: true, Poll: 7}, "will try again by itself in 7 seconds."},
	} {
		t.Run(c.want, func(t *testing.T) {
			rec := httptest.NewRecorder()
			(&Room{}).writePage(rec, c.lang, c.p)
			if body := rec.Body.String(); !strings.Contains(body, c.want) {
				t.Errorf("page lacks %q:\n%s", c.want, body)
			}
		})
	}
}

// TestHeldFormIsSentAgain: a browser whose login POST the room holds back
// gets a page that sends the same form again when its turn is due (a reload
// would GET a POST-only address: the customer got a raw 404 and lost their
// place and what they had typed), with a button for browsers without
// JavaScript; a held GET still reloads itself.
func TestHeldFormIsSentAgain(t *testing.T) {
	f := newFixture(t, 0.01, nil)
	send := func(method, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, "/login/password", strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
		req.Header.Set("Accept-Language", "fr-FR,fr;q=0.9")
		rec := httptest.NewRecorder()
		f.h.ServeHTTP(rec, req)
		return rec
	}
	form := "id=ar_123&username=C00000042&password=p%26ss%22%3Cword"
	var rec *httptest.ResponseRecorder
	for range 50 {
		if rec = send(http.MethodPost, form); rec.Code == http.StatusServiceUnavailable {
			break
		}
	}
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("the room never held a login back: %d", rec.Code)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`<form method="post" action="/login/password" id="again">`,
		`<input type="hidden" name="id" value="ar_123">`,
		`<input type="hidden" name="username" value="C00000042">`,
		`<input type="hidden" name="password" value="p&amp;ss&#34;&lt;word">`,
		`<button type="submit">Continuer</button>`,
		"sans rien ressaisir",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("held page lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, `http-equiv="refresh"`) {
		t.Error("a held POST must not reload the page: the reload is a GET")
	}
	csp := rec.Header().Get("Content-Security-Policy")
	i := strings.Index(csp, "'nonce-")
	if i < 0 || !strings.Contains(csp, "form-action 'self'") {
		t.Fatalf("Content-Security-Policy %q: want a script nonce and form-action 'self'", csp)
	}
	nonce := strings.TrimSuffix(csp[i+len("'nonce-"):], "'")
	if !strings.Contains(body, `<script nonce="`+nonce+`">`) {
		t.Errorf("the page's script does not carry the policy's nonce %q:\n%s", nonce, body)
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q: a page carrying the form must not be kept", cc)
	}

	get := send(http.MethodGet, "")
	if get.Code == http.StatusServiceUnavailable && !strings.Contains(get.Body.String(), `http-equiv="refresh"`) {
		t.Errorf("a held GET lost its refresh:\n%s", get.Body)
	}
}

// TestHeldPageLanguage: the page holding a login form speaks the language
// the customer chose on that form, whatever the browser's.
func TestHeldPageLanguage(t *testing.T) {
	for _, c := range []struct{ form, acceptLanguage, want string }{
		{"lang=en&username=alice", "fr-FR,fr;q=0.9", "en"},
		{"lang=fr&username=alice", "en-GB,en;q=0.9", "fr"},
		{"username=alice", "en-GB,en;q=0.9", "en"},
		{"lang=de&username=alice", "fr-FR,fr;q=0.9", "fr"},
	} {
		t.Run(c.form+" "+c.acceptLanguage, func(t *testing.T) {
			f := newFixture(t, 1, nil)
			f.call("", nil) // takes the only turn
			req := httptest.NewRequest(http.MethodPost, "/login/password", strings.NewReader(c.form))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Accept", "text/html")
			req.Header.Set("Accept-Language", c.acceptLanguage)
			rec := httptest.NewRecorder()
			f.h.ServeHTTP(rec, req)
			if rec.Code != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want the waiting page", rec.Code)
			}
			if got := rec.Header().Get("Content-Language"); got != c.want || !strings.Contains(rec.Body.String(), `<html lang="`+c.want+`">`) {
				t.Errorf("page in %q, want %q", got, c.want)
			}
		})
	}
}
