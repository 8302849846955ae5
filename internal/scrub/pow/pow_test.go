package pow

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func testChallenge(bits int) Challenge {
	c := Challenge{Bits: bits, Expires: 1766041200, Prefix: netip.MustParsePrefix("192.0.2.0/24")}
	for i := range c.Nonce {
		c.Nonce[i] = byte(i)
	}
	for i := range c.MAC {
		c.MAC[i] = byte(255 - i)
	}
	return c
}

func TestRoundTrip(t *testing.T) {
	for _, p := range []string{"192.0.2.0/24", "2001:db8:1::/48", "0.0.0.0/0", "198.51.100.7/32"} {
		t.Run(p, func(t *testing.T) {
			c := testChallenge(12)
			c.Prefix = netip.MustParsePrefix(p)
			got, err := ParseChallenge(c.String())
			if err != nil {
				t.Fatalf("ParseChallenge(%q): %v", c.String(), err)
			}
			if got != c {
				t.Fatalf("round trip: got %+v, want %+v", got, c)
			}
			if !strings.HasPrefix(c.String(), c.Payload()+".") {
				t.Fatalf("payload %q is not the token's prefix %q", c.Payload(), c.String())
			}
		})
	}
}

func TestParseChallengeRefuses(t *testing.T) {
	good := testChallenge(12).String()
	f := strings.Split(good, ".")
	join := func(i int, v string) string {
		g := append([]string(nil), f...)
		g[i] = v
		return strings.Join(g, ".")
	}
	for name, s := range map[string]string{
		"empty":          "",
		"version":        join(0, "2"),
		"bits zero":      join(1, "0"),
		"bits too big":   join(1, "33"),
		"bits leading 0": join(1, "012"),
		"bits sign":      join(1, "+12"),
		"expiry letters": join(2, "12a"),
		"nonce short":    join(3, "AAAA"),
		"nonce padded":   join(3, f[3]+"=="),
		"binding bits":   join(4, "IcAAAgA"), // /33 for an IPv4 address
		"binding host":   join(4, "GMAAAgc"), // 192.0.2.7/24: bits past the prefix
		"mac short":      join(5, f[5][:40]),
		"extra field":    good + ".x",
		"too long":       good + strings.Repeat("A", MaxLen),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseChallenge(s); err == nil {
				t.Fatalf("ParseChallenge(%q) accepted", s)
			}
		})
	}
}

func TestSolve(t *testing.T) {
	for _, bits := range []int{1, 4, 8, 12, 16} {
		ch := testChallenge(bits).String()
		sol, err := Solve(context.Background(), ch)
		if err != nil {
			t.Fatalf("bits %d: %v", bits, err)
		}
		gotCh, _, err := ParseSolution(sol)
		if err != nil || gotCh != ch {
			t.Fatalf("bits %d: ParseSolution(%q) = %q, %v", bits, sol, gotCh, err)
		}
		if !Enough(sol, bits) {
			t.Fatalf("bits %d: solution %q does not have enough zero bits", bits, sol)
		}
	}
}

func TestSolveStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := Solve(ctx, testChallenge(MaxBits).String()); err == nil {
		t.Skip("found a 32-bit solution within 20ms: lucky, nothing to check")
	}
}

func TestParseSolutionRefuses(t *testing.T) {
	ch := testChallenge(8).String()
	for _, s := range []string{"", "nodot", ch + ".", ch + ".01", ch + ".-1", ch + ".1e3",
		ch + ".18446744073709551616", strings.Repeat("a.", MaxLen)} {
		if _, _, err := ParseSolution(s); err == nil {
			t.Errorf("ParseSolution(%q) accepted", s)
		}
	}
}

func FuzzParseChallenge(f *testing.F) {
	f.Add(testChallenge(12).String())
	c := testChallenge(20)
	c.Prefix = netip.MustParsePrefix("2001:db8::/48")
	f.Add(c.String())
	f.Add("1.1.1.AAAAAAAAAAAAAAAAAAAAAA.AA.")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseChallenge(s)
		if err != nil {
			return
		}
		if c.String() != s {
			t.Fatalf("accepted non-canonical %q (canonical %q)", s, c.String())
		}
	})
}

func FuzzParseSolution(f *testing.F) {
	f.Add(testChallenge(12).String() + ".12345")
	f.Add("a.0")
	f.Fuzz(func(t *testing.T, s string) {
		ch, n, err := ParseSolution(s)
		if err != nil {
			return
		}
		if want := ch + "." + uitoa(n); want != s {
			t.Fatalf("accepted %q, canonical %q", s, want)
		}
		Enough(s, 8)
	})
}

func uitoa(n uint64) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// BenchmarkVerifyWork is the server's work check: one SHA-256.
func BenchmarkVerifyWork(b *testing.B) {
	sol, err := Solve(context.Background(), testChallenge(12).String())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !Enough(sol, 12) {
			b.Fatal("not enough")
		}
	}
}

// BenchmarkSolve16 is what a client pays at 16 bits (65,536 hashes expected).
func BenchmarkSolve16(b *testing.B) {
	c := testChallenge(16)
	for i := 0; b.Loop(); i++ {
		c.Nonce[0] = byte(i)
		if _, err := Solve(context.Background(), c.String()); err != nil {
			b.Fatal(err)
		}
	}
}
