package gateway

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Partner is a partner network (a card scheme, the 3-D Secure server, the ATM
// network, the instant-payment scheme) as the gateway knows it.
type Partner struct {
	// Name is how routes and logs refer to it.
	Name string
	// Subjects identify its client certificates: the certificate's common
	// name, or one of its DNS or URI subject alternative names.
	Subjects []string
	// Clients are OAuth clients (client credentials) that act for it.
	Clients []string
}

// Errors of partner identification.
var (
	errUnknownPartner   = errors.New("the client certificate names no configured partner")
	errForwardedInvalid = errors.New("the forwarded client certificate does not verify against the partner CAs")
)

// PartnerIdentifier tells which partner a request comes from: by the client
// certificate of its TLS connection (verified by the listener against the
// partner CAs), or, behind a TLS-terminating balancer, by the certificate the
// balancer forwards in a header, believed only from trusted proxies and
// verified here against the same CAs. Source addresses identify nobody.
type PartnerIdentifier struct {
	bySubject map[string]string
	byClient  map[string]string
	roots     *x509.CertPool
	// header is the forwarded-certificate header; "" accepts none.
	header  string
	trusted func(netip.Addr) bool
	now     func() time.Time
}

// PartnerOptions configure a PartnerIdentifier.
type PartnerOptions struct {
	Partners []Partner
	// Roots are the partner CAs, used to verify forwarded certificates (the
	// listener verifies direct ones with the same pool).
	Roots *x509.CertPool
	// ForwardedHeader names the header a TLS-terminating balancer puts the
	// client certificate in: Envoy's x-forwarded-client-cert format
	// (Cert="<url-encoded PEM>") or a bare URL-encoded PEM, as nginx's
	// $ssl_client_escaped_cert. Empty accepts no forwarded certificate.
	ForwardedHeader string
	// Trusted reports whether the immediate peer is a balancer whose
	// forwarded certificate is believed.
	Trusted func(netip.Addr) bool
	// Now tells the time for certificate validity; nil means time.Now.
	Now func() time.Time
}

// NewPartnerIdentifier builds an identifier. Two partners claiming one
// subject or one client is a configuration error.
func NewPartnerIdentifier(o PartnerOptions) (*PartnerIdentifier, error) {
	p := &PartnerIdentifier{bySubject: map[string]string{}, byClient: map[string]string{}, roots: o.Roots,
		header: http.CanonicalHeaderKey(o.ForwardedHeader), trusted: o.Trusted, now: o.Now}
	if p.now == nil {
		p.now = time.Now
	}
	if p.trusted == nil {
		p.trusted = func(netip.Addr) bool { return false }
	}
	for _, pt := range o.Partners {
		for _, s := range pt.Subjects {
			if other, dup := p.bySubject[s]; dup && other != pt.Name {
				return nil, errors.New("subject " + s + " is claimed by partners " + other + " and " + pt.Name)
			}
			p.bySubject[s] = pt.Name
		}
		for _, c := range pt.Clients {
			if other, dup := p.byClient[c]; dup && other != pt.Name {
				return nil, errors.New("client " + c + " is claimed by partners " + other + " and " + pt.Name)
			}
			p.byClient[c] = pt.Name
		}
	}
	return p, nil
}

// ForClient returns the partner an OAuth client acts for, or "".
func (p *PartnerIdentifier) ForClient(clientID string) string {
	if p == nil {
		return ""
	}
	return p.byClient[clientID]
}

// FromRequest returns the partner r authenticated as, "" when it presented no
// certificate, or an error when it presented one that identifies no partner.
// It removes the forwarded-certificate header from the request, whoever sent
// it, so that nothing behind the gateway can be fooled by it.
func (p *PartnerIdentifier) FromRequest(r *http.Request) (string, error) {
	if p == nil {
		return "", nil
	}
	var fwd string
	if p.header != "" {
		fwd = r.Header.Get(p.header)
		r.Header.Del(p.header)
	}
	// The usual names of forwarded certificates go too, configured or not:
	// a back end behind the gateway may believe one of them.
	for _, h := range forwardedHeaders {
		delete(r.Header, h) // canonical already: no per-request canonicalisation
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return p.name(r.TLS.VerifiedChains[0][0])
	}
	if fwd == "" || p.roots == nil {
		return "", nil
	}
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !p.trusted(peer.Addr().Unmap()) {
		// From anyone but a trusted balancer the header is a forgery
		// attempt or a misconfiguration: either way it proves nothing.
		return "", nil
	}
	leaf, inter, err := parseForwardedCert(fwd)
	if err != nil {
		return "", errForwardedInvalid
	}
	pool := x509.NewCertPool()
	for _, c := range inter {
		pool.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: p.roots, Intermediates: pool, CurrentTime: p.now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return "", errForwardedInvalid
	}
	return p.name(leaf)
}

// name maps a verified leaf certificate to its partner.
func (p *PartnerIdentifier) name(leaf *x509.Certificate) (string, error) {
	if n, ok := p.bySubject[leaf.Subject.CommonName]; ok && leaf.Subject.CommonName != "" {
		return n, nil
	}
	for _, d := range leaf.DNSNames {
		if n, ok := p.bySubject[d]; ok {
			return n, nil
		}
	}
	for _, u := range leaf.URIs {
		if n, ok := p.bySubject[u.String()]; ok {
			return n, nil
		}
	}
	return "", errUnknownPartner
}

// forwardedHeaders are the common names of forwarded client certificates:
// Envoy's, RFC 9440's, and nginx's usual ones.
// The names are in canonical form (http.CanonicalHeaderKey).
var forwardedHeaders = []string{"X-Forwarded-Client-Cert", "Client-Cert", "Client-Cert-Chain", "X-Ssl-Client-Cert", "X-Client-Cert"}

// maxForwardedCerts bounds the chain a forwarded header may carry.
const maxForwardedCerts = 4

// parseForwardedCert reads the client certificate a balancer forwarded: an
// RFC 9440 byte sequence of its DER, or the last element of an x-forwarded-client-cert value (the one the nearest
// proxy added) and its Cert or Chain field, or a bare URL-encoded PEM. It
// returns the leaf and any intermediates that came with it.
func parseForwardedCert(v string) (*x509.Certificate, []*x509.Certificate, error) {
	enc := strings.TrimSpace(v)
	if len(enc) > 2 && enc[0] == ':' && enc[len(enc)-1] == ':' {
		// RFC 9440 Client-Cert: a structured-field byte sequence of the DER.
		der, err := base64.StdEncoding.DecodeString(enc[1 : len(enc)-1])
		if err != nil {
			return nil, nil, err
		}
		c, err := x509.ParseCertificate(der)
		return c, nil, err
	}
	if !strings.HasPrefix(enc, "-----") && !strings.HasPrefix(enc, "%2D") && !strings.HasPrefix(enc, "%2d") {
		elem := lastXFCCElement(enc)
		enc = ""
		for _, kv := range splitUnquoted(elem, ';') {
			k, val, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "chain":
				enc = unquote(val)
			case "cert":
				if enc == "" {
					enc = unquote(val)
				}
			}
		}
		if enc == "" {
			return nil, nil, errors.New("no Cert field")
		}
	}
	pemText, err := url.QueryUnescape(enc)
	if err != nil {
		return nil, nil, err
	}
	var certs []*x509.Certificate
	rest := []byte(pemText)
	for len(certs) < maxForwardedCerts {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, nil, errors.New("no certificate")
	}
	return certs[0], certs[1:], nil
}

// lastXFCCElement returns the last comma-separated element of an XFCC value,
// ignoring commas inside quotes.
func lastXFCCElement(v string) string {
	parts := splitUnquoted(v, ',')
	return parts[len(parts)-1]
}

// splitUnquoted splits s at sep outside double quotes.
func splitUnquoted(s string, sep byte) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && quoted:
			i++
		case s[i] == '"':
			quoted = !quoted
		case s[i] == sep && !quoted:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func unquote(v string) string {
	v = strings.TrimSpace(v)
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = strings.ReplaceAll(v[1:len(v)-1], `\"`, `"`)
	}
	return v
}
