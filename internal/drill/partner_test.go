package drill

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/pki"
)

// partnerBank is a listener that, like rempart's, speaks TLS with client
// certificates of the demo partner CA on one server and plain HTTP on
// another; it records who called which path over which.
type partnerBank struct {
	tls, plain *httptest.Server
	handshakes atomic.Int64 // TLS connections accepted

	mu      sync.Mutex
	byPath  map[string]map[string]int // path -> presented partner ("" for none, "plain") -> requests
	resumed int                       // requests on resumed TLS sessions
}

func newPartnerBank(t *testing.T, demo pki.Demo) *partnerBank {
	t.Helper()
	b := &partnerBank{byPath: map[string]map[string]int{}}
	record := func(r *http.Request) {
		who := "plain"
		if r.TLS != nil {
			who = ""
			if len(r.TLS.PeerCertificates) > 0 {
				who = r.TLS.PeerCertificates[0].Subject.CommonName
			}
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		if r.TLS != nil && r.TLS.DidResume {
			b.resumed++
		}
		if b.byPath[r.URL.Path] == nil {
			b.byPath[r.URL.Path] = map[string]int{}
		}
		b.byPath[r.URL.Path][who]++
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		record(r)
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"approved":true}`))
	})
	roots, err := pki.LoadPool(demo.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	cert, key := demo.ServerFiles()
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	b.tls = httptest.NewUnstartedServer(h)
	b.tls.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: roots, ClientAuth: tls.RequireAndVerifyClientCert}
	b.tls.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			b.handshakes.Add(1)
		}
	}
	b.tls.Config.ErrorLog = log.New(io.Discard, "", 0) // handshakes cut short by the end of a run
	b.tls.StartTLS()
	t.Cleanup(b.tls.Close)
	b.plain = httptest.NewServer(h)
	t.Cleanup(b.plain.Close)
	return b
}

// A partner population sends each channel with the certificate of the
// partner owning it, over TLS, reusing its connections; a customer
// population's requests to the same channels, and every request on an arm
// publishing no partner TLS, go in plain HTTP.
func TestPartnersPresentTheirCertificates(t *testing.T) {
	partners := []string{PartnerCardSchemes, PartnerThreeDS, PartnerATMNetwork, PartnerInstantScheme}
	demo, err := pki.EnsureDemo(t.TempDir(), nil, partners, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cfgs := map[string]*tls.Config{}
	for _, p := range partners {
		if cfgs[p], err = demo.ClientTLS(p); err != nil {
			t.Fatal(err)
		}
	}
	const yaml = `
name: partners
seed: 7
populations:
  - name: schemes
    requests: {card_authorize: 1, threeds_challenge: 1, atm_withdraw: 1, instant_transfer: 1}
    partner: true
  - name: shoppers
    requests: {card_authorize: 1}
phases:
  - name: p
    duration: 1s
    rates: {schemes: 60, shoppers: 10}
`
	owner := map[string]string{}
	for _, tg := range DefaultTargets() {
		if tg.Partner != "" && tg.Path != "" {
			owner[tg.Path] = tg.Partner
		}
	}
	for _, tt := range []struct {
		name    string
		withTLS bool
	}{
		{"arm with partner TLS", true},
		{"arm without", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := newPartnerBank(t, demo)
			s := mustScenario(t, yaml)
			e, rec, _ := newTestEngine(t, s)
			e.setBase(b.plain.URL)
			if tt.withTLS {
				e.setPartners(b.tls.URL, nil, cfgs)
			}
			// Twice: the second run finds the connections the first opened.
			e.run(context.Background(), time.Now())
			warm := b.handshakes.Load()
			e.run(context.Background(), time.Now())
			again := b.handshakes.Load()
			// Then with the connections lost: new ones resume their
			// sessions, still as the same partners.
			if pp := e.partners.Load(); pp != nil {
				pp.close()
			}
			e.run(context.Background(), time.Now())

			_, c := rec.phaseHist(func(_, _, pop int) bool { return s.Populations[pop].Name == "schemes" })
			if c.Offered < 90 || c.OK != c.Offered {
				t.Fatalf("partner requests: %+v, want every one answered", c)
			}
			_, shop := rec.phaseHist(func(_, _, pop int) bool { return s.Populations[pop].Name == "shoppers" })
			b.mu.Lock()
			defer b.mu.Unlock()
			var overTLS int
			for path, callers := range b.byPath {
				for who, n := range callers {
					switch {
					case !tt.withTLS && who != "plain":
						t.Errorf("%s: %d requests as %q on an arm without partner TLS", path, n, who)
					case who == "plain":
					case who != owner[path]:
						t.Errorf("%s: %d requests presented %q, want %q", path, n, who, owner[path])
					default:
						overTLS += n
					}
				}
			}
			plainCards := b.byPath["/v1/cards/authorize"]["plain"]
			if tt.withTLS {
				if overTLS != int(c.Offered) {
					t.Errorf("%d partner requests over TLS, want all %d", overTLS, c.Offered)
				}
				if plainCards != int(shop.Offered) {
					t.Errorf("%d plain card requests, want the shoppers' %d", plainCards, shop.Offered)
				}
				// Keep-alive: a handshake per connection, not per request;
				// the second half of the requests found theirs open.
				if warm == 0 || again-warm > int64(overTLS)/12 {
					t.Errorf("%d TLS connections, then %d more for the second %d requests: connections are not reused",
						warm, again-warm, overTLS/3)
				}
				if b.resumed == 0 {
					t.Error("no request on a resumed TLS session after the connections were lost")
				}
			}
		})
	}
}
