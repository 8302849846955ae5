package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"time"

	"github.com/rempart/rempart/internal/config"
	"github.com/rempart/rempart/internal/gateway"
	"github.com/rempart/rempart/internal/identity"
	"github.com/rempart/rempart/internal/pki"
)

// trust is the public listener's TLS and who the gateway believes: the
// partner networks by certificate, the balancers that may forward one.
type trust struct {
	tls       *tls.Config // nil: plain HTTP only
	plaintext func(netip.Addr) bool
	partners  *gateway.PartnerIdentifier
	// routes lists, per route name, the partners that may call it.
	routes map[string][]string
	demo   *pki.Demo
	// proxies are scrub.trusted_proxies: the balancers believed for a
	// forwarded client address (the scrubber) and certificate (here).
	proxies []netip.Prefix
}

// buildTrust loads or creates the certificates and builds the partner
// identifier. With no certificates configured it creates the demo PKI in
// data_dir/pki, so that a fresh `rempart serve` speaks the same mutual TLS a
// deployment does.
func buildTrust(cfg *config.Config) (*trust, error) {
	t := &trust{routes: map[string][]string{}}
	var err error
	if t.proxies, err = prefixes("scrub.trusted_proxies", cfg.Scrub.TrustedProxies); err != nil {
		return nil, err
	}
	trusted := func(a netip.Addr) bool {
		return slices.ContainsFunc(t.proxies, func(p netip.Prefix) bool { return p.Contains(a) })
	}
	certFile, keyFile, caFiles := cfg.TLS.CertFile, cfg.TLS.KeyFile, cfg.TLS.ClientCAFiles
	if cfg.DemoPKI() {
		var names []string
		for _, p := range cfg.Partners {
			names = append(names, p.Name)
		}
		host, _, _ := net.SplitHostPort(cfg.Listen)
		d, err := pki.EnsureDemo(filepath.Join(cfg.DataDir, "pki"), []string{host}, names, time.Now())
		if err != nil {
			return nil, err
		}
		t.demo = &d
		certFile, keyFile = d.ServerFiles()
		caFiles = []string{d.CAFile()}
	}
	roots, err := pki.LoadPool(caFiles...)
	if err != nil {
		return nil, fmt.Errorf("tls.client_ca_files: %w", err)
	}
	var partners []gateway.Partner
	for _, p := range cfg.Partners {
		partners = append(partners, gateway.Partner{Name: p.Name, Subjects: p.Subjects, Clients: p.Clients})
		for _, r := range p.Routes {
			t.routes[r] = append(t.routes[r], p.Name)
		}
	}
	if t.partners, err = gateway.NewPartnerIdentifier(gateway.PartnerOptions{Partners: partners, Roots: roots,
		ForwardedHeader: cfg.TLS.ForwardedClientCert, Trusted: trusted}); err != nil {
		return nil, fmt.Errorf("partners: %w", err)
	}
	if !cfg.TLSEnabled() {
		return t, nil
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file: %w", err)
	}
	t.tls = &tls.Config{
		Certificates: []tls.Certificate{pair},
		// Customers' browsers and apps present no certificate; partners
		// must present one that verifies, or the handshake fails.
		ClientAuth: tls.VerifyClientCertIfGiven,
		ClientCAs:  roots,
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
	}
	switch cfg.TLS.Plaintext {
	case "loopback":
		t.plaintext = func(a netip.Addr) bool { return a.IsLoopback() }
	case "trusted_proxies":
		t.plaintext = trusted
	}
	return t, nil
}

// prefixes parses a configured list of CIDR prefixes; an error names the
// field and the entry.
func prefixes(field string, list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, s := range list {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", field, i, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// checkPartnerRoutes refuses configured partners naming routes that do not
// exist (the demo partners' routes may be absent from a custom table).
func (t *trust) checkPartnerRoutes(cfg *config.Config, routes []config.Route) error {
	if cfg.PartnersDefaulted() {
		return nil
	}
	for i, p := range cfg.Partners {
		for j, rn := range p.Routes {
			if !slices.ContainsFunc(routes, func(r config.Route) bool { return r.Name == rn }) {
				return fmt.Errorf("partners[%d].routes[%d]: %q is not a route", i, j, rn)
			}
		}
	}
	return nil
}

// policy is a route's authorization policy from its configuration.
func (t *trust) policy(r config.Route) (gateway.Policy, error) {
	mode, err := gateway.ParseAuthMode(r.Auth)
	if err != nil {
		return gateway.Policy{}, err
	}
	owner, err := gateway.ParseOwner(r.Owner)
	if err != nil {
		return gateway.Policy{}, err
	}
	return gateway.Policy{Mode: mode, Partners: t.routes[r.Name], Scope: r.Scope, Owner: owner,
		SCAMaxAge: r.SCAMaxAge, Services: r.Services}, nil
}

// verifierAdapter lets the gateway check tokens through its own small
// interface without importing identity.
type verifierAdapter struct{ v *identity.Verifier }

func (a verifierAdapter) VerifyRequest(r *http.Request) (gateway.Token, error) {
	c, err := a.v.FromRequest(r)
	if err != nil {
		return gateway.Token{}, err
	}
	// Client-credentials tokens come from no login, so no grant: a
	// client acting for itself, not for a customer.
	return gateway.Token{Subject: c.Subject, ClientID: c.ClientID, Scopes: c.Scopes, AMR: c.AMR,
		AuthTime: c.AuthTime, Service: c.Grant == ""}, nil
}

// channelAccess is who may call each estate channel by default: the
// partner networks their own channels, customers their own accounts.
func channelAccess(name string) (auth, scope, owner string, sca time.Duration) {
	switch name {
	case "card-authorize", "atm-withdraw", "3ds-challenge", "3ds-verify":
		return "partner", "", "", 0
	case "instant-transfer":
		// The scheme's incoming transfers by certificate; a customer's own
		// transfer from their account, with a fresh second factor (PSD2
		// strong customer authentication).
		return "required", "payments", "from", 5 * time.Minute
	case "accounts", "documents":
		return "required", "accounts", "customer", 0
	case "balance", "transactions":
		return "required", "accounts", "account", 0
	}
	return "optional", "", "", 0
}
