package identity

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/identity/keys"
)

func fuzzVerifier(t testing.TB) (*Verifier, keys.Key) {
	set, err := keys.Open(context.Background(), keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := set.Signing()
	return NewVerifier(VerifierConfig{Issuer: "http://i", Audience: "rempart", Keys: localKeys{set}, CacheSize: -1}), k
}

func FuzzVerify(f *testing.F) {
	v, k := fuzzVerifier(f)
	good, _ := signJWT(k.ID, k.Private, AccessTokenType, accessClaims{Issuer: "http://i", Subject: "alice",
		Audience: []string{"rempart"}, ClientID: "c", ID: "j", Expiry: time.Now().Add(time.Hour).Unix()})
	f.Add(good)
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := v.Verify(context.Background(), tok)
		if err == nil && tok != good && (c.Subject == "" || c.ClientID == "") {
			t.Fatalf("accepted %q with %+v", tok, c)
		}
	})
}

func FuzzSplitJWS(f *testing.F) {
	f.Add("eyJhbGciOiJFZERTQSJ9.e30.AAAA")
	f.Add("..")
	f.Fuzz(func(t *testing.T, s string) { _, _, _, _, _ = splitJWS(s) })
}

func FuzzParseRefreshToken(f *testing.F) {
	f.Add(newRefreshToken(randomID(16)))
	f.Add("rt1..")
	f.Fuzz(func(t *testing.T, s string) {
		g, ok := parseRefreshToken(s)
		if ok && len(g) != 22 {
			t.Fatalf("grant %q from %q", g, s)
		}
	})
}

func FuzzDeviceCookie(f *testing.F) {
	p := &Provider{deviceKey: make([]byte, 32)}
	p.cfg.Now = time.Now
	p.cfg.DeviceCookieTTL = time.Hour
	f.Add(p.deviceCookieValue("alice", time.Now()), "alice")
	f.Add("YWxpY2U.AAAAAAAAAAAAAAAAAAAAAA.1.AAAA", "alice")
	f.Fuzz(func(t *testing.T, v, account string) {
		if _, ok := parseDeviceCookie(v); !ok {
			if _, ok := p.checkDeviceCookie(v, account); ok {
				t.Fatal("unparsable cookie verified")
			}
		}
		p.checkDeviceCookie(v, account)
	})
}

func FuzzDecodeRef(f *testing.F) {
	p := &Provider{refKey: make([]byte, 32)}
	good := p.encodeRef(tokenRef{Kind: "access", Claims: &accessClaims{Subject: "a"}})
	f.Add(good)
	f.Add("ref.e30")
	f.Add("ref.eyJrIjoiYWNjZXNzIn0.AAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, s string) {
		r, ok := p.decodeRef(s)
		if ok && s != good {
			// Only references the process minted decode.
			t.Fatalf("forged reference %q decoded to %+v", s, r)
		}
	})
}

// FuzzPickLang chooses the login page's language from what the browser
// sends: the lang form field, the app's ui_locales, Accept-Language. The
// answer is always French or English, and an explicit lang=fr or lang=en
// wins over everything else.
func FuzzPickLang(f *testing.F) {
	for _, s := range [][3]string{
		{"", "", "fr-FR,fr;q=0.9,en-US;q=0.8,en;q=0.7"},
		{"", "en", "fr"},
		{"en", "fr", "fr"},
		{"de", "", "de-DE,de;q=0.9"},
		{"", "en-GB fr", "*"},
		{"", "", "en;q=0.5,fr;q=0.5"},
		{"", "", "en;q=x,fr;q=2,;;;"},
		{"", "", strings.Repeat("a-", 500)},
		{"", "\xff", "zh-Hant-TW-u-nu-hanidec,en;q=0.1"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, formLang, uiLocale, acceptLanguage string) {
		req := httptest.NewRequest(http.MethodGet, PathLogin+"?"+url.Values{"lang": {formLang}}.Encode(), nil)
		if acceptLanguage != "" {
			req.Header.Set("Accept-Language", acceptLanguage)
		}
		got := pickLang(req, uiLocale)
		if got != "fr" && got != "en" || (formLang == "fr" || formLang == "en") && got != formLang {
			t.Fatalf("lang %q, ui_locales %q, Accept-Language %q: %q", formLang, uiLocale, acceptLanguage, got)
		}
		if _, ok := messages[got]; !ok {
			t.Fatalf("no messages in %q", got)
		}
	})
}
