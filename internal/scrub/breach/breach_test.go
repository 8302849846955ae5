package breach

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	f, err := Open(filepath.Join("testdata", "pwned-sample.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tc := range []struct {
		password string
		want     int
	}{
		{"password", 1000}, {"123456", 2000}, {"marseille", 12000}, {"Noel2025!", 7000},
		{"correct horse battery staple", 0}, {"Password", 0}, {"", 0},
	} {
		t.Run(tc.password, func(t *testing.T) {
			got, err := Check(context.Background(), f, tc.password)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("Check(%q) = %d, want %d", tc.password, got, tc.want)
			}
		})
	}
}

// TestRangeMatchesScan checks the binary search against a plain scan for
// every prefix in the file and some that are not.
func TestRangeMatchesScan(t *testing.T) {
	path := filepath.Join(t.TempDir(), "list.txt")
	var lines []string
	for i := range 3000 {
		s := sha1.Sum([]byte{byte(i), byte(i >> 8)})
		lines = append(lines, strings.ToUpper(hex.EncodeToString(s[:]))+":"+string(rune('1'+i%9)))
	}
	slices.Sort(lines)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	prefixes := []string{"00000", "FFFFF", "7FFFF"}
	for _, l := range lines[:200] {
		prefixes = append(prefixes, l[:PrefixLen])
	}
	for _, p := range prefixes {
		got, err := f.Range(context.Background(), strings.ToLower(p))
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		for _, l := range lines {
			if strings.HasPrefix(l, p) {
				want++
				if _, ok := got[l[PrefixLen:40]]; !ok {
					t.Fatalf("prefix %s: missing %s", p, l)
				}
			}
		}
		if len(got) != want {
			t.Fatalf("prefix %s: %d suffixes, want %d", p, len(got), want)
		}
	}
	if _, err := f.Range(context.Background(), "XYZ12"); err == nil {
		t.Fatal("accepted a non-hex prefix")
	}
}
