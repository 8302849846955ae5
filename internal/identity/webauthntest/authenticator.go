// Package webauthntest is a virtual WebAuthn authenticator for tests: it
// answers the options of a begun registration or login the way a browser
// and a FIDO2 key together would (clientDataJSON, authenticatorData, a
// "none" or "packed" self attestation, ES256 signatures), so the ceremonies
// can be driven over HTTP without a browser. It is imported only by tests.
package webauthntest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
	"github.com/go-webauthn/webauthn/protocol/webauthncose"
)

var b64 = base64.RawURLEncoding

// Authenticator is a FIDO2 key in a browser at Origin.
type Authenticator struct {
	// Origin is what the "browser" writes into clientDataJSON.
	Origin string
	// RPID, when set, overrides the relying-party id the options ask for
	// when hashing it into authenticatorData (a phishing relay's view).
	RPID string
	// Format is the attestation format: "none" (default) or "packed"
	// (self attestation).
	Format string
	// NoUV leaves the user-verified flag unset (a key without a PIN).
	NoUV bool
	// Type overrides the clientDataJSON type ("webauthn.create"/"get").
	Type string

	mu    sync.Mutex
	creds map[string]*credential
}

type credential struct {
	id      []byte
	key     *ecdsa.PrivateKey
	user    []byte
	counter uint32
}

// New returns an authenticator in a browser at origin.
func New(origin string) *Authenticator {
	return &Authenticator{Origin: origin, creds: map[string]*credential{}}
}

// Clone returns a second authenticator holding copies of every key and
// counter, as an attacker who extracted them would.
func (a *Authenticator) Clone() *Authenticator {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := &Authenticator{Origin: a.Origin, RPID: a.RPID, Format: a.Format, NoUV: a.NoUV, creds: map[string]*credential{}}
	for k, v := range a.creds {
		cc := *v
		c.creds[k] = &cc
	}
	return c
}

// SetCounter sets every credential's signature counter.
func (a *Authenticator) SetCounter(n uint32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.creds {
		c.counter = n
	}
}

type options struct {
	Challenge string `json:"challenge"`
	RP        struct {
		ID string `json:"id"`
	} `json:"rp"`
	RPID string `json:"rpId"`
	User struct {
		ID string `json:"id"`
	} `json:"user"`
	Allow []struct {
		ID string `json:"id"`
	} `json:"allowCredentials"`
}

func (a *Authenticator) clientData(typ, challenge string) []byte {
	if a.Type != "" {
		typ = a.Type
	}
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": a.Origin, "crossOrigin": false})
	return b
}

func (a *Authenticator) flags(extra byte) byte {
	f := byte(0x01) | extra // user present
	if !a.NoUV {
		f |= 0x04
	}
	return f
}

// Create answers the publicKey member of a begun registration with the
// JSON of a new credential, as navigator.credentials.create would.
func (a *Authenticator) Create(publicKey []byte) ([]byte, error) {
	var o options
	if err := json.Unmarshal(publicKey, &o); err != nil {
		return nil, err
	}
	rpID := o.RP.ID
	if a.RPID != "" {
		rpID = a.RPID
	}
	user, err := b64.DecodeString(o.User.ID)
	if err != nil {
		return nil, fmt.Errorf("user id: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	id := make([]byte, 32)
	rand.Read(id)
	cose, err := webauthncbor.Marshal(webauthncose.EC2PublicKeyData{
		PublicKeyData: webauthncose.PublicKeyData{KeyType: int64(webauthncose.EllipticKey), Algorithm: int64(webauthncose.AlgES256)},
		Curve:         1, // P-256
		XCoord:        key.PublicKey.X.FillBytes(make([]byte, 32)),
		YCoord:        key.PublicKey.Y.FillBytes(make([]byte, 32)),
	})
	if err != nil {
		return nil, err
	}
	rpHash := sha256.Sum256([]byte(rpID))
	auth := append([]byte{}, rpHash[:]...)
	auth = append(auth, a.flags(0x40)) // attested credential data
	auth = binary.BigEndian.AppendUint32(auth, 0)
	auth = append(auth, make([]byte, 16)...) // AAGUID: none
	auth = binary.BigEndian.AppendUint16(auth, uint16(len(id)))
	auth = append(auth, id...)
	auth = append(auth, cose...)
	cd := a.clientData("webauthn.create", o.Challenge)
	att := map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": auth}
	if a.Format == "packed" {
		cdh := sha256.Sum256(cd)
		sig, err := sign(key, append(append([]byte{}, auth...), cdh[:]...))
		if err != nil {
			return nil, err
		}
		att["fmt"] = "packed"
		att["attStmt"] = map[string]any{"alg": int64(webauthncose.AlgES256), "sig": sig}
	}
	ao, err := webauthncbor.Marshal(att)
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.creds[string(id)] = &credential{id: id, key: key, user: user}
	a.mu.Unlock()
	return json.Marshal(map[string]any{
		"id": b64.EncodeToString(id), "rawId": b64.EncodeToString(id), "type": "public-key",
		"response": map[string]any{"clientDataJSON": b64.EncodeToString(cd), "attestationObject": b64.EncodeToString(ao),
			"transports": []string{"usb"}},
	})
}

// ErrNoCredential is returned by Get when none of the allowed credentials
// is on this authenticator.
var ErrNoCredential = errors.New("no matching credential on this authenticator")

// Get answers the publicKey member of a begun login with an assertion,
// as navigator.credentials.get would. Each assertion advances the
// credential's signature counter by one.
func (a *Authenticator) Get(publicKey []byte) ([]byte, error) {
	var o options
	if err := json.Unmarshal(publicKey, &o); err != nil {
		return nil, err
	}
	rpID := o.RPID
	if a.RPID != "" {
		rpID = a.RPID
	}
	a.mu.Lock()
	var c *credential
	for _, al := range o.Allow {
		id, _ := b64.DecodeString(al.ID)
		if cc, ok := a.creds[string(id)]; ok {
			c = cc
			break
		}
	}
	if c == nil && len(o.Allow) == 0 {
		for _, cc := range a.creds { // discoverable: any of ours
			c = cc
			break
		}
	}
	if c == nil {
		a.mu.Unlock()
		return nil, ErrNoCredential
	}
	c.counter++
	counter := c.counter
	a.mu.Unlock()

	rpHash := sha256.Sum256([]byte(rpID))
	auth := append([]byte{}, rpHash[:]...)
	auth = append(auth, a.flags(0))
	auth = binary.BigEndian.AppendUint32(auth, counter)
	cd := a.clientData("webauthn.get", o.Challenge)
	cdh := sha256.Sum256(cd)
	sig, err := sign(c.key, append(append([]byte{}, auth...), cdh[:]...))
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"id": b64.EncodeToString(c.id), "rawId": b64.EncodeToString(c.id), "type": "public-key",
		"response": map[string]any{"clientDataJSON": b64.EncodeToString(cd), "authenticatorData": b64.EncodeToString(auth),
			"signature": b64.EncodeToString(sig), "userHandle": b64.EncodeToString(c.user)},
	})
}

func sign(k *ecdsa.PrivateKey, msg []byte) ([]byte, error) {
	h := sha256.Sum256(msg)
	return ecdsa.SignASN1(rand.Reader, k, h[:])
}
