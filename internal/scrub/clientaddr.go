package scrub

import (
	"net/netip"
	"strings"
)

// maxHops bounds how many forwarding entries are read: a client can send a
// header of any length, the chain of real proxies is short.
const maxHops = 32

// peerAddr reads the address of http.Request.RemoteAddr ("ip:port", or a bare
// ip in tests), unmapping IPv4-in-IPv6.
func peerAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(remote); err == nil {
		return a.Unmap().WithZone("")
	}
	return netip.Addr{}
}

// resolveClient returns the real client address of a request that arrived
// from peer with the given forwarding header values (X-Forwarded-For, or
// Forwarded when forwarded is true). Entries are read right to left, from the
// proxy nearest to us: each one added by a trusted proxy names the hop before
// it, and the first hop that is not trusted is the client. Nothing is read
// when the peer itself is not trusted, so a spoofed header changes nothing.
// An unreadable entry ends the walk at the last trusted hop: what lies to its
// left was written by someone we do not trust.
func resolveClient(peer netip.Addr, values []string, forwarded bool, trusted func(netip.Addr) bool) netip.Addr {
	if !peer.IsValid() || !trusted(peer) {
		return peer
	}
	client := peer
	hops := 0
	for i := len(values) - 1; i >= 0; i-- {
		v := values[i]
		for v != "" {
			var elem string
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				elem, v = v[j+1:], v[:j]
			} else {
				elem, v = v, ""
			}
			if hops++; hops > maxHops {
				return client
			}
			var a netip.Addr
			var ok bool
			if forwarded {
				a, ok = parseForwardedFor(elem)
			} else {
				a, ok = parseHop(strings.TrimSpace(elem))
			}
			if !ok {
				return client
			}
			client = a
			if !trusted(a) {
				return a
			}
		}
	}
	return client
}

// parseHop reads one X-Forwarded-For entry: an address, optionally with a
// port ("192.0.2.1:4711", "[2001:db8::1]:4711").
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// parseForwardedFor reads the for= parameter of one Forwarded element
// (RFC 7239 §4: for=192.0.2.60;proto=http, for="[2001:db8::17]:4711").
// "unknown" and obfuscated identifiers are unreadable.
func parseForwardedFor(elem string) (netip.Addr, bool) {
	for elem != "" {
		var pair string
		if j := strings.IndexByte(elem, ';'); j >= 0 {
			pair, elem = elem[:j], elem[j+1:]
		} else {
			pair, elem = elem, ""
		}
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || !strings.EqualFold(k, "for") {
			continue
		}
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		if strings.HasPrefix(v, "[") {
			if end := strings.IndexByte(v, ']'); end > 0 {
				rest := v[end+1:]
				if rest != "" && !strings.HasPrefix(rest, ":") {
					return netip.Addr{}, false
				}
				a, err := netip.ParseAddr(v[1:end])
				if err != nil || !a.Is6() || a.Zone() != "" {
					return netip.Addr{}, false
				}
				return a.Unmap(), true
			}
			return netip.Addr{}, false
		}
		host, _, _ := strings.Cut(v, ":")
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is4() {
			return netip.Addr{}, false
		}
		return a, true
	}
	return netip.Addr{}, false
}

// clientPrefix is the network a client belongs to for prefix limits and for
// binding challenges and clearances: /24 for IPv4, /48 for IPv6.
func clientPrefix(a netip.Addr) netip.Prefix { return prefixOf(a, 24, 48) }

// limitAddr is the unit of per-address limits: the address for IPv4, its /64
// for IPv6, since one host usually holds a whole /64.
func limitAddr(a netip.Addr) netip.Prefix { return prefixOf(a, 32, 64) }

func prefixOf(a netip.Addr, bits4, bits6 int) netip.Prefix {
	bits := bits4
	if a.Is6() {
		bits = bits6
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// prefixSet is a small list of prefixes, matched linearly: trusted proxies
// and partner networks number in the tens.
type prefixSet []netip.Prefix

func (s prefixSet) contains(a netip.Addr) bool {
	for _, p := range s {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
