package gateway

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/pki"
	"github.com/rempart/rempart/internal/request"
)

// partnerStack is a public listener speaking TLS (plain HTTP from loopback
// when plain is set) with one partner-only route, as serve builds it.
type partnerStack struct {
	addr string
	demo pki.Demo
	// seen is the partner and the forwarded header the upstream saw.
	seen chan [2]string
}

func startPartnerStack(t *testing.T, plain bool, forwarded string, trusted func(netip.Addr) bool) *partnerStack {
	t.Helper()
	d, err := pki.EnsureDemo(t.TempDir(), nil, []string{"card-schemes", "atm-network", "stranger"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	roots, err := pki.LoadPool(d.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	ids, err := NewPartnerIdentifier(PartnerOptions{Roots: roots, ForwardedHeader: forwarded, Trusted: trusted,
		Partners: []Partner{
			{Name: "card-schemes", Subjects: []string{pki.PartnerSubject("card-schemes")}},
			{Name: "atm-network", Subjects: []string{pki.PartnerSubject("atm-network")}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	st := &partnerStack{demo: d, seen: make(chan [2]string, 16)}
	a := &Authorizer{Partners: ids}
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st.seen <- [2]string{request.From(r.Context()).Partner, r.Header.Get(forwarded)}
		io.WriteString(w, "approved")
	})
	gw, err := New([]Route{{Name: "card-authorize", Pattern: "POST /v1/cards/authorize",
		Upstream: a.Middleware(Policy{Mode: AuthPartner, Partners: []string{"card-schemes"}})(up)}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	sc, sk := d.ServerFiles()
	pair, err := tls.LoadX509KeyPair(sc, sk)
	if err != nil {
		t.Fatal(err)
	}
	srv := &Server{Public: gw, PublicAddr: "127.0.0.1:0", OpsAddr: "127.0.0.1:0", DrainTimeout: time.Second,
		TLS: &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: roots,
			NextProtos: []string{"http/1.1"}}}
	if plain {
		srv.Plaintext = func(a netip.Addr) bool { return a.IsLoopback() }
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	st.addr, _ = srv.Addrs()
	return st
}

// client returns an https client presenting partner's certificate of d
// ("" for none), trusting the stack's CA.
func (s *partnerStack) client(t *testing.T, d pki.Demo, partner string) *http.Client {
	t.Helper()
	cfg, err := d.ClientTLS(partner)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RootCAs, err = pki.LoadPool(s.demo.CAFile()); err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

func post(t *testing.T, c *http.Client, u string, hdr http.Header) (int, string, error) {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(`{}`))
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

func TestPartnersOverMutualTLS(t *testing.T) {
	st := startPartnerStack(t, true, "", nil)
	rogue, err := pki.EnsureDemo(t.TempDir(), nil, []string{"card-schemes"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	https := "https://" + st.addr + "/v1/cards/authorize"
	cases := []struct {
		name    string
		client  *http.Client
		url     string
		status  int
		handErr bool // the TLS handshake itself must fail
	}{
		{"the card scheme's certificate", st.client(t, st.demo, "card-schemes"), https, 200, false},
		{"another partner's certificate", st.client(t, st.demo, "atm-network"), https, 403, false},
		{"a certificate of the CA naming no partner", st.client(t, st.demo, "stranger"), https, 403, false},
		{"no certificate", st.client(t, st.demo, ""), https, 401, false},
		{"the same name from another CA", st.client(t, rogue, "card-schemes"), https, 0, true},
		{"plain HTTP from loopback", &http.Client{Timeout: 5 * time.Second}, "http://" + st.addr + "/v1/cards/authorize", 401, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body, err := post(t, tc.client, tc.url, nil)
			if tc.handErr {
				if err == nil {
					t.Fatalf("answered %d %s: a certificate of another CA must fail the handshake", code, body)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.status {
				t.Fatalf("status %d, want %d: %s", code, tc.status, body)
			}
			if code == 200 {
				if got := <-st.seen; got[0] != "card-schemes" {
					t.Errorf("upstream saw partner %q", got[0])
				}
			} else if !strings.Contains(body, `"status":`) {
				t.Errorf("refusal is not a problem document: %s", body)
			}
		})
	}
}

func TestPlainHTTPRefusedWhenNotAdmitted(t *testing.T) {
	st := startPartnerStack(t, false, "", nil)
	code, body, err := post(t, &http.Client{Timeout: 5 * time.Second}, "http://"+st.addr+"/v1/cards/authorize", nil)
	if err != nil {
		t.Fatal(err)
	}
	if code != 400 || !strings.Contains(body, "tls-required") {
		t.Fatalf("plain HTTP answered %d %s, want 400 tls-required", code, body)
	}
}

// forwardedCert is what a TLS-terminating balancer sends for partner's
// certificate in Envoy's x-forwarded-client-cert format.
func forwardedCert(t *testing.T, d pki.Demo, partner string) string {
	t.Helper()
	c, _ := d.PartnerFiles(partner)
	b, err := os.ReadFile(c)
	if err != nil {
		t.Fatal(err)
	}
	return `By=spiffe://lb.bank;Hash=00;Cert="` + url.QueryEscape(string(b)) + `";Subject="CN=` + partner + `"`
}

func rfc9440(t *testing.T, d pki.Demo, partner string) string {
	t.Helper()
	c, _ := d.PartnerFiles(partner)
	b, err := os.ReadFile(c)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	return ":" + base64.StdEncoding.EncodeToString(blk.Bytes) + ":"
}

func TestForwardedClientCertificate(t *testing.T) {
	const hdr = "X-Forwarded-Client-Cert"
	loopbackTrusted := func(a netip.Addr) bool { return a.IsLoopback() }
	st := startPartnerStack(t, true, hdr, loopbackTrusted)
	rogue, err := pki.EnsureDemo(t.TempDir(), nil, []string{"card-schemes"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	u := "http://" + st.addr + "/v1/cards/authorize"
	cases := []struct {
		name   string
		value  string
		status int
	}{
		{"the balancer forwards the scheme's certificate", forwardedCert(t, st.demo, "card-schemes"), 200},
		{"a bare URL-encoded PEM, as nginx forwards it", strings.TrimSuffix(strings.TrimPrefix(
			forwardedCert(t, st.demo, "card-schemes"), `By=spiffe://lb.bank;Hash=00;Cert="`), `";Subject="CN=card-schemes"`), 200},
		{"an RFC 9440 Client-Cert byte sequence", rfc9440(t, st.demo, "card-schemes"), 200},
		{"a certificate of another CA", forwardedCert(t, rogue, "card-schemes"), 403},
		{"only a subject, no certificate", `Subject="CN=card-schemes";DNS=card-schemes.partners.rempart.test`, 403},
		{"garbage", `Cert="%%%"`, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body, err := post(t, plain, u, http.Header{hdr: {tc.value}})
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.status {
				t.Fatalf("status %d, want %d: %s", code, tc.status, body)
			}
			if code == 200 {
				got := <-st.seen
				if got[0] != "card-schemes" || got[1] != "" {
					t.Errorf("upstream saw partner %q and header %q: the header must be removed", got[0], got[1])
				}
			}
		})
	}

	t.Run("from a peer that is not a trusted proxy", func(t *testing.T) {
		untrusted := startPartnerStack(t, true, hdr, func(netip.Addr) bool { return false })
		code, body, err := post(t, plain, "http://"+untrusted.addr+"/v1/cards/authorize",
			http.Header{hdr: {forwardedCert(t, untrusted.demo, "card-schemes")}})
		if err != nil {
			t.Fatal(err)
		}
		if code != 401 {
			t.Fatalf("status %d, want 401 (a forwarded certificate from anyone but a balancer proves nothing): %s", code, body)
		}
	})
}

func FuzzForwardedCert(f *testing.F) {
	f.Add(`By=spiffe://lb;Cert="-----BEGIN%20CERTIFICATE-----%0AAA%3D%3D%0A-----END%20CERTIFICATE-----";Subject="CN=x"`)
	f.Add(`Hash=1,Cert="a\"b";Chain=""`)
	f.Add(`%2D%2D%2D%2D%2DBEGIN`)
	f.Fuzz(func(t *testing.T, v string) {
		leaf, inter, err := parseForwardedCert(v)
		if err != nil {
			return
		}
		if leaf == nil || len(inter) >= maxForwardedCerts {
			t.Fatalf("parsed %v and %d intermediates", leaf, len(inter))
		}
	})
}

func TestPartnerIdentifierRefusesSharedSubjects(t *testing.T) {
	_, err := NewPartnerIdentifier(PartnerOptions{Partners: []Partner{
		{Name: "a", Subjects: []string{"x"}}, {Name: "b", Subjects: []string{"x"}}}})
	if err == nil {
		t.Fatal("two partners claiming one subject were accepted")
	}
}

// Interface guard.
var _ net.Listener = (*dualListener)(nil)
