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

// TestOnEveryPage: a page that sends itself on to the next one before it
// has finished loading is still seen by a script the tab runs in every page.
func TestOnEveryPage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.URL.Path == "/first" {
			w.Write([]byte(`<!doctype html><title>first</title><p id="mark">first</p><form id="f" method="post" action="/second"></form><script>document.getElementById("f").submit()</script>`))
			return
		}
		w.Write([]byte(`<!doctype html><title>second</title><p id="mark">second</p>`))
	}))
	t.Cleanup(srv.Close)
	tab := New(t).Tab(t, "en")
	tab.OnEveryPage(`new MutationObserver((_, seen) => {
		const mark = document.getElementById("mark");
		if (!mark) return;
		sessionStorage.setItem("seen", (sessionStorage.getItem("seen") ?? "") + mark.textContent + ";");
		seen.disconnect();
	}).observe(document, {childList: true, subtree: true});`)
	tab.Do(chromedp.Navigate(srv.URL + "/first"))
	tab.Until(`document.title === "second"`)
	if got := Run(tab, chromedp.Evaluate[string](`sessionStorage.getItem("seen") ?? ""`)); got != "first;second;" {
		t.Errorf("pages seen %q, want first;second;", got)
	}
}
