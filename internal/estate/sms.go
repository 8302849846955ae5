package estate

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
)

// SMS is one message handed to the simulated SMS gateway.
type SMS struct {
	Seq  int64     `json:"seq"`
	To   string    `json:"to"`
	Text string    `json:"text"`
	At   time.Time `json:"at"`
}

// Outbox is the simulated SMS gateway: a bounded ring of the latest messages,
// readable through the ops API so demos and drills can read OTPs.
type Outbox struct {
	mu   sync.Mutex
	ring []SMS
	next int64 // sequence of the next message
}

// NewOutbox keeps the last capacity messages.
func NewOutbox(capacity int) *Outbox {
	return &Outbox{ring: make([]SMS, capacity)}
}

// Send records a message.
func (o *Outbox) Send(to, text string, at time.Time) {
	o.mu.Lock()
	o.ring[o.next%int64(len(o.ring))] = SMS{Seq: o.next, To: to, Text: text, At: at}
	o.next++
	o.mu.Unlock()
}

// Latest returns up to limit of the newest messages, newest first, to the
// given number (all numbers when to is empty).
func (o *Outbox) Latest(to string, limit int) []SMS {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := []SMS{}
	oldest := max(0, o.next-int64(len(o.ring)))
	for s := o.next - 1; s >= oldest && len(out) < limit; s-- {
		m := o.ring[s%int64(len(o.ring))]
		if to == "" || m.To == to {
			out = append(out, m)
		}
	}
	return out
}

// The 3-D Secure SMS is a fixed template: the only words in it that came
// from outside the bank are the merchant's name, reduced by merchantName to
// what a card scheme would print, and the amount, which the bank formats.
// The code comes first and "3-D Secure" stays in the text: phones preview
// the start of a message, and readers of the outbox (the drill) use both.
const threeDSTemplate = "Code 3-D Secure %s pour %s EUR chez %s. Ne le communiquez jamais."

// Limits of a merchant name in an SMS, after card-scheme merchant names
// (ISO 8583 field 43 gives the name 22 characters).
const (
	// MerchantNameLen is the longest merchant name an SMS carries.
	MerchantNameLen = 22
	// merchantDigits bounds the digits of a name: enough for a shop number
	// ("MONOPRIX 1234"), too few for a phone number to call or a second
	// six-digit "code" to read.
	merchantDigits = 4
	// unnamedMerchant stands for a name of which nothing printable is left.
	unnamedMerchant = "COMMERCANT"
)

// threeDSText is the SMS of a 3-D Secure challenge.
func threeDSText(otp string, amount int64, merchant string) string {
	return fmt.Sprintf(threeDSTemplate, otp, formatEuros(amount), merchantName(merchant))
}

// merchantName reduces a caller's merchant name to upper-case ASCII letters,
// at most merchantDigits digits, spaces and the punctuation of scheme names
// (& ' - *), at most MerchantNameLen characters. French accented letters,
// ligatures and full-width forms become their plain letters; anything else
// becomes a space (punctuation, symbols, controls, newlines) or is dropped
// (invisible format characters such as bidi overrides and zero-width
// spaces, combining marks, and letters of other scripts, which is where
// homoglyphs come from). Without '.', '/', ':' and '@' no link, address or
// domain survives for a phone to make clickable.
func merchantName(s string) string {
	b := make([]byte, 0, MerchantNameLen)
	digits := 0
	space := func() {
		if len(b) > 0 && b[len(b)-1] != ' ' {
			b = append(b, ' ')
		}
	}
	for _, r := range s {
		if len(b) >= MerchantNameLen {
			break
		}
		if r >= 0xff01 && r <= 0xff5e { // full-width ASCII
			r -= 0xfee0
		}
		switch {
		case 'a' <= r && r <= 'z':
			b = append(b, byte(r-'a'+'A'))
		case 'A' <= r && r <= 'Z':
			b = append(b, byte(r))
		case '0' <= r && r <= '9':
			if digits < merchantDigits {
				b = append(b, byte(r))
				digits++
			}
		case r == '&' || r == '\'' || r == '-' || r == '*':
			b = append(b, byte(r))
		case foldLatin(r) != "":
			b = append(b, foldLatin(r)...)
		case unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Mn, r) || unicode.IsLetter(r):
			// dropped: invisible, combining, or another script
		default:
			space()
		}
	}
	b = b[:min(len(b), MerchantNameLen)]
	out := strings.TrimSpace(string(b))
	if strings.Trim(out, "&'-* ") == "" {
		return unnamedMerchant
	}
	return out
}

// foldLatin spells a Latin letter of French (and its neighbours') shop
// names in upper-case ASCII, as card terminals print them; "" for others.
func foldLatin(r rune) string {
	if r < 0xc0 || r > 0x178 {
		return ""
	}
	switch r {
	case 'Œ', 'œ':
		return "OE"
	case 'Æ', 'æ':
		return "AE"
	case 'ß':
		return "SS"
	}
	for _, f := range [...]struct{ base, letters string }{
		{"A", "ÀÁÂÃÄÅàáâãäå"}, {"C", "Çç"}, {"E", "ÈÉÊËèéêë"}, {"I", "ÌÍÎÏìíîï"}, {"N", "Ññ"},
		{"O", "ÒÓÔÕÖØòóôõöø"}, {"U", "ÙÚÛÜùúûü"}, {"Y", "ÝŸýÿ"},
	} {
		if strings.ContainsRune(f.letters, r) {
			return f.base
		}
	}
	return ""
}

// formatEuros writes a positive amount of cents the French way: "1 234,56".
func formatEuros(cents int64) string {
	euros := strconv.FormatInt(cents/100, 10)
	var b strings.Builder
	for i, d := range euros {
		if i > 0 && (len(euros)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(d)
	}
	fmt.Fprintf(&b, ",%02d", cents%100)
	return b.String()
}
