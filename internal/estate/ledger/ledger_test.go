package ledger_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/estate/ledger"
)

// fakeSource is a hand-written AccountSource: account -> opening balance.
type fakeSource map[string]int64

func (f fakeSource) OpeningBalance(account string) (int64, bool) {
	v, ok := f[account]
	return v, ok
}

// fakeClock ticks one millisecond per reading, so stored times are
// predictable and distinct.
type fakeClock struct{ n atomic.Int64 }

var epoch = time.Date(2025, 12, 22, 8, 0, 0, 0, time.UTC)

func (c *fakeClock) Now() time.Time {
	return epoch.Add(time.Duration(c.n.Add(1)) * time.Millisecond)
}

func dbPath(t testing.TB) string { return filepath.Join(t.TempDir(), "ledger.db") }

func open(t testing.TB, path string, src ledger.AccountSource) *ledger.Ledger {
	t.Helper()
	var clock fakeClock
	l, err := ledger.Open(context.Background(), path, src, ledger.Options{Now: clock.Now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// rawDB opens the ledger's file behind its back, to tamper with it. Foreign
// keys stay off, as in an operator's sqlite3 shell.
func rawDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustCheck(t testing.TB, l *ledger.Ledger, acknowledged ...string) ledger.Report {
	t.Helper()
	rep, err := l.Check(context.Background(), acknowledged)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return rep
}

func balances(t testing.TB, l *ledger.Ledger, accounts ...string) map[string]int64 {
	t.Helper()
	m := make(map[string]int64, len(accounts))
	for _, a := range accounts {
		b, err := l.Balance(context.Background(), a)
		if err != nil {
			t.Fatalf("Balance(%s): %v", a, err)
		}
		m[a] = b
	}
	return m
}

func TestOpenOptions(t *testing.T) {
	src := fakeSource{"A1": 10}
	tests := []struct {
		name string
		path string
		src  ledger.AccountSource
		opts ledger.Options
		want error
	}{
		{"defaults", dbPath(t), src, ledger.Options{}, nil},
		{"normal", dbPath(t), src, ledger.Options{Sync: "normal"}, nil},
		{"full", dbPath(t), src, ledger.Options{Sync: "full"}, nil},
		{"bad sync", dbPath(t), src, ledger.Options{Sync: "off"}, ledger.ErrInvalid},
		{"no source", dbPath(t), nil, ledger.Options{}, ledger.ErrInvalid},
		{"empty path", "", src, ledger.Options{}, ledger.ErrInvalid},
		{"in memory", ":memory:", src, ledger.Options{}, ledger.ErrInvalid},
		{"query in path", dbPath(t) + "?mode=ro", src, ledger.Options{}, ledger.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ledger.Open(context.Background(), tt.path, tt.src, tt.opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open err = %v, want %v", err, tt.want)
			}
			if err != nil {
				return
			}
			defer l.Close()
			if _, err := l.Apply(context.Background(), ledger.Transfer{
				Key: "k", From: ledger.SysMerchants, To: "A1", Amount: 1, Kind: ledger.KindInstant,
			}); err != nil {
				t.Fatalf("Apply: %v", err)
			}
		})
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := dbPath(t)
	l := open(t, path, fakeSource{})
	l.Close()
	if _, err := rawDB(t, path).Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	if l, err := ledger.Open(context.Background(), path, fakeSource{}, ledger.Options{}); err == nil {
		l.Close()
		t.Fatal("Open accepted a file from a newer schema")
	}
}

func TestPersistence(t *testing.T) {
	ctx := context.Background()
	path := dbPath(t)
	src := fakeSource{"A1": 100_00, "A2": 0}
	l := open(t, path, src)
	t1 := ledger.Transfer{Key: "p1", From: "A1", To: "A2", Amount: 40_00, Kind: ledger.KindInstant, Reference: "rent"}
	t2 := ledger.Transfer{Key: "p2", From: "A2", To: ledger.SysMerchants, Amount: 50_00, Kind: ledger.KindCard}
	r1, err := l.Apply(ctx, t1)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := l.Apply(ctx, t2) // declined: A2 holds 40 €
	if err != nil || r2.Executed {
		t.Fatalf("Apply(p2) = %+v, %v; want a decline", r2, err)
	}
	before := balances(t, l, "A1", "A2", ledger.SysMerchants)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	l = open(t, path, src)
	if after := balances(t, l, "A1", "A2", ledger.SysMerchants); !equalMaps(before, after) {
		t.Errorf("balances after reopen = %v, want %v", after, before)
	}
	for _, c := range []struct {
		tr   ledger.Transfer
		want ledger.Result
	}{{t1, r1}, {t2, r2}} {
		got, err := l.Lookup(ctx, c.tr.Key)
		if err != nil || got != c.want {
			t.Errorf("Lookup(%s) = %+v, %v; want %+v", c.tr.Key, got, err, c.want)
		}
		got, err = l.Apply(ctx, c.tr)
		c.want.Replayed = true
		if err != nil || got != c.want {
			t.Errorf("replay of %s after reopen = %+v, %v; want %+v", c.tr.Key, got, err, c.want)
		}
	}
	rep := mustCheck(t, l, "p1", "p2")
	if !rep.OK || rep.Transfers != 1 || rep.Declined != 1 || rep.Accounts != 3 {
		t.Errorf("Check after reopen = %+v", rep)
	}
}

func equalMaps(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
