package pow

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// Sizes and bounds of the wire format.
const (
	Version   = "1"
	NonceSize = 16
	MACSize   = sha256.Size
	MinBits   = 1
	// MaxBits bounds the work a server may ask for: 2^32 hashes is minutes
	// on a phone, beyond anything a bank would make a customer wait.
	MaxBits = 32
	// MaxLen bounds the length of a challenge or solution a parser accepts,
	// well above the longest valid token (an IPv6 binding and a 20-digit
	// counter), so a hostile header cannot make a parser scan megabytes.
	MaxLen = 256
)

// ErrMalformed means a token does not follow the wire format.
var ErrMalformed = errors.New("malformed proof-of-work token")

var b64 = base64.RawURLEncoding

// Challenge is a parsed challenge token.
type Challenge struct {
	Bits    int             // required leading zero bits
	Expires int64           // Unix seconds
	Nonce   [NonceSize]byte // random, makes every challenge unique
	Prefix  netip.Prefix    // client prefix the challenge is bound to (masked)
	MAC     [MACSize]byte   // server's MAC over Payload
}

// Payload returns the signed part of the token: every field but the MAC.
func (c Challenge) Payload() string {
	var b strings.Builder
	b.Grow(96)
	c.appendPayload(&b)
	return b.String()
}

func (c Challenge) appendPayload(b *strings.Builder) {
	b.WriteString(Version)
	b.WriteByte('.')
	b.WriteString(strconv.Itoa(c.Bits))
	b.WriteByte('.')
	b.WriteString(strconv.FormatInt(c.Expires, 10))
	b.WriteByte('.')
	b.WriteString(b64.EncodeToString(c.Nonce[:]))
	b.WriteByte('.')
	b.WriteString(b64.EncodeToString(encodeBinding(c.Prefix)))
}

// String returns the challenge token.
func (c Challenge) String() string {
	var b strings.Builder
	b.Grow(160)
	c.appendPayload(&b)
	b.WriteByte('.')
	b.WriteString(b64.EncodeToString(c.MAC[:]))
	return b.String()
}

func encodeBinding(p netip.Prefix) []byte {
	if !p.IsValid() {
		return []byte{0}
	}
	a := p.Masked().Addr()
	out := []byte{byte(p.Bits())}
	if a.Is4() {
		v := a.As4()
		return append(out, v[:]...)
	}
	v := a.As16()
	return append(out, v[:]...)
}

func decodeBinding(b []byte) (netip.Prefix, bool) {
	if len(b) != 5 && len(b) != 17 {
		return netip.Prefix{}, false
	}
	addr, ok := netip.AddrFromSlice(b[1:])
	if !ok {
		return netip.Prefix{}, false
	}
	p, err := addr.Prefix(int(b[0]))
	if err != nil || p != netip.PrefixFrom(addr, int(b[0])) {
		// Bits out of range, or address bits set past the prefix: not
		// something a server wrote.
		return netip.Prefix{}, false
	}
	return p, true
}

// ParseChallenge reads a challenge token. It accepts only the canonical
// encoding (String of the result gives back s), so one challenge has exactly
// one spelling.
func ParseChallenge(s string) (Challenge, error) {
	var c Challenge
	if len(s) > MaxLen {
		return c, ErrMalformed
	}
	f := strings.Split(s, ".")
	if len(f) != 6 || f[0] != Version {
		return c, ErrMalformed
	}
	bits, ok := parseDecimal(f[1], 2)
	if !ok || bits < MinBits || bits > MaxBits {
		return c, ErrMalformed
	}
	c.Bits = int(bits)
	exp, ok := parseDecimal(f[2], 19)
	if !ok || exp > 1<<62 {
		return c, ErrMalformed
	}
	c.Expires = int64(exp)
	if !decodeFixed(c.Nonce[:], f[3]) || !decodeFixed(c.MAC[:], f[5]) {
		return c, ErrMalformed
	}
	bind, err := b64.Strict().DecodeString(f[4])
	if err != nil {
		return c, ErrMalformed
	}
	if c.Prefix, ok = decodeBinding(bind); !ok {
		return c, ErrMalformed
	}
	return c, nil
}

func decodeFixed(dst []byte, s string) bool {
	if b64.EncodedLen(len(dst)) != len(s) {
		return false
	}
	n, err := b64.Strict().Decode(dst, []byte(s))
	return err == nil && n == len(dst)
}

// parseDecimal reads an unsigned decimal of at most maxDigits digits with no
// sign and no leading zeros.
func parseDecimal(s string, maxDigits int) (uint64, bool) {
	if len(s) == 0 || len(s) > maxDigits || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

// ParseSolution splits a solution token into its challenge token and
// counter. It does not parse the challenge; see ParseChallenge.
func ParseSolution(s string) (challenge string, counter uint64, err error) {
	if len(s) > MaxLen {
		return "", 0, ErrMalformed
	}
	i := strings.LastIndexByte(s, '.')
	if i < 0 {
		return "", 0, ErrMalformed
	}
	n, ok := parseDecimal(s[i+1:], 20)
	if !ok {
		return "", 0, ErrMalformed
	}
	return s[:i], n, nil
}

// Enough reports whether the SHA-256 of solution has at least bits leading
// zero bits. It is the whole of the server's work check: one hash.
func Enough(solution string, bits int) bool {
	if bits < MinBits || bits > MaxBits {
		return false
	}
	sum := sha256.Sum256([]byte(solution))
	return binary.BigEndian.Uint32(sum[:4])>>(32-bits) == 0
}

// Solve finds the smallest counter that makes challenge.counter a valid
// solution and returns that solution token. It reads only the bits field, so
// a client needs nothing but the token the server sent. It stops with
// ctx.Err() when ctx ends first.
func Solve(ctx context.Context, challenge string) (string, error) {
	f := strings.SplitN(challenge, ".", 3)
	if len(f) < 3 || f[0] != Version || len(challenge) > MaxLen-21 {
		return "", ErrMalformed
	}
	bits, ok := parseDecimal(f[1], 2)
	if !ok || bits < MinBits || bits > MaxBits {
		return "", ErrMalformed
	}
	buf := make([]byte, 0, len(challenge)+21)
	buf = append(buf, challenge...)
	buf = append(buf, '.')
	base := len(buf)
	shift := 32 - bits
	for counter := uint64(0); ; counter++ {
		if counter&0x3fff == 0 && ctx.Err() != nil {
			return "", ctx.Err()
		}
		buf = strconv.AppendUint(buf[:base], counter, 10)
		sum := sha256.Sum256(buf)
		if binary.BigEndian.Uint32(sum[:4])>>shift == 0 {
			return string(buf), nil
		}
	}
}
