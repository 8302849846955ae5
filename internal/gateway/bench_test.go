package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/pki"
	"github.com/rempart/rempart/internal/request"
)

// BenchmarkHandshake compares a full TLS handshake of a partner presenting
// its client certificate to rempart's public listener (dual TLS/plain
// listener, client certificate verified against the partner CA) with a bare
// crypto/tls listener and no client certificate, in the same run. One op is
// one handshake: handshakes per second are 1e9 / ns/op (client and server
// share the machine, so the ratio is what holds).
func BenchmarkHandshake(b *testing.B) {
	d, err := pki.EnsureDemo(b.TempDir(), nil, []string{"card-schemes"}, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	roots, _ := pki.LoadPool(d.CAFile())
	sc, sk := d.ServerFiles()
	pair, err := tls.LoadX509KeyPair(sc, sk)
	if err != nil {
		b.Fatal(err)
	}
	partner, err := d.ClientTLS("card-schemes")
	if err != nil {
		b.Fatal(err)
	}
	anonymous, _ := d.ClientTLS("")
	// Resumption would hide the handshake's cost: every op is a full one.
	partner.SessionTicketsDisabled, anonymous.SessionTicketsDisabled = true, true
	bare := &tls.Config{Certificates: []tls.Certificate{pair}}
	mtls := &tls.Config{Certificates: []tls.Certificate{pair}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: roots}

	for _, tc := range []struct {
		name   string
		listen func(net.Listener) net.Listener
		client *tls.Config
	}{
		{"bare-crypto-tls", func(l net.Listener) net.Listener { return tls.NewListener(l, bare) }, anonymous},
		{"rempart-listener-no-client-cert", func(l net.Listener) net.Listener { return newDualListener(l, mtls, nil) }, anonymous},
		{"rempart-partner-mtls", func(l net.Listener) net.Listener { return newDualListener(l, mtls, nil) }, partner},
	} {
		b.Run(tc.name, func(b *testing.B) {
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			ln := tc.listen(raw)
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						c.(*tls.Conn).HandshakeContext(context.Background())
						c.Close()
					}()
				}
			}()
			for b.Loop() {
				c, err := tls.Dial("tcp", raw.Addr().String(), tc.client)
				if err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
		})
	}
}

// BenchmarkAuthorize is the per-request cost of the authorization layer
// over a bare handler: a customer token (verification faked: the verifier's
// own cost is in internal/identity's benchmarks) checked for scope and
// ownership of the path's account, and of the body's "from" account.
func BenchmarkAuthorize(b *testing.B) {
	a := &Authorizer{Verifier: testTokens(), Owners: fakeOwners{}, Now: func() time.Time { return testNow }}
	nop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	transfer := []byte(`{"from":"A-alice","to":"A-bruno","amount":1250,"reference":"rent"}`)
	for _, tc := range []struct {
		name string
		h    http.Handler
		body []byte
	}{
		{"bare", nop, nil},
		{"owner-account", a.Middleware(Policy{Mode: AuthRequired, Scope: "accounts", Owner: OwnerAccount})(nop), nil},
		{"bare-with-body", nop, transfer},
		{"owner-from-body", a.Middleware(Policy{Mode: AuthRequired, Scope: "payments", Owner: OwnerFrom, SCAMaxAge: 5 * time.Minute})(nop), transfer},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := httptest.NewRequest("GET", "/v1/accounts/A-alice/balance", nil)
			r.SetPathValue("account", "A-alice")
			r.Header.Set("Authorization", "Bearer alice")
			r = r.WithContext(request.With(r.Context(), &request.Info{}))
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				if tc.body != nil {
					r.Body = io.NopCloser(bytes.NewReader(tc.body))
				}
				tc.h.ServeHTTP(w, r)
			}
			if w.Code != 200 {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		})
	}
}

// BenchmarkGateway is the cost of the gateway's own layer (ids, trace
// context, body limit, metrics, the request log) over the bare handler.
func BenchmarkGateway(b *testing.B) {
	nop := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	g, err := New([]Route{{Name: "balance", Pattern: "GET /v1/accounts/{account}/balance", Upstream: nop}}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /v1/accounts/{account}/balance", nop)
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{{"bare-mux", mux}, {"gateway", g}} {
		b.Run(tc.name, func(b *testing.B) {
			r := httptest.NewRequest("GET", "/v1/accounts/A-alice/balance", nil)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				tc.h.ServeHTTP(w, r)
			}
		})
	}
}
