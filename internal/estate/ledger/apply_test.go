package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/rempart/rempart/internal/estate/ledger"
)

func TestApply(t *testing.T) {
	ctx := context.Background()
	l := open(t, dbPath(t), fakeSource{"A1": 100_00, "A2": 50_00, "A3": 0})
	tests := []struct {
		name     string
		tr       ledger.Transfer
		executed bool
		fromBal  int64
		after    map[string]int64
	}{{
		name:     "card payment",
		tr:       ledger.Transfer{Key: "k1", From: "A1", To: ledger.SysMerchants, Amount: 30_00, Kind: ledger.KindCard, Reference: "boulangerie"},
		executed: true, fromBal: 70_00,
		after: map[string]int64{"A1": 70_00, ledger.SysMerchants: 30_00},
	}, {
		name:     "atm withdrawal",
		tr:       ledger.Transfer{Key: "k2", From: "A2", To: ledger.SysATMCash, Amount: 20_00, Kind: ledger.KindATM},
		executed: true, fromBal: 30_00,
		after: map[string]int64{"A2": 30_00, ledger.SysATMCash: 20_00},
	}, {
		name:     "instant transfer empties the account",
		tr:       ledger.Transfer{Key: "k3", From: "A1", To: "A2", Amount: 70_00, Kind: ledger.KindInstant},
		executed: true, fromBal: 0,
		after: map[string]int64{"A1": 0, "A2": 100_00},
	}, {
		name:     "declined for one cent",
		tr:       ledger.Transfer{Key: "k4", From: "A1", To: "A2", Amount: 1, Kind: ledger.KindInstant},
		executed: false, fromBal: 0,
		after: map[string]int64{"A1": 0, "A2": 100_00},
	}, {
		name:     "system account may go negative",
		tr:       ledger.Transfer{Key: "k5", From: ledger.SysMerchants, To: "A3", Amount: 500_00, Kind: ledger.KindCard, Reference: "refund"},
		executed: true, fromBal: -470_00,
		after: map[string]int64{ledger.SysMerchants: -470_00, "A3": 500_00},
	}, {
		name:     "maximum amount",
		tr:       ledger.Transfer{Key: "k6", From: ledger.SysATMCash, To: "A3", Amount: ledger.MaxAmount, Kind: ledger.KindInstant},
		executed: true, fromBal: 20_00 - ledger.MaxAmount,
		after: map[string]int64{ledger.SysATMCash: 20_00 - ledger.MaxAmount, "A3": 500_00 + ledger.MaxAmount},
	}}
	var keys []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := l.Apply(ctx, tt.tr)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			keys = append(keys, tt.tr.Key)
			want := ledger.Result{ID: got.ID, Key: tt.tr.Key, Executed: tt.executed, Amount: tt.tr.Amount,
				FromBalance: tt.fromBal, At: got.At}
			if !tt.executed {
				want.Reason = ledger.ReasonInsufficientFunds
			}
			if got != want || got.ID == 0 || got.At.IsZero() {
				t.Errorf("Apply = %+v, want %+v", got, want)
			}
			for a, b := range tt.after {
				if bal := balances(t, l, a)[a]; bal != b {
					t.Errorf("balance of %s = %d, want %d", a, bal, b)
				}
			}
			// A replay answers the same and moves nothing.
			before := balances(t, l, tt.tr.From, tt.tr.To)
			again, err := l.Apply(ctx, tt.tr)
			want.Replayed = true
			if err != nil || again != want {
				t.Errorf("replay = %+v, %v; want %+v", again, err, want)
			}
			if after := balances(t, l, tt.tr.From, tt.tr.To); !equalMaps(before, after) {
				t.Errorf("replay moved money: %v -> %v", before, after)
			}
			if rep := mustCheck(t, l, keys...); !rep.OK {
				t.Errorf("Check = %+v", rep)
			}
		})
	}
}

// TestApplyRejects feeds bad transfers to a ledger holding some history and
// checks each is refused with the right error and leaves it as it was.
func TestApplyRejects(t *testing.T) {
	ctx := context.Background()
	l := open(t, dbPath(t), fakeSource{"A1": 100_00, "A2": 50_00})
	base := ledger.Transfer{Key: "base", From: "A1", To: "A2", Amount: 10_00, Kind: ledger.KindInstant, Reference: "base"}
	if _, err := l.Apply(ctx, base); err != nil {
		t.Fatal(err)
	}
	accounts := []string{"A1", "A2", ledger.SysMerchants, ledger.SysATMCash}
	before := balances(t, l, accounts...)
	repBefore := mustCheck(t, l, "base")

	ok := ledger.Transfer{Key: "fresh", From: "A1", To: "A2", Amount: 1_00, Kind: ledger.KindCard}
	with := func(f func(*ledger.Transfer)) ledger.Transfer { tr := ok; f(&tr); return tr }
	tests := []struct {
		name string
		tr   ledger.Transfer
		want error
	}{
		{"empty key", with(func(t *ledger.Transfer) { t.Key = "" }), ledger.ErrInvalid},
		{"key too long", with(func(t *ledger.Transfer) { t.Key = strings.Repeat("k", 129) }), ledger.ErrInvalid},
		{"key with space", with(func(t *ledger.Transfer) { t.Key = "a b" }), ledger.ErrInvalid},
		{"key with control byte", with(func(t *ledger.Transfer) { t.Key = "ab\x00" }), ledger.ErrInvalid},
		{"key not ascii", with(func(t *ledger.Transfer) { t.Key = "clé" }), ledger.ErrInvalid},
		{"zero amount", with(func(t *ledger.Transfer) { t.Amount = 0 }), ledger.ErrInvalid},
		{"negative amount", with(func(t *ledger.Transfer) { t.Amount = -5_00 }), ledger.ErrInvalid},
		{"amount above max", with(func(t *ledger.Transfer) { t.Amount = ledger.MaxAmount + 1 }), ledger.ErrInvalid},
		{"to itself", with(func(t *ledger.Transfer) { t.To = "A1" }), ledger.ErrInvalid},
		{"no from", with(func(t *ledger.Transfer) { t.From = "" }), ledger.ErrInvalid},
		{"no to", with(func(t *ledger.Transfer) { t.To = "" }), ledger.ErrInvalid},
		{"unknown kind", with(func(t *ledger.Transfer) { t.Kind = "wire" }), ledger.ErrInvalid},
		{"reference too long", with(func(t *ledger.Transfer) { t.Reference = strings.Repeat("r", 141) }), ledger.ErrInvalid},
		{"reference not utf-8", with(func(t *ledger.Transfer) { t.Reference = "\xff" }), ledger.ErrInvalid},
		{"unknown from", with(func(t *ledger.Transfer) { t.From = "A9" }), ledger.ErrUnknownAccount},
		{"unknown to", with(func(t *ledger.Transfer) { t.To = "A9" }), ledger.ErrUnknownAccount},
		{"unknown from with system to", with(func(t *ledger.Transfer) { t.From, t.To = "A9", ledger.SysMerchants }), ledger.ErrUnknownAccount},
		{"key reused: amount", with(func(t *ledger.Transfer) { *t = base; t.Amount++ }), ledger.ErrKeyReused},
		{"key reused: reference", with(func(t *ledger.Transfer) { *t = base; t.Reference = "other" }), ledger.ErrKeyReused},
		{"key reused: kind", with(func(t *ledger.Transfer) { *t = base; t.Kind = ledger.KindCard }), ledger.ErrKeyReused},
		{"key reused: direction", with(func(t *ledger.Transfer) { *t = base; t.From, t.To = t.To, t.From }), ledger.ErrKeyReused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := l.Apply(ctx, tt.tr)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Apply = %+v, %v; want %v", res, err, tt.want)
			}
			if res != (ledger.Result{}) {
				t.Errorf("Apply returned %+v alongside its error", res)
			}
			if after := balances(t, l, accounts...); !equalMaps(before, after) {
				t.Errorf("balances changed: %v -> %v", before, after)
			}
			if tt.tr.Key != base.Key {
				if _, err := l.Lookup(ctx, tt.tr.Key); err == nil {
					t.Errorf("key %q was stored", tt.tr.Key)
				}
			}
			if rep := mustCheck(t, l, "base"); !rep.OK || rep.Accounts != repBefore.Accounts ||
				rep.Transfers != repBefore.Transfers || rep.Declined != repBefore.Declined {
				t.Errorf("Check = %+v, want as before: %+v", rep, repBefore)
			}
		})
	}
}

// TestConcurrentReplays: a retry storm of one key moves money once and
// every retry sees the first decision.
func TestConcurrentReplays(t *testing.T) {
	ctx := context.Background()
	l := open(t, dbPath(t), fakeSource{"A1": 100_00, "A2": 0})
	tr := ledger.Transfer{Key: "storm", From: "A1", To: "A2", Amount: 10_00, Kind: ledger.KindInstant}

	const n = 100
	results := make([]ledger.Result, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = l.Apply(ctx, tr)
		})
	}
	close(start)
	wg.Wait()

	var first ledger.Result
	firsts := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Apply #%d: %v", i, errs[i])
		}
		if !results[i].Replayed {
			first = results[i]
			firsts++
		}
	}
	if firsts != 1 {
		t.Fatalf("%d applies were not replays, want exactly 1", firsts)
	}
	for i, r := range results {
		if r.Replayed {
			r.Replayed = false
			if r != first {
				t.Errorf("replay #%d = %+v, want %+v", i, r, first)
			}
		}
	}
	if b := balances(t, l, "A1", "A2"); b["A1"] != 90_00 || b["A2"] != 10_00 {
		t.Errorf("balances = %v, want one movement of 10 €", b)
	}
	if rep := mustCheck(t, l, "storm"); !rep.OK || rep.Transfers != 1 {
		t.Errorf("Check = %+v", rep)
	}
	if h, err := l.History(ctx, "A1", 0); err != nil || len(h) != 1 {
		t.Errorf("History(A1) = %v, %v; want one entry", h, err)
	}
}

// TestConcurrentTransfers runs random transfers among 50 accounts from many
// goroutines, with audits running alongside, and checks that money is
// conserved and nothing acknowledged is lost.
func TestConcurrentTransfers(t *testing.T) {
	ctx := context.Background()
	src := fakeSource{}
	var accounts []string
	for i := range 50 {
		a := fmt.Sprintf("A%02d", i)
		src[a] = 200_00
		accounts = append(accounts, a)
	}
	all := append([]string{ledger.SysMerchants, ledger.SysATMCash}, accounts...)
	kinds := []string{ledger.KindCard, ledger.KindATM, ledger.KindInstant}
	l := open(t, dbPath(t), src)

	const workers, perWorker = 16, 60
	acked := make([][]string, workers)
	executed := make([]int, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range perWorker {
				from := all[rng.IntN(len(all))]
				to := all[rng.IntN(len(all))]
				if from == to {
					continue
				}
				tr := ledger.Transfer{
					Key:    fmt.Sprintf("w%d-%d", w, i),
					From:   from,
					To:     to,
					Amount: 1 + rng.Int64N(150_00),
					Kind:   kinds[rng.IntN(len(kinds))],
				}
				// Bad transfers ride in the same group commits as good ones
				// and must fail alone.
				switch {
				case i%7 == 3:
					bad := tr
					bad.To = "nobody"
					if _, err := l.Apply(ctx, bad); !errors.Is(err, ledger.ErrUnknownAccount) {
						t.Errorf("Apply to an unknown account: %v", err)
					}
				case i%11 == 5 && len(acked[w]) > 0:
					reused := tr
					reused.Key = acked[w][len(acked[w])-1]
					reused.Reference = "reused"
					if _, err := l.Apply(ctx, reused); !errors.Is(err, ledger.ErrKeyReused) {
						t.Errorf("Apply of a reused key: %v", err)
					}
				}
				res, err := l.Apply(ctx, tr)
				if err != nil {
					t.Errorf("Apply(%+v): %v", tr, err)
					return
				}
				acked[w] = append(acked[w], tr.Key)
				if res.Executed {
					executed[w]++
				}
				if rng.IntN(10) == 0 { // a client retrying
					if again, err := l.Apply(ctx, tr); err != nil || !again.Replayed || again.ID != res.ID {
						t.Errorf("replay of %s = %+v, %v", tr.Key, again, err)
					}
				}
			}
		})
	}
	// Audits during the load must see consistent snapshots.
	auditDone := make(chan struct{})
	go func() {
		defer close(auditDone)
		for range 5 {
			rep, err := l.Check(ctx, nil)
			if err != nil || !rep.OK {
				t.Errorf("Check during load = %+v, %v", rep, err)
			}
		}
	}()
	wg.Wait()
	<-auditDone

	var keys []string
	wantExecuted := 0
	for w := range workers {
		keys = append(keys, acked[w]...)
		wantExecuted += executed[w]
	}
	rep := mustCheck(t, l, keys...)
	if !rep.OK || rep.Sum != rep.OpeningSum || rep.Transfers != wantExecuted ||
		rep.Transfers+rep.Declined != len(keys) {
		t.Fatalf("Check = %+v; want OK with %d executed of %d", rep, wantExecuted, len(keys))
	}
	var sum int64
	for a, b := range balances(t, l, all...) {
		sum += b
		if b < 0 && a != ledger.SysMerchants && a != ledger.SysATMCash {
			t.Errorf("customer %s went to %d", a, b)
		}
	}
	if want := int64(len(accounts)) * 200_00; sum != want {
		t.Errorf("sum of balances = %d, want %d", sum, want)
	}
}

func TestBalance(t *testing.T) {
	ctx := context.Background()
	l := open(t, dbPath(t), fakeSource{"A1": 42_00})
	tests := []struct {
		account string
		want    int64
		err     error
	}{
		{"A1", 42_00, nil},
		{ledger.SysMerchants, 0, nil},
		{ledger.SysATMCash, 0, nil},
		{"A2", 0, ledger.ErrUnknownAccount},
		{"", 0, ledger.ErrUnknownAccount},
	}
	for _, tt := range tests {
		t.Run(tt.account, func(t *testing.T) {
			got, err := l.Balance(ctx, tt.account)
			if got != tt.want || !errors.Is(err, tt.err) {
				t.Errorf("Balance = %d, %v; want %d, %v", got, err, tt.want, tt.err)
			}
		})
	}
	if rep := mustCheck(t, l); rep.Accounts != 0 {
		t.Errorf("reading balances materialised %d accounts", rep.Accounts)
	}
}

func TestHistory(t *testing.T) {
	ctx := context.Background()
	l := open(t, dbPath(t), fakeSource{"A1": 100_00, "A2": 0, "A3": 5_00})
	steps := []ledger.Transfer{
		{Key: "h1", From: "A1", To: "A2", Amount: 10_00, Kind: ledger.KindInstant, Reference: "loyer"},
		{Key: "h2", From: "A1", To: ledger.SysMerchants, Amount: 3_50, Kind: ledger.KindCard, Reference: "café"},
		{Key: "h3", From: "A2", To: "A1", Amount: 99_00, Kind: ledger.KindInstant}, // declined: no entries
		{Key: "h4", From: "A1", To: ledger.SysATMCash, Amount: 20_00, Kind: ledger.KindATM},
	}
	ids := map[string]int64{}
	for _, s := range steps {
		r, err := l.Apply(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		ids[s.Key] = r.ID
	}
	h, err := l.History(ctx, "A1", 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		key          string
		amount       int64
		kind, ref    string
		counterparty string
	}{
		{"h4", -20_00, ledger.KindATM, "", ledger.SysATMCash},
		{"h2", -3_50, ledger.KindCard, "café", ledger.SysMerchants},
		{"h1", -10_00, ledger.KindInstant, "loyer", "A2"},
	}
	if len(h) != len(want) {
		t.Fatalf("History(A1) = %+v, want %d entries", h, len(want))
	}
	for i, w := range want {
		e := h[i]
		if e.TransferID != ids[w.key] || e.Account != "A1" || e.Amount != w.amount || e.Kind != w.kind ||
			e.Reference != w.ref || e.Counterparty != w.counterparty || !e.At.After(epoch) {
			t.Errorf("entry %d = %+v, want %+v", i, e, w)
		}
	}
	if h, err := l.History(ctx, "A1", 1); err != nil || len(h) != 1 || h[0].TransferID != ids["h4"] {
		t.Errorf("History(A1, 1) = %+v, %v", h, err)
	}
	if h, err := l.History(ctx, "A2", 10); err != nil || len(h) != 1 || h[0].Amount != 10_00 || h[0].Counterparty != "A1" {
		t.Errorf("History(A2) = %+v, %v", h, err)
	}
	if h, err := l.History(ctx, "A3", 10); err != nil || len(h) != 0 {
		t.Errorf("History of an untouched account = %+v, %v; want empty", h, err)
	}
	if _, err := l.History(ctx, "nobody", 10); !errors.Is(err, ledger.ErrUnknownAccount) {
		t.Errorf("History(nobody) err = %v, want ErrUnknownAccount", err)
	}
}

func TestLookup(t *testing.T) {
	ctx := context.Background()
	l := open(t, dbPath(t), fakeSource{"A1": 1_00})
	res, err := l.Apply(ctx, ledger.Transfer{Key: "x", From: "A1", To: ledger.SysMerchants, Amount: 2_00, Kind: ledger.KindCard})
	if err != nil || res.Executed || res.Reason != ledger.ReasonInsufficientFunds {
		t.Fatalf("Apply = %+v, %v; want a decline", res, err)
	}
	tests := []struct {
		key  string
		want ledger.Result
		err  error
	}{
		{"x", res, nil},
		{"y", ledger.Result{}, ledger.ErrNotFound},
		{"", ledger.Result{}, ledger.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got, err := l.Lookup(ctx, tt.key)
			if got != tt.want || !errors.Is(err, tt.err) {
				t.Errorf("Lookup = %+v, %v; want %+v, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestApplyAfterCloseOrCancel(t *testing.T) {
	tr := ledger.Transfer{Key: "late", From: "A1", To: "A2", Amount: 1, Kind: ledger.KindInstant}
	path := dbPath(t)
	l := open(t, path, fakeSource{"A1": 10, "A2": 0})

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Apply(ctx, tr); !errors.Is(err, context.Canceled) {
		t.Errorf("Apply with a cancelled context: %v", err)
	}
	if _, err := l.Lookup(context.Background(), tr.Key); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("a cancelled Apply was stored: %v", err)
	}

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := l.Apply(context.Background(), tr); !errors.Is(err, ledger.ErrClosed) {
		t.Errorf("Apply after Close: %v", err)
	}
}
