package main

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/rempart/rempart/internal/browsertest"
	"github.com/rempart/rempart/internal/config"
	"github.com/rempart/rempart/internal/console"
	"github.com/rempart/rempart/internal/identity/admin"
)

// TestBrowserConsole enrols the first admin in Chromium with a virtual
// FIDO2 key (the token serve wrote), logs in with it, opens the console and
// watches a channel's served rate rise while traffic is sent; without the
// admin's session, and with the automation token, there is no console.
func TestBrowserConsole(t *testing.T) {
	b := browsertest.New(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opsAddr := l.Addr().String()
	l.Close()
	cfg := config.Default()
	cfg.Estate.Customers = 1000
	s := startServeAt(t, cfg, "127.0.0.1:0", opsAddr)
	_, port, _ := net.SplitHostPort(opsAddr)
	origin := "http://localhost:" + port // the relying party's origin (admin.DefaultRP)

	t.Run("no console without an admin session", func(t *testing.T) {
		noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		req, _ := http.NewRequest("GET", s.ops+console.Path, nil)
		req.Header.Set("Accept", "text/html")
		res, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), admin.PathLogin+"?next=") {
			t.Errorf("console without a session: %d to %q, want the login", res.StatusCode, res.Header.Get("Location"))
		}
		for _, p := range []string{console.Path, console.PathLive} {
			res, _ := s.do(t, "GET", s.ops+p, "", map[string]string{"Authorization": "Bearer " + s.opsToken(t)})
			if res.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s with the automation token: %d, want 401", p, res.StatusCode)
			}
		}
	})

	tok, err := os.ReadFile(filepath.Join(s.dataDir, "admin", "enrol-token"))
	if err != nil {
		t.Fatal(err)
	}
	tab := b.Tab(t, "en-GB,en")
	virtualAuthenticator(tab, webauthn.AuthenticatorTransportUsb)
	tab.Do(chromedp.Navigate(origin+admin.PathEnrol),
		chromedp.SendKeys(chromedp.ID("name"), "ada"),
		chromedp.SendKeys(chromedp.ID("token"), strings.TrimSpace(string(tok))),
		chromedp.Click(chromedp.CSS("button[type=submit]")))
	// Enrolled and logged in, the admin is sent to the console.
	tab.Until(`location.pathname === "` + console.Path + `"`)

	// A login of its own with the key just enrolled, from the bare login
	// page: the console is where it ends.
	tab.Do(chromedp.Navigate(origin+admin.PathLogin),
		chromedp.SendKeys(chromedp.ID("name"), "ada"),
		chromedp.Click(chromedp.CSS("button[type=submit]")))
	tab.Until(`location.pathname === "` + console.Path + `" && document.getElementById("updated").textContent.startsWith("updated")`)

	// Traffic on the parcel channel, which anyone may call, until the test ends.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			if res, err := s.client.Get(s.public + "/v1/parcels/LP123456789FR"); err == nil {
				res.Body.Close()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	tab.Until(`[...document.querySelectorAll("#routes tr")].some(tr => tr.cells[0].textContent === "parcel" && parseFloat(tr.cells[2].textContent) > 0)`)
	tab.Until(`!!document.querySelector("#routes svg.plot polyline")`)
	for _, sel := range []string{"#scrub", "#breakers", "#faults", "#room"} {
		if got := tab.Text(sel); strings.TrimSpace(got) == "" {
			t.Errorf("%s is empty", sel)
		}
	}
	tab.Shot("console")
}

// virtualAuthenticator gives the tab Chromium's virtual FIDO2 authenticator
// on transport (a USB key, or the device's own for a passkey), which
// verifies its user and confirms presence without anyone touching it.
func virtualAuthenticator(tab *browsertest.Tab, transport webauthn.AuthenticatorTransport) webauthn.AuthenticatorID {
	var id webauthn.AuthenticatorID
	tab.Do(func(ctx context.Context, target *chromedp.Target) (chromedp.Void, error) {
		if _, err := cdp.Call(ctx, target, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return chromedp.Void{}, err
		}
		res, err := cdp.Call(ctx, target, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
			Options: &webauthn.VirtualAuthenticatorOptions{Protocol: webauthn.AuthenticatorProtocolCtap2,
				Transport: transport, HasResidentKey: transport == webauthn.AuthenticatorTransportInternal,
				HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true}})
		if err == nil {
			id = res.AuthenticatorID
		}
		return chromedp.Void{}, err
	})
	return id
}
