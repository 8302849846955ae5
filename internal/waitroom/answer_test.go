package waitroom

import (
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
