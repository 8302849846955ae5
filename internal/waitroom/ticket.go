package waitroom

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/netip"
	"time"
)

// A ticket is a place in the line. It is opaque to clients: base64url of
//
//	version(1) | len(room)(1) | room | seq(8) | issued(8) | expiry(8) |
//	family(1) | bits(1) | addr(16) | HMAC-SHA256(32)
//
// with times in Unix milliseconds, family 0 (unbound), 4 or 6 and the MAC
// over everything before it, prefixed by a domain-separation label so a MAC
// made with the same key for another purpose is never a valid ticket.
type ticket struct {
	room   string
	seq    uint64
	issued time.Time
	expiry time.Time
	client netip.Prefix // the client's network when bound; invalid otherwise
}

const (
	ticketVersion = 1
	macLen        = sha256.Size
	maxRoomLen    = 64
	fixedLen      = 1 + 1 + 8 + 8 + 8 + 1 + 1 + 16 + macLen
	// maxTicketLen is the longest encoded ticket; anything longer is refused
	// before a byte of it is decoded.
	maxTicketLen = (fixedLen + maxRoomLen + 2) / 3 * 4
)

var macLabel = []byte("rempart waitroom ticket\x00")

// b64 refuses non-zero padding bits, so a ticket has exactly one encoding and
// nobody can mint look-alikes of a used one.
var b64 = base64.RawURLEncoding.Strict()

// Why a presented ticket is no ticket. The strings label
// rempart_waitroom_rejected_total.
var (
	errMalformed = errors.New("malformed")
	errForged    = errors.New("forged")
	errExpired   = errors.New("expired")
	errOtherRoom = errors.New("other-room")
)

func (t ticket) encode(key []byte) string {
	b := make([]byte, 0, fixedLen+len(t.room))
	b = append(b, ticketVersion, byte(len(t.room)))
	b = append(b, t.room...)
	b = binary.BigEndian.AppendUint64(b, t.seq)
	b = binary.BigEndian.AppendUint64(b, uint64(t.issued.UnixMilli()))
	b = binary.BigEndian.AppendUint64(b, uint64(t.expiry.UnixMilli()))
	var fam, bits byte
	var addr [16]byte
	if t.client.IsValid() {
		fam = 6
		if t.client.Addr().Is4() {
			fam = 4
		}
		bits = byte(t.client.Bits())
		addr = t.client.Addr().As16()
	}
	b = append(b, fam, bits)
	b = append(b, addr[:]...)
	b = append(b, sign(key, b)...)
	return b64.EncodeToString(b)
}

func sign(key, payload []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(macLabel)
	m.Write(payload)
	return m.Sum(nil)
}

// parseTicket decodes and verifies s. It checks the MAC (in constant time)
// before it believes any field, then the room and the expiry; what it returns
// without error was issued by a room holding key.
func parseTicket(s string, key []byte, room string, now time.Time) (ticket, error) {
	if len(s) < (fixedLen*4+2)/3 || len(s) > maxTicketLen {
		return ticket{}, errMalformed
	}
	b, err := b64.DecodeString(s)
	if err != nil || len(b) < fixedLen || b[0] != ticketVersion || len(b) != fixedLen+int(b[1]) {
		return ticket{}, errMalformed
	}
	payload, mac := b[:len(b)-macLen], b[len(b)-macLen:]
	if !hmac.Equal(mac, sign(key, payload)) {
		return ticket{}, errForged
	}
	n := int(b[1])
	t := ticket{room: string(b[2 : 2+n])}
	p := b[2+n:]
	t.seq = binary.BigEndian.Uint64(p[0:8])
	t.issued = time.UnixMilli(int64(binary.BigEndian.Uint64(p[8:16])))
	t.expiry = time.UnixMilli(int64(binary.BigEndian.Uint64(p[16:24])))
	fam, bits, addr := p[24], int(p[25]), [16]byte(p[26:42])
	switch fam {
	case 0:
	case 4:
		a := netip.AddrFrom16(addr).Unmap()
		if !a.Is4() || bits > 32 {
			return ticket{}, errMalformed
		}
		t.client = netip.PrefixFrom(a, bits)
	case 6:
		if bits > 128 {
			return ticket{}, errMalformed
		}
		t.client = netip.PrefixFrom(netip.AddrFrom16(addr), bits)
	default:
		return ticket{}, errMalformed
	}
	if t.room != room {
		return ticket{}, errOtherRoom
	}
	if !now.Before(t.expiry) {
		return ticket{}, errExpired
	}
	return t, nil
}

// clientNet is the network a ticket is bound to: wide enough that a client
// behind a carrier NAT or with IPv6 privacy addresses keeps its ticket, narrow
// enough that a ticket sold on a forum is useless elsewhere.
func clientNet(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}
