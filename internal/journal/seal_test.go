package journal_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rempart/rempart/internal/journal"
)

func newSealer(t testing.TB, b byte) *journal.Sealer {
	t.Helper()
	s, err := journal.NewSealer(bytes.Repeat([]byte{b}, journal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSealOpen(t *testing.T) {
	s, other := newSealer(t, 1), newSealer(t, 2)
	plain := []byte(`{"card":"4971111111111110","amount":3000}`)
	sealed := s.Seal("k-1", journal.FieldRequest, plain)
	if bytes.Contains(sealed, []byte("4971111111111110")) || len(sealed) != len(plain)+journal.Overhead {
		t.Fatalf("sealed = %q (%d bytes for %d)", sealed, len(sealed), len(plain))
	}
	if again := s.Seal("k-1", journal.FieldRequest, plain); bytes.Equal(again, sealed) {
		t.Fatal("two seals of one field are equal: the nonce is not random")
	}
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 1
		return b
	}
	for _, tc := range []struct {
		name   string
		opener *journal.Sealer
		key    string
		field  string
		sealed []byte
		ok     bool
	}{
		{"same entry and field", s, "k-1", journal.FieldRequest, sealed, true},
		{"another entry", s, "k-2", journal.FieldRequest, sealed, false},
		{"another field", s, "k-1", journal.FieldDecision, sealed, false},
		{"another key", other, "k-1", journal.FieldRequest, sealed, false},
		{"version altered", s, "k-1", journal.FieldRequest, flip(0), false},
		{"nonce altered", s, "k-1", journal.FieldRequest, flip(1), false},
		{"ciphertext altered", s, "k-1", journal.FieldRequest, flip(20), false},
		{"tag altered", s, "k-1", journal.FieldRequest, flip(len(sealed) - 1), false},
		{"truncated", s, "k-1", journal.FieldRequest, sealed[:journal.Overhead-1], false},
		{"clear text", s, "k-1", journal.FieldRequest, plain, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.opener.Open(tc.key, tc.field, tc.sealed)
			if tc.ok && (err != nil || !bytes.Equal(got, plain)) {
				t.Fatalf("Open = %q, %v; want the plaintext", got, err)
			}
			if !tc.ok && !errors.Is(err, journal.ErrKey) {
				t.Fatalf("Open = %q, %v; want ErrKey", got, err)
			}
		})
	}
	if got := s.Seal("k", journal.FieldResult, nil); got != nil {
		t.Fatalf("an empty field sealed to %q, want it left empty", got)
	}
	if got, err := s.Open("k", journal.FieldResult, nil); got != nil || err != nil {
		t.Fatalf("Open of an empty field = %q, %v", got, err)
	}
}

func TestNewSealerKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33} {
		if _, err := journal.NewSealer(make([]byte, n)); !errors.Is(err, journal.ErrKey) {
			t.Errorf("NewSealer with a %d-byte key: err = %v, want ErrKey", n, err)
		}
	}
}

func TestParseKey(t *testing.T) {
	good := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, journal.KeySize))
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"32 bytes", good, true},
		{"32 bytes and a newline", good + "\n", true},
		{"not base64", "not base64!", false},
		{"16 bytes", base64.StdEncoding.EncodeToString(make([]byte, 16)), false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, err := journal.ParseKey(tc.in)
			if tc.ok && (err != nil || len(key) != journal.KeySize) {
				t.Fatalf("ParseKey = %d bytes, %v", len(key), err)
			}
			if !tc.ok && !errors.Is(err, journal.ErrKey) {
				t.Fatalf("ParseKey: err = %v, want ErrKey", err)
			}
		})
	}
}

func TestLoadKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte // nil: no file
		mode os.FileMode
		want string // "" for success
	}{
		{"owner only", make([]byte, journal.KeySize), 0o600, ""},
		{"read-only for its owner", make([]byte, journal.KeySize), 0o400, ""},
		{"group-readable", make([]byte, journal.KeySize), 0o640, "mode 0640"},
		{"world-readable", make([]byte, journal.KeySize), 0o644, "mode 0644"},
		{"too short", make([]byte, journal.KeySize-1), 0o600, "is 31 bytes"},
		{"too long", make([]byte, journal.KeySize+1), 0o600, "is 33 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), journal.KeyFile)
			if err := os.WriteFile(path, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			key, err := journal.LoadKey(path)
			if tc.want == "" {
				if err != nil || len(key) != journal.KeySize {
					t.Fatalf("LoadKey = %d bytes, %v", len(key), err)
				}
				return
			}
			if !errors.Is(err, journal.ErrKey) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadKey: err = %v, want ErrKey saying %q", err, tc.want)
			}
		})
	}
	if _, err := journal.LoadKey(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadKey of a missing file: err = %v, want ErrNotExist", err)
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, journal.KeyFile)
	first, err := journal.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Size() != journal.KeySize || bytes.Equal(first, make([]byte, journal.KeySize)) {
		t.Fatalf("created key file mode %#o size %d, key %x", st.Mode().Perm(), st.Size(), first)
	}
	second, err := journal.LoadOrCreateKey(path)
	if err != nil || !bytes.Equal(first, second) {
		t.Fatalf("second LoadOrCreateKey = %x, %v; want the first key", second, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("directory holds %v, %v; want only the key file", entries, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := journal.LoadOrCreateKey(path); !errors.Is(err, journal.ErrKey) {
		t.Fatalf("LoadOrCreateKey of a world-readable key: err = %v, want ErrKey", err)
	}
}

// FuzzOpen feeds stored bytes, which an attacker with the database may have
// written, to Open: it must never panic, and never open what it did not seal.
func FuzzOpen(f *testing.F) {
	s := newSealer(f, 1)
	f.Add("k", []byte(nil))
	f.Add("k", []byte{1})
	f.Add("k", s.Seal("k", journal.FieldRequest, []byte(`{"card":"4971111111111110"}`)))
	f.Fuzz(func(t *testing.T, key string, stored []byte) {
		if _, err := s.Open(key, journal.FieldRequest, stored); err == nil && len(stored) > 0 {
			// Only what Seal made for this field opens: the same bytes
			// cannot open for another one.
			if _, err := s.Open(key, journal.FieldDecision, stored); err == nil {
				t.Fatalf("%x opened for two fields", stored)
			}
		}
		round, err := s.Open(key, journal.FieldResult, s.Seal(key, journal.FieldResult, stored))
		if err != nil || !bytes.Equal(round, stored) {
			t.Fatalf("round trip of %x: %x, %v", stored, round, err)
		}
	})
}
