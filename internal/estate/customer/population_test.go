package customer_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/rempart/rempart/internal/estate/customer"
	"github.com/rempart/rempart/internal/estate/ledger"
)

// The ledger materialises customer accounts from a Population.
var _ ledger.AccountSource = (*customer.Population)(nil)

var update = flag.Bool("update", false, "rewrite testdata/golden.json")

func TestSize(t *testing.T) {
	tests := []struct {
		name string
		in   int
		want int
	}{
		{"default", 0, customer.DefaultSize},
		{"negative means default", -5, customer.DefaultSize},
		{"small", 3, 3},
		{"capped", customer.MaxSize + 1, customer.MaxSize},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := customer.New(1, tt.in).Size(); got != tt.want {
				t.Errorf("New(1, %d).Size() = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

// TestGolden pins the derivation: drills, scenarios and stored ledgers name
// customers by id and card, so a change here must be deliberate.
func TestGolden(t *testing.T) {
	p := customer.New(20251222, 0)
	var got []customer.Customer
	for _, i := range []int{0, 1, 2, 42, 1_234_567, customer.DefaultSize - 1} {
		got = append(got, p.Nth(i))
	}
	got = append(got, p.Demo()...)
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	path := filepath.Join("testdata", "golden.json")
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(b) != string(want) {
		t.Errorf("derivation changed; got\n%s\nwant\n%s", b, want)
	}
}

func TestDeterministic(t *testing.T) {
	a, b := customer.New(7, 0), customer.New(7, 0)
	for i := 0; i < 1000; i++ {
		if x, y := a.Nth(i), a.Nth(i); x != y {
			t.Fatalf("Nth(%d) differs between calls: %+v vs %+v", i, x, y)
		}
		if x, y := a.Nth(i), b.Nth(i); x != y {
			t.Fatalf("Nth(%d) differs between populations of one seed: %+v vs %+v", i, x, y)
		}
	}
}

func TestSeedsDiffer(t *testing.T) {
	a, b := customer.New(1, 0), customer.New(2, 0)
	const n = 1000
	sameCard, samePhone, sameOpening := 0, 0, 0
	for i := 0; i < n; i++ {
		x, y := a.Nth(i), b.Nth(i)
		if x.ID != y.ID || x.Account != y.Account {
			t.Fatalf("ids must not depend on the seed: %s/%s vs %s/%s", x.ID, x.Account, y.ID, y.Account)
		}
		if x.Card == y.Card {
			sameCard++
		}
		if x.Phone == y.Phone {
			samePhone++
		}
		if x.Opening == y.Opening {
			sameOpening++
		}
	}
	// Expected by chance: 1 in 1000 cards, ~0 phones, 1 in 499001 openings.
	if sameCard > 10 || samePhone > 1 || sameOpening > 2 {
		t.Errorf("seeds 1 and 2 agree too often: cards %d, phones %d, openings %d of %d",
			sameCard, samePhone, sameOpening, n)
	}
}

var (
	idRe    = regexp.MustCompile(`^C[0-9]{8}$`)
	acctRe  = regexp.MustCompile(`^A[0-9]{8}$`)
	cardRe  = regexp.MustCompile(`^4970[0-9]{12}$`)
	phoneRe = regexp.MustCompile(`^\+33 6( [0-9]{2}){4}$`)
	nameRe  = regexp.MustCompile(`^\pL+ \pL+$`)
)

func TestShapesAndRoundTrips(t *testing.T) {
	p := customer.New(99, 0)
	cards := make(map[string]bool)
	indices := []int{p.Size() - 1, p.Size() / 2}
	for i := 0; i < 5000; i++ {
		indices = append(indices, i)
	}
	for _, i := range indices {
		c := p.Nth(i)
		for _, f := range []struct {
			re *regexp.Regexp
			v  string
		}{{idRe, c.ID}, {acctRe, c.Account}, {cardRe, c.Card}, {phoneRe, c.Phone}, {nameRe, c.Name}} {
			if !f.re.MatchString(f.v) {
				t.Fatalf("Nth(%d): %q does not match %s", i, f.v, f.re)
			}
		}
		if c.Opening < 10_00 || c.Opening > 5_000_00 || c.Demo {
			t.Fatalf("Nth(%d) = %+v: opening out of range or marked demo", i, c)
		}
		if cards[c.Card] {
			t.Fatalf("card %s issued twice", c.Card)
		}
		cards[c.Card] = true
		checkRoundTrip(t, p, c)
	}
}

func TestDemo(t *testing.T) {
	p := customer.New(5, 10)
	demo := p.Demo()
	if len(demo) < 3 {
		t.Fatalf("Demo() = %d customers, want at least 3", len(demo))
	}
	want := map[string]int64{"alice": 2_500_00, "bruno": 150_00, "camille": 12_000_00}
	for _, c := range demo {
		if !c.Demo || c.Account != "A-"+c.ID || !phoneRe.MatchString(c.Phone) {
			t.Errorf("demo customer %+v malformed", c)
		}
		if w, ok := want[c.ID]; ok && c.Opening != w {
			t.Errorf("%s opening = %d, want %d", c.ID, c.Opening, w)
		}
		delete(want, c.ID)
		checkRoundTrip(t, p, c)
	}
	if len(want) > 0 {
		t.Errorf("demo customers missing: %v", want)
	}
	// The returned slice is the caller's own.
	demo[0].Opening = -1
	if p.Demo()[0].Opening == -1 {
		t.Error("Demo() shares its slice between callers")
	}
	// Demo cards are fixed whatever the seed.
	if customer.New(6, 0).Demo()[0] != p.Demo()[0] {
		t.Error("demo customers depend on the seed")
	}
}

func checkRoundTrip(t *testing.T, p *customer.Population, c customer.Customer) {
	t.Helper()
	if got, ok := p.Get(c.ID); !ok || got != c {
		t.Fatalf("Get(%q) = %+v, %v; want %+v", c.ID, got, ok, c)
	}
	if got, ok := p.ByAccount(c.Account); !ok || got != c {
		t.Fatalf("ByAccount(%q) = %+v, %v; want %+v", c.Account, got, ok, c)
	}
	if got, ok := p.ByCard(c.Card); !ok || got != c {
		t.Fatalf("ByCard(%q) = %+v, %v; want %+v", c.Card, got, ok, c)
	}
	if got, ok := p.OpeningBalance(c.Account); !ok || got != c.Opening {
		t.Fatalf("OpeningBalance(%q) = %d, %v; want %d", c.Account, got, ok, c.Opening)
	}
}

func TestRejects(t *testing.T) {
	p := customer.New(3, 1000)
	good := p.Nth(17)
	flip := func(s string, k int) string { // change digit k, keeping it a digit
		b := []byte(s)
		b[k] = '0' + (b[k]-'0'+1)%10
		return string(b)
	}
	// A card with a wrong hash digit but a recomputed, valid Luhn digit: only
	// the hash check can refuse it.
	forged := reluhn(flip(good.Card, 13))

	ids := []string{"", "C", "C0000001", "C000000017", "c00000017", "C-0000017", "C+0000017",
		"C00001000", "C99999999", "A00000017", "alice ", "Alice", "X00000017", "C0000001a"}
	for _, id := range ids {
		if c, ok := p.Get(id); ok {
			t.Errorf("Get(%q) = %+v, want not found", id, c)
		}
	}
	accts := []string{"", "A", "A0000017", "A000000017", "A00001000", "C00000017", "A-", "A-dave",
		"A-ALICE", "SYS-MERCHANTS", "SYS-ATM-CASH"}
	for _, a := range accts {
		if c, ok := p.ByAccount(a); ok {
			t.Errorf("ByAccount(%q) = %+v, want not found", a, c)
		}
		if v, ok := p.OpeningBalance(a); ok {
			t.Errorf("OpeningBalance(%q) = %d, want unknown", a, v)
		}
	}
	cards := []string{"", "4970", good.Card[:15], good.Card + "0", flip(good.Card, 15),
		flip(good.Card, 0), forged, "4970000010000000", "4242424242424242",
		"4971111111111111", "49700000001x0000", " " + good.Card[1:]}
	for _, pan := range cards {
		if c, ok := p.ByCard(pan); ok {
			t.Errorf("ByCard(%q) = %+v, want not found", pan, c)
		}
	}
}

// reluhn replaces the last digit of a card number with its Luhn check digit.
func reluhn(pan string) string {
	sum := 0
	for k := len(pan) - 2; k >= 0; k-- {
		d := int(pan[k] - '0')
		if (len(pan)-2-k)%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return pan[:len(pan)-1] + string(rune('0'+(10-sum%10)%10))
}

// TestRandomCardsRejected checks that well-formed cards with valid Luhn digits
// are almost never customers: with ten million customers, 1 in 10 eight-digit
// indices exists and 1 in 1000 hash digits match, so about 1 in 10,000.
func TestRandomCardsRejected(t *testing.T) {
	p := customer.New(11, customer.DefaultSize)
	hits := 0
	const n = 100_000
	for i := 0; i < n; i++ {
		pan := reluhn("4970" + pad(uint64(i)*2654435761%100_000_000, 8) + pad(uint64(i*7919)%1000, 3) + "0")
		if _, ok := p.ByCard(pan); ok {
			hits++
		}
	}
	if hits > 40 { // expectation ~10
		t.Errorf("%d of %d Luhn-valid random cards accepted", hits, n)
	}
}

func pad(n uint64, w int) string {
	b := make([]byte, w)
	for k := w - 1; k >= 0; k-- {
		b[k] = byte('0' + n%10)
		n /= 10
	}
	return string(b)
}

func TestNthOutOfRangePanics(t *testing.T) {
	p := customer.New(1, 10)
	for _, i := range []int{-1, 10, 1 << 40} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Nth(%d) did not panic", i)
				}
			}()
			p.Nth(i)
		}()
	}
}

func TestNthAllocs(t *testing.T) {
	p := customer.New(1, 0)
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		_ = p.Nth(i % p.Size())
		i += 7919
	})
	if allocs > 1 {
		t.Errorf("Nth allocates %.1f times, want at most 1", allocs)
	}
	allocs = testing.AllocsPerRun(1000, func() {
		_, _ = p.OpeningBalance("A01234567")
	})
	if allocs > 0 {
		t.Errorf("OpeningBalance allocates %.1f times, want 0", allocs)
	}
}

func FuzzGet(f *testing.F) {
	p := customer.New(42, 0)
	for _, i := range []int{0, 1, 9_999_999} {
		c := p.Nth(i)
		f.Add(c.ID)
		f.Add(c.Account)
	}
	f.Add("alice")
	f.Add("A-bruno")
	f.Add("C1234567\xff")
	f.Fuzz(func(t *testing.T, s string) {
		if c, ok := p.Get(s); ok {
			if c.ID != s {
				t.Fatalf("Get(%q) returned id %q", s, c.ID)
			}
			checkRoundTrip(t, p, c)
		}
		if c, ok := p.ByAccount(s); ok {
			if c.Account != s {
				t.Fatalf("ByAccount(%q) returned account %q", s, c.Account)
			}
			checkRoundTrip(t, p, c)
		} else if _, ok := p.OpeningBalance(s); ok {
			t.Fatalf("OpeningBalance(%q) known but ByAccount not", s)
		}
	})
}

func FuzzByCard(f *testing.F) {
	p := customer.New(42, 0)
	for _, i := range []int{0, 1, 123_456, 9_999_999} {
		f.Add(p.Nth(i).Card)
	}
	f.Add("4971111111111110")
	f.Add("4970000000000000")
	f.Add("4242424242424242")
	f.Fuzz(func(t *testing.T, pan string) {
		c, ok := p.ByCard(pan)
		if !ok {
			return
		}
		if c.Card != pan {
			t.Fatalf("ByCard(%q) returned card %q", pan, c.Card)
		}
		checkRoundTrip(t, p, c)
	})
}

// BenchmarkNth: ~250 ns/op, 1 alloc (73 B) on the development VM (2 vCPU,
// shared); ByCard costs the same (it ends in Nth), OpeningBalance ~17 ns and
// no allocation, which is what the ledger calls on an account's first write.
func BenchmarkNth(b *testing.B) {
	p := customer.New(1, 0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_ = p.Nth(i)
		i += 7919
		if i >= p.Size() {
			i -= p.Size()
		}
	}
}

func BenchmarkByCard(b *testing.B) {
	p := customer.New(1, 0)
	pan := p.Nth(4_242_424).Card
	b.ReportAllocs()
	for b.Loop() {
		_, _ = p.ByCard(pan)
	}
}

func BenchmarkOpeningBalance(b *testing.B) {
	p := customer.New(1, 0)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = p.OpeningBalance("A04242424")
	}
}
