package journaltest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/journal"
)

// The lease tests: replayers on several nodes claim entries (Store.Claim) so
// that none is delivered by two of them while its lease lasts.

// lease is owner's lease of 30s taken at base+at.
func lease(owner string, at time.Duration) journal.Lease {
	return journal.Lease{Owner: owner, Now: base.Add(at), Until: base.Add(at + 30*time.Second)}
}

func claim(t *testing.T, s journal.Store, f journal.Filter, l journal.Lease) []string {
	t.Helper()
	if f.Limit == 0 {
		f.Limit = 100
	}
	got, err := s.Claim(ctx(t), f, l)
	if err != nil {
		t.Fatalf("Claim(%s at %v): %v", l.Owner, l.Now, err)
	}
	for _, e := range got {
		if e.State != journal.Pending {
			t.Fatalf("Claim returned %s in state %s", e.Key, e.State)
		}
	}
	return keys(got)
}

func wantKeys(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
}

func appendPending(t *testing.T, s journal.Store, n int) {
	t.Helper()
	for i := range n {
		mustAppend(t, s, entry(fmt.Sprintf("c-%02d", i), base.Add(time.Duration(i)*time.Millisecond)))
	}
}

// testClaimExclusive: a live lease keeps an entry from every other owner,
// and its own owner renews it.
func testClaimExclusive(t *testing.T, s journal.Store) {
	appendPending(t, s, 6)
	first := claim(t, s, journal.Filter{Limit: 4}, lease("a", 0))
	wantKeys(t, "a claims 4", first, "c-00", "c-01", "c-02", "c-03")
	wantKeys(t, "b claims the rest", claim(t, s, journal.Filter{}, lease("b", time.Second)), "c-04", "c-05")
	wantKeys(t, "c finds nothing free", claim(t, s, journal.Filter{}, lease("c", 2*time.Second)))
	wantKeys(t, "a renews its own", claim(t, s, journal.Filter{}, lease("a", 3*time.Second)), first...)
	// a's lease now runs to base+33s, not base+30s.
	wantKeys(t, "b before a's renewed lease ends", claim(t, s, journal.Filter{}, lease("b", 32*time.Second)), "c-04", "c-05")
}

// testClaimTakeover: the entries of a dead owner are taken over once its
// lease has ended, and are then the new owner's.
func testClaimTakeover(t *testing.T, s journal.Store) {
	appendPending(t, s, 3)
	wantKeys(t, "a claims", claim(t, s, journal.Filter{}, lease("a", 0)), "c-00", "c-01", "c-02")
	wantKeys(t, "b while a's lease lasts", claim(t, s, journal.Filter{}, lease("b", 29*time.Second)))
	wantKeys(t, "b once it ended", claim(t, s, journal.Filter{}, lease("b", 31*time.Second)), "c-00", "c-01", "c-02")
	wantKeys(t, "a back from the dead", claim(t, s, journal.Filter{}, lease("a", 32*time.Second)))
}

// testClaimDone: a done entry is never claimed, whoever asks and however
// late.
func testClaimDone(t *testing.T, s journal.Store) {
	appendPending(t, s, 2)
	d := entry("done", base)
	d.State, d.Completed = journal.Done, base
	mustAppend(t, s, d)
	wantKeys(t, "a claims", claim(t, s, journal.Filter{}, lease("a", 0)), "c-00", "c-01")
	if _, err := s.Complete(ctx(t), "c-00", journal.Result{Status: 200}, base.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, "a again", claim(t, s, journal.Filter{}, lease("a", 2*time.Second)), "c-01")
	wantKeys(t, "b after every lease", claim(t, s, journal.Filter{}, lease("b", time.Hour)), "c-01")
	if _, err := s.Complete(ctx(t), "c-01", journal.Result{Status: 200}, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	wantKeys(t, "nothing pending", claim(t, s, journal.Filter{}, lease("c", 2*time.Hour)))
}

// testClaimFilters: Claim selects as List does, and returns whole entries.
func testClaimFilters(t *testing.T, s journal.Store) {
	mustAppend(t, s, entry("s-1", base))
	o := entry("o-1", base.Add(time.Second))
	o.Kind, o.Upstream = journal.KindOutbox, "payments"
	mustAppend(t, s, o)
	second := mustAppend(t, s, entry("s-2", base.Add(2*time.Second)))
	wantKeys(t, "upstream", claim(t, s, journal.Filter{Upstream: "payments"}, lease("a", 0)), "o-1")
	wantKeys(t, "kind", claim(t, s, journal.Filter{Kind: journal.KindStandIn, Limit: 1}, lease("b", 0)), "s-1")
	wantKeys(t, "since", claim(t, s, journal.Filter{Since: base.Add(2 * time.Second)}, lease("c", 0)), "s-2")
	got, err := s.Claim(ctx(t), journal.Filter{State: journal.Pending, After: second.Seq - 1, Limit: 10}, lease("c", time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("after Seq %d: got %v, want s-2", second.Seq-1, keys(got))
	}
	same(t, "claimed", got[0], entry("s-2", base.Add(2*time.Second)))
}

func testClaimInvalid(t *testing.T, s journal.Store) {
	mustAppend(t, s, entry("k", base))
	good := lease("a", 0)
	for _, tc := range []struct {
		name string
		f    journal.Filter
		l    journal.Lease
	}{
		{"no owner", journal.Filter{Limit: 1}, journal.Lease{Now: good.Now, Until: good.Until}},
		{"until before now", journal.Filter{Limit: 1}, journal.Lease{Owner: "a", Now: good.Until, Until: good.Now}},
		{"no instants", journal.Filter{Limit: 1}, journal.Lease{Owner: "a"}},
		{"done entries", journal.Filter{State: journal.Done, Limit: 1}, good},
		{"no limit", journal.Filter{}, good},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := s.Claim(ctx(t), tc.f, tc.l); !errors.Is(err, journal.ErrInvalid) {
				t.Fatalf("Claim = %v, %v; want ErrInvalid", keys(got), err)
			}
		})
	}
	wantKeys(t, "nothing was claimed", claim(t, s, journal.Filter{}, lease("b", 0)), "k")
}

// testClaimRace: claimers racing at the same instant share the entries out,
// each entry to exactly one of them.
func testClaimRace(t *testing.T, s journal.Store) {
	const n, claimers = 40, 4
	appendPending(t, s, n)
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		got = map[string][]string{} // key -> owners
	)
	for c := range claimers {
		owner := fmt.Sprintf("node-%d", c)
		wg.Go(func() {
			var after int64
			for {
				page, err := s.Claim(context.Background(), journal.Filter{After: after, Limit: 3}, lease(owner, 0))
				if err != nil {
					t.Errorf("Claim(%s): %v", owner, err)
					return
				}
				if len(page) == 0 {
					return
				}
				after = page[len(page)-1].Seq
				mu.Lock()
				for _, e := range page {
					got[e.Key] = append(got[e.Key], owner)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(got) != n {
		t.Errorf("%d of %d entries claimed", len(got), n)
	}
	for k, owners := range got {
		if len(owners) != 1 {
			t.Errorf("%s claimed by %v", k, owners)
		}
	}
}
