package estate

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestMerchantName(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"plain", "Boulangerie", "BOULANGERIE"},
		{"french letters", "Crème & Brûlée d'Œuf", "CREME & BRULEE D'OEUF"},
		{"scheme style", "SUMUP *Café-Tabac", "SUMUP *CAFE-TABAC"},
		{"url", "http://evil.example/pay", "HTTP EVIL EXAMPLE PAY"},
		{"email", "support@evil.example", "SUPPORT EVIL EXAMPLE"},
		{"newline", "Shop\nVotre compte est bloqué", "SHOP VOTRE COMPTE EST"},
		{"controls", "a\x00b\x1b[31mc\u0085d", "A B 31MC D"},
		{"rtl override", "Shop\u202egnp.exe", "SHOPGNP EXE"},
		{"zero width", "PAY\u200bPAL", "PAYPAL"},
		{"cyrillic homoglyphs", "Р\u0430yР\u0430l", "YL"},
		{"combining marks", "Pa\u0301ypal", "PAYPAL"},
		{"full width", "ＰＡＹＰＡＬ", "PAYPAL"},
		{"phone number", "Appelez le 06 12 34 56 78", "APPELEZ LE 06 12"},
		{"second code", "Code 987654", "CODE 9876"},
		{"too long", "Librairie des Quatre Saisons", "LIBRAIRIE DES QUATRE S"},
		{"trailing space after cut", "Librairie des Quatre  Saisons", "LIBRAIRIE DES QUATRE S"},
		{"space before the cut", "ABCDEFGHIJKLMNOPQRSTU VWX", "ABCDEFGHIJKLMNOPQRSTU"},
		{"nothing left", "🙂🙂", unnamedMerchant},
		{"only punctuation", "-*-", unnamedMerchant},
		{"empty", "", unnamedMerchant},
		{"invalid utf-8", "caf\xe9", "CAF"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := merchantName(c.in); got != c.want {
				t.Errorf("merchantName(%q) = %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestFormatEuros(t *testing.T) {
	cases := []struct {
		cents int64
		want  string
	}{
		{1, "0,01"}, {4200, "42,00"}, {99_999, "999,99"}, {100_000, "1 000,00"},
		{1_234_567, "12 345,67"}, {MaxCardAmount, "20 000,00"}, {123_456_789_00, "123 456 789,00"},
	}
	for _, c := range cases {
		t.Run(c.want, func(t *testing.T) {
			if got := formatEuros(c.cents); got != c.want {
				t.Errorf("formatEuros(%d) = %q, want %q", c.cents, got, c.want)
			}
		})
	}
}

// The drill and the README read the code as the first six-digit number of
// the text, after "Code 3-D Secure ".
func TestThreeDSTextKeepsTheCodeFirst(t *testing.T) {
	text := threeDSText("123456", 4200, "Code 987654 http://x\n")
	want := "Code 3-D Secure 123456 pour 42,00 EUR chez CODE 9876 HTTP X. Ne le communiquez jamais."
	if text != want {
		t.Errorf("text = %q, want %q", text, want)
	}
}

// FuzzMerchantName checks the name's invariants on any input: only the
// allowed characters, at most MerchantNameLen of them and merchantDigits
// digits, no leading, trailing or double space, and never empty.
func FuzzMerchantName(f *testing.F) {
	for _, s := range []string{"Boulangerie", "http://evil", "a\nb", "\u202eabc", "Р\u0430yР\u0430l", "ＰＡＹ", "06 12 34 56 78",
		"Œuf ß", strings.Repeat("é", 40), "\xff\xfe", " - ", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := merchantName(in)
		if out == "" || len(out) > MerchantNameLen || !utf8.ValidString(out) {
			t.Fatalf("merchantName(%q) = %q: empty, too long or not UTF-8", in, out)
		}
		if strings.HasPrefix(out, " ") || strings.HasSuffix(out, " ") || strings.Contains(out, "  ") {
			t.Fatalf("merchantName(%q) = %q: stray spaces", in, out)
		}
		digits := 0
		for i := 0; i < len(out); i++ {
			c := out[i]
			switch {
			case '0' <= c && c <= '9':
				digits++
			case 'A' <= c && c <= 'Z', c == ' ', c == '&', c == '\'', c == '-', c == '*':
			default:
				t.Fatalf("merchantName(%q) = %q: byte %q is not allowed", in, out, c)
			}
		}
		if digits > merchantDigits {
			t.Fatalf("merchantName(%q) = %q: %d digits", in, out, digits)
		}
		if again := merchantName(out); again != out {
			t.Fatalf("merchantName is not idempotent: %q -> %q -> %q", in, out, again)
		}
	})
}
