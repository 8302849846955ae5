// Package pki makes the demo certificate authority that lets rempart serve
// TLS and authenticate partner networks by client certificate on a fresh
// machine, and loads certificate pools from PEM files. A bank brings its own
// certificates; the demo ones exist so the quick start and the drill run the
// same mutual TLS a deployment does.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// PartnerDomain suffixes the DNS name of every demo partner certificate:
// partner "card-schemes" is card-schemes.partners.rempart.test.
const PartnerDomain = ".partners.rempart.test"

// Validity of the demo certificates; they are renewed on start when less
// than renewBefore is left.
const (
	caValidity   = 5 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour
	renewBefore  = 30 * 24 * time.Hour
)

// Demo is the demo PKI in a directory.
type Demo struct {
	Dir string
}

// CAFile is the demo CA certificate: give it to curl (--cacert) and to
// partners' clients.
func (d Demo) CAFile() string { return filepath.Join(d.Dir, "ca.pem") }

// ServerFiles are the public listener's certificate and key.
func (d Demo) ServerFiles() (cert, key string) {
	return filepath.Join(d.Dir, "server.pem"), filepath.Join(d.Dir, "server-key.pem")
}

// PartnerFiles are a demo partner's client certificate and key.
func (d Demo) PartnerFiles(name string) (cert, key string) {
	return filepath.Join(d.Dir, "partner-"+name+".pem"), filepath.Join(d.Dir, "partner-"+name+"-key.pem")
}

// PartnerSubject is the DNS name a demo partner's certificate carries.
func PartnerSubject(name string) string { return name + PartnerDomain }

// EnsureDemo creates in dir whatever of the demo PKI is missing, expiring or
// does not cover hosts: a CA, a server certificate for hosts (plus
// localhost, 127.0.0.1 and ::1), and a client certificate per partner. Keys
// are written 0600 in a 0700 directory. An existing CA is kept, so
// certificates handed out earlier stay valid.
func EnsureDemo(dir string, hosts, partners []string, now time.Time) (Demo, error) {
	d := Demo{Dir: dir}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return d, fmt.Errorf("pki: %w", err)
	}
	caCert, caKey, err := loadPair(d.CAFile(), filepath.Join(dir, "ca-key.pem"))
	if err != nil || now.Add(renewBefore).After(caCert.NotAfter) {
		if caCert, caKey, err = issue(d.CAFile(), filepath.Join(dir, "ca-key.pem"), template(
			pkix.Name{CommonName: "rempart demo CA", Organization: []string{"rempart demo"}}, now, caValidity,
			func(t *x509.Certificate) {
				t.IsCA, t.BasicConstraintsValid, t.MaxPathLenZero = true, true, true
				t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
			}), nil, nil); err != nil {
			return d, err
		}
		// A new CA invalidates everything it did not sign.
		for _, f := range demoLeaves(d, partners) {
			os.Remove(f)
		}
	}
	all := append([]string{"localhost", "127.0.0.1", "::1"}, hosts...)
	sc, sk := d.ServerFiles()
	if cert, _, err := loadPair(sc, sk); err != nil || !covers(cert, all) || now.Add(renewBefore).After(cert.NotAfter) ||
		cert.CheckSignatureFrom(caCert) != nil {
		t := template(pkix.Name{CommonName: "rempart"}, now, leafValidity, func(t *x509.Certificate) {
			t.KeyUsage = x509.KeyUsageDigitalSignature
			t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			for _, h := range all {
				if ip := net.ParseIP(h); ip != nil {
					t.IPAddresses = append(t.IPAddresses, ip)
				} else if h != "" {
					t.DNSNames = append(t.DNSNames, h)
				}
			}
		})
		if _, _, err := issue(sc, sk, t, caCert, caKey); err != nil {
			return d, err
		}
	}
	for _, p := range partners {
		pc, pk := d.PartnerFiles(p)
		if cert, _, err := loadPair(pc, pk); err == nil && now.Add(renewBefore).Before(cert.NotAfter) &&
			cert.CheckSignatureFrom(caCert) == nil {
			continue
		}
		t := template(pkix.Name{CommonName: p, Organization: []string{"rempart demo partner"}}, now, leafValidity,
			func(t *x509.Certificate) {
				t.KeyUsage = x509.KeyUsageDigitalSignature
				t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
				t.DNSNames = []string{PartnerSubject(p)}
			})
		if _, _, err := issue(pc, pk, t, caCert, caKey); err != nil {
			return d, err
		}
	}
	return d, nil
}

func demoLeaves(d Demo, partners []string) []string {
	sc, sk := d.ServerFiles()
	out := []string{sc, sk}
	for _, p := range partners {
		c, k := d.PartnerFiles(p)
		out = append(out, c, k)
	}
	return out
}

func covers(c *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
				return false
			}
		} else if !slices.Contains(c.DNSNames, h) {
			return false
		}
	}
	return true
}

func template(subject pkix.Name, now time.Time, validity time.Duration, f func(*x509.Certificate)) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	t := &x509.Certificate{SerialNumber: serial, Subject: subject,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(validity)}
	f(t)
	return t
}

// issue makes a P-256 key and a certificate from t signed by parent (self
// signed when parent is nil) and writes both.
func issue(certFile, keyFile string, t, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	if parent == nil {
		parent, parentKey = t, key
	}
	der, err := x509.CreateCertificate(rand.Reader, t, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %s: %w", certFile, err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	if err := writeFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return nil, nil, err
	}
	if err := writeFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, nil, err
	}
	c, err := x509.ParseCertificate(der)
	return c, key, err
}

// writeFile replaces name atomically with data.
func writeFile(name string, data []byte, mode os.FileMode) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return nil
}

func loadPair(certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, err
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, errors.New("pki: not an ECDSA key")
	}
	return pair.Leaf, key, nil
}

// LoadPool reads every certificate of the PEM files into a pool.
func LoadPool(files ...string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("pki: %w", err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("pki: %s holds no PEM certificate", f)
		}
	}
	return pool, nil
}

// ClientTLS is the TLS configuration of a client of the demo listener: it
// trusts the demo CA and presents partner's certificate ("" for none).
func (d Demo) ClientTLS(partner string) (*tls.Config, error) {
	roots, err := LoadPool(d.CAFile())
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if partner != "" {
		c, k := d.PartnerFiles(partner)
		pair, err := tls.LoadX509KeyPair(c, k)
		if err != nil {
			return nil, fmt.Errorf("pki: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
