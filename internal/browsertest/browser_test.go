package browsertest

import (
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestTab checks the harness against a page that echoes what the browser
// sent: the tab's language reaches the server, the page's text comes back,
// and a screenshot is a PNG on disk.
func TestTab(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(`<!doctype html><title>echo</title><p id="lang">` + r.Header.Get("Accept-Language") + `</p>`))
	}))
	t.Cleanup(srv.Close)
	b := New(t)
	for _, lang := range []string{"fr-FR,fr", "en-GB,en"} {
		t.Run(lang, func(t *testing.T) {
			tab := b.Tab(t, lang)
			tab.Do(chromedp.Navigate(srv.URL))
			if got := tab.Text("#lang"); got != lang {
				t.Errorf("the server saw Accept-Language %q, want %q", got, lang)
			}
			path := tab.Shot("page")
			png, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(png) < 8 || string(png[1:4]) != "PNG" {
				t.Errorf("%s is not a PNG", path)
			}
		})
	}
}
