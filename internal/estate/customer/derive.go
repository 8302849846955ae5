package customer

// The derivation: customer i's attributes are successive outputs of a
// splitmix64 stream started at a state unique to (seed, i). Changing anything
// here changes every customer of every drill; testdata/golden.json pins it.

const (
	golden = 0x9e3779b97f4a7c15 // splitmix64 increment (2^64 / phi)

	// cardBIN prefixes derived card numbers; demo cards use demoBIN so the
	// two sets can never overlap.
	cardBIN = "4970"
	demoBIN = "4971"

	// Opening balances are uniform in [minOpening, maxOpening] cents.
	minOpening = 10_00
	maxOpening = 5_000_00
)

// Lanes: which output of a customer's stream feeds which attribute.
const (
	laneName = iota + 1
	lanePhone
	laneOpening
	laneCard
)

// mix64 is the splitmix64 finaliser: a bijection on uint64 with full
// avalanche, so consecutive indices give unrelated outputs.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// draw returns output lane of customer i's stream.
func (p *Population) draw(i int, lane uint64) uint64 {
	state := mix64(p.key + golden*(uint64(i)+1))
	return mix64(state + golden*lane)
}

func (p *Population) opening(i int) int64 {
	return minOpening + int64(p.draw(i, laneOpening)%(maxOpening-minOpening+1))
}

// cardHash is the three check digits a derived card carries after its index.
func (p *Population) cardHash(i int) int {
	return int(p.draw(i, laneCard) % 1000)
}

// nth builds customer i with a single allocation: every string field is a
// slice of one backing string.
func (p *Population) nth(i int) Customer {
	var buf [128]byte
	b := buf[:0]

	b = append(b, 'C')
	b = appendPadded(b, i, 8)
	idEnd := len(b)

	b = append(b, 'A')
	b = appendPadded(b, i, 8)
	acctEnd := len(b)

	b = append(b, cardBIN...)
	b = appendPadded(b, i, 8)
	b = appendPadded(b, p.cardHash(i), 3)
	b = append(b, luhnDigit(b[acctEnd:]))
	cardEnd := len(b)

	ph := p.draw(i, lanePhone) % 100_000_000
	b = append(b, "+33 6"...)
	for k := 3; k >= 0; k-- {
		pair := int(ph/pow100[k]) % 100
		b = append(b, ' ')
		b = appendPadded(b, pair, 2)
	}
	phoneEnd := len(b)

	nh := p.draw(i, laneName)
	b = append(b, firstNames[nh%uint64(len(firstNames))]...)
	b = append(b, ' ')
	b = append(b, lastNames[(nh>>32)%uint64(len(lastNames))]...)

	s := string(b)
	return Customer{
		ID:      s[:idEnd],
		Account: s[idEnd:acctEnd],
		Card:    s[acctEnd:cardEnd],
		Phone:   s[cardEnd:phoneEnd],
		Name:    s[phoneEnd:],
		Opening: p.opening(i),
	}
}

var pow100 = [4]uint64{1, 100, 10_000, 1_000_000}

// appendPadded appends n in decimal, zero-padded to width digits.
func appendPadded(b []byte, n, width int) []byte {
	var d [20]byte
	k := len(d)
	for w := 0; w < width || n > 0; w++ {
		k--
		d[k] = byte('0' + n%10)
		n /= 10
	}
	return append(b, d[k:]...)
}

// luhnDigit returns the check digit that makes payload+digit pass Luhn.
func luhnDigit(payload []byte) byte {
	// With the check digit appended, the payload's last digit is doubled.
	return byte('0' + (10-luhnSum(payload, true)%10)%10)
}

// luhnValid reports whether an all-digit string passes the Luhn check.
func luhnValid(s string) bool {
	return luhnSum(s, false)%10 == 0
}

// luhnSum adds the digits right to left, doubling every other one, starting
// with the rightmost if doubleLast.
func luhnSum[S ~string | ~[]byte](s S, doubleLast bool) int {
	sum, double := 0, doubleLast
	for k := len(s) - 1; k >= 0; k-- {
		d := int(s[k] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum
}

// Name tables: common French given names and surnames, so a drill's logs and
// demo screens look like the bank's real population. Read-only.
var firstNames = [...]string{
	"Adèle", "Agathe", "Alexandre", "Alice", "Amélie", "Antoine", "Arthur", "Baptiste",
	"Camille", "Charlotte", "Chloé", "Clément", "Denis", "Élodie", "Émile", "Emma",
	"Étienne", "Florian", "François", "Gabriel", "Hélène", "Hugo", "Inès", "Jacques",
	"Jeanne", "Jules", "Juliette", "Léa", "Léon", "Louise", "Lucas", "Manon",
	"Marcel", "Margaux", "Marie", "Mathilde", "Maxime", "Nathalie", "Nicolas", "Noémie",
	"Océane", "Paul", "Philippe", "Pierre", "Raphaël", "Romain", "Sophie", "Thomas",
	"Valentin", "Yvonne",
}

var lastNames = [...]string{
	"Bernard", "Blanc", "Bonnet", "Boyer", "Chevalier", "Clément", "David", "Dubois",
	"Dufour", "Dumont", "Durand", "Faure", "Fontaine", "Fournier", "François", "Gaillard",
	"Garnier", "Gautier", "Girard", "Guérin", "Henry", "Lambert", "Laurent", "Lefèvre",
	"Legrand", "Leroy", "Lopez", "Martin", "Masson", "Mercier", "Michel", "Moreau",
	"Morel", "Muller", "Perrin", "Petit", "Richard", "Robert", "Robin", "Rousseau",
	"Roussel", "Roux", "Simon", "Thomas", "Vincent",
}
