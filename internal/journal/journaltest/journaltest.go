package journaltest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/journal"
)

// RunTests runs the conformance suite. newStore returns an empty store; the
// suite closes it when the subtest ends.
func RunTests(t *testing.T, newStore func(t *testing.T) journal.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s journal.Store)
	}{
		{"AppendGet", testAppendGet},
		{"AppendDuplicate", testAppendDuplicate},
		{"AppendDone", testAppendDone},
		{"Invalid", testInvalid},
		{"GetNotFound", testGetNotFound},
		{"Complete", testComplete},
		{"CompleteIdempotent", testCompleteIdempotent},
		{"CompleteNotFound", testCompleteNotFound},
		{"ListPendingOldestFirst", testListPendingOldestFirst},
		{"ListFilters", testListFilters},
		{"ListPaging", testListPaging},
		{"Counts", testCounts},
		{"BinaryBodies", testBinaryBodies},
		{"LargestBodies", testLargestBodies},
		{"Purge", testPurge},
		{"PurgeMany", testPurgeMany},
		{"SameKeyRace", testSameKeyRace},
		{"CompleteRace", testCompleteRace},
		{"Concurrent", testConcurrent},
		{"ClaimExclusive", testClaimExclusive},
		{"ClaimTakeover", testClaimTakeover},
		{"ClaimDone", testClaimDone},
		{"ClaimFilters", testClaimFilters},
		{"ClaimInvalid", testClaimInvalid},
		{"ClaimRace", testClaimRace},
		{"CanceledContext", testCanceledContext},
		{"Closed", testClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { s.Close() })
			tt.run(t, s)
		})
	}
}

// base is a fixed instant with nanoseconds, so that a backend rounding to
// microseconds (PostgreSQL's timestamp) is caught.
var base = time.Date(2025, 12, 22, 9, 30, 0, 123456789, time.UTC)

func entry(key string, at time.Time) journal.Entry {
	return journal.Entry{
		Key:      key,
		Kind:     journal.KindStandIn,
		Upstream: "estate",
		Request: journal.Request{
			Method:      "POST",
			Path:        "/v1/cards/authorize",
			ContentType: "application/json",
			Body:        []byte(`{"card":"4971111111111110","amount":3000}`),
		},
		Decision: []byte(`{"approved":true}`),
		Created:  at,
	}
}

func ctx(t *testing.T) context.Context { return t.Context() }

// same compares the fields a backend must keep, ignoring Seq.
func same(t *testing.T, what string, got, want journal.Entry) {
	t.Helper()
	if want.State == "" {
		want.State = journal.Pending
	}
	switch {
	case got.Key != want.Key, got.Kind != want.Kind, got.Upstream != want.Upstream,
		got.Request.Method != want.Request.Method, got.Request.Path != want.Request.Path,
		got.Request.ContentType != want.Request.ContentType, got.State != want.State,
		got.Result.Status != want.Result.Status, got.Result.ContentType != want.Result.ContentType:
		t.Fatalf("%s: got %+v, want %+v", what, got, want)
	case !bytes.Equal(got.Request.Body, want.Request.Body), !bytes.Equal(got.Decision, want.Decision),
		!bytes.Equal(got.Result.Body, want.Result.Body):
		t.Fatalf("%s: bodies differ: got %+v, want %+v", what, got, want)
	case !got.Created.Equal(want.Created), !got.Completed.Equal(want.Completed):
		t.Fatalf("%s: times differ: got created %v completed %v, want %v %v",
			what, got.Created, got.Completed, want.Created, want.Completed)
	}
}

func mustAppend(t *testing.T, s journal.Store, e journal.Entry) journal.Entry {
	t.Helper()
	got, err := s.Append(ctx(t), e)
	if err != nil {
		t.Fatalf("Append(%s): %v", e.Key, err)
	}
	return got
}

func testAppendGet(t *testing.T, s journal.Store) {
	e := entry("k-1", base)
	got := mustAppend(t, s, e)
	same(t, "Append", got, e)
	if got.Seq <= 0 {
		t.Fatalf("Seq = %d, want > 0", got.Seq)
	}
	read, err := s.Get(ctx(t), "k-1")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	same(t, "Get", read, e)
	if read.Seq != got.Seq {
		t.Fatalf("Get Seq = %d, Append said %d", read.Seq, got.Seq)
	}
	second := mustAppend(t, s, entry("k-2", base))
	if second.Seq <= got.Seq {
		t.Fatalf("second Seq %d not after first %d", second.Seq, got.Seq)
	}
}

func testAppendDuplicate(t *testing.T, s journal.Store) {
	first := entry("dup", base)
	mustAppend(t, s, first)
	other := entry("dup", base.Add(time.Hour))
	other.Decision = []byte(`{"approved":false}`)
	other.Request.Body = []byte(`{"other":true}`)
	got, err := s.Append(ctx(t), other)
	if !errors.Is(err, journal.ErrAlreadyExists) {
		t.Fatalf("second Append: err = %v, want ErrAlreadyExists", err)
	}
	same(t, "Append returns the existing entry", got, first)
	read, err := s.Get(ctx(t), "dup")
	if err != nil {
		t.Fatal(err)
	}
	same(t, "first entry unchanged", read, first)
}

func testAppendDone(t *testing.T, s journal.Store) {
	e := entry("declined", base)
	e.State = journal.Done
	e.Completed = base
	same(t, "Append Done", mustAppend(t, s, e), e)
	pending, err := s.List(ctx(t), journal.Filter{State: journal.Pending, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 0 {
		t.Fatalf("a Done entry is listed as pending: %+v", pending)
	}
}

func testInvalid(t *testing.T, s journal.Store) {
	mod := func(f func(*journal.Entry)) journal.Entry {
		e := entry("ok", base)
		f(&e)
		return e
	}
	bad := map[string]journal.Entry{
		"empty key":     mod(func(e *journal.Entry) { e.Key = "" }),
		"space in key":  mod(func(e *journal.Entry) { e.Key = "a b" }),
		"long key":      mod(func(e *journal.Entry) { e.Key = strings.Repeat("k", journal.MaxKeyLen+1) }),
		"non-ASCII key": mod(func(e *journal.Entry) { e.Key = "clé" }),
		"no kind":       mod(func(e *journal.Entry) { e.Kind = "" }),
		"no method":     mod(func(e *journal.Entry) { e.Request.Method = "" }),
		"relative path": mod(func(e *journal.Entry) { e.Request.Path = "v1/x" }),
		"NUL in path":   mod(func(e *journal.Entry) { e.Request.Path = "/a\x00b" }),
		"bad UTF-8":     mod(func(e *journal.Entry) { e.Upstream = "\xff" }),
		"bad state":     mod(func(e *journal.Entry) { e.State = "lost" }),
		"no created":    mod(func(e *journal.Entry) { e.Created = time.Time{} }),
		"huge body":     mod(func(e *journal.Entry) { e.Request.Body = make([]byte, journal.MaxBodyLen+1) }),
	}
	for name, e := range bad {
		if _, err := s.Append(ctx(t), e); !errors.Is(err, journal.ErrInvalid) {
			t.Errorf("%s: Append err = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := s.Complete(ctx(t), "", journal.Result{}, base); !errors.Is(err, journal.ErrInvalid) {
		t.Errorf("Complete with empty key: err = %v, want ErrInvalid", err)
	}
	if _, err := s.Complete(ctx(t), "ok", journal.Result{}, time.Time{}); !errors.Is(err, journal.ErrInvalid) {
		t.Errorf("Complete without a time: err = %v, want ErrInvalid", err)
	}
	for _, f := range []journal.Filter{{Limit: 0}, {Limit: journal.MaxListLimit + 1}, {State: "lost", Limit: 1}} {
		if _, err := s.List(ctx(t), f); !errors.Is(err, journal.ErrInvalid) {
			t.Errorf("List(%+v): err = %v, want ErrInvalid", f, err)
		}
	}
	if _, err := s.Get(ctx(t), "ok"); !errors.Is(err, journal.ErrNotFound) {
		t.Errorf("an invalid entry was stored: Get err = %v", err)
	}
}

func testGetNotFound(t *testing.T, s journal.Store) {
	if _, err := s.Get(ctx(t), "nobody"); !errors.Is(err, journal.ErrNotFound) {
		t.Fatalf("Get: err = %v, want ErrNotFound", err)
	}
}

func testComplete(t *testing.T, s journal.Store) {
	e := mustAppend(t, s, entry("c-1", base))
	res := journal.Result{Status: 200, ContentType: "application/json", Body: []byte(`{"id":7,"approved":true}`)}
	at := base.Add(90 * time.Second)
	got, err := s.Complete(ctx(t), "c-1", res, at)
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	want := entry("c-1", base)
	want.State, want.Result, want.Completed = journal.Done, res, at
	same(t, "Complete", got, want)
	if got.Seq != e.Seq {
		t.Fatalf("Complete changed Seq from %d to %d", e.Seq, got.Seq)
	}
	read, err := s.Get(ctx(t), "c-1")
	if err != nil {
		t.Fatal(err)
	}
	same(t, "Get after Complete", read, want)
}

func testCompleteIdempotent(t *testing.T, s journal.Store) {
	mustAppend(t, s, entry("c-2", base))
	first := journal.Result{Status: 200, Body: []byte(`first`)}
	if _, err := s.Complete(ctx(t), "c-2", first, base.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Complete(ctx(t), "c-2", journal.Result{Status: 500, Body: []byte(`second`)}, base.Add(time.Hour))
	if err != nil {
		t.Fatalf("second Complete: %v", err)
	}
	if got.Result.Status != 200 || string(got.Result.Body) != "first" || !got.Completed.Equal(base.Add(time.Second)) {
		t.Fatalf("second Complete replaced the first result: %+v", got)
	}
}

func testCompleteNotFound(t *testing.T, s journal.Store) {
	if _, err := s.Complete(ctx(t), "nobody", journal.Result{Status: 200}, base); !errors.Is(err, journal.ErrNotFound) {
		t.Fatalf("Complete: err = %v, want ErrNotFound", err)
	}
}

func keys(es []journal.Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Key
	}
	return out
}

func testListPendingOldestFirst(t *testing.T, s journal.Store) {
	for i := range 5 {
		mustAppend(t, s, entry(fmt.Sprintf("p-%d", i), base.Add(time.Duration(i)*time.Second)))
	}
	if _, err := s.Complete(ctx(t), "p-1", journal.Result{Status: 200}, base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, err := s.List(ctx(t), journal.Filter{State: journal.Pending, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if want := "p-0 p-2 p-3 p-4"; strings.Join(keys(got), " ") != want {
		t.Fatalf("pending = %v, want %s", keys(got), want)
	}
	done, err := s.List(ctx(t), journal.Filter{State: journal.Done, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != 1 || done[0].Key != "p-1" {
		t.Fatalf("done = %v, want [p-1]", keys(done))
	}
}

func testListFilters(t *testing.T, s journal.Store) {
	a := entry("a", base)
	b := entry("b", base.Add(time.Hour))
	b.Kind = journal.KindOutbox
	c := entry("c", base.Add(2*time.Hour))
	c.Upstream = "other"
	for _, e := range []journal.Entry{a, b, c} {
		mustAppend(t, s, e)
	}
	for _, tc := range []struct {
		f    journal.Filter
		want string
	}{
		{journal.Filter{Limit: 10}, "a b c"},
		{journal.Filter{Kind: journal.KindOutbox, Limit: 10}, "b"},
		{journal.Filter{Kind: journal.KindStandIn, Upstream: "estate", Limit: 10}, "a"},
		{journal.Filter{Upstream: "other", Limit: 10}, "c"},
		{journal.Filter{Since: base.Add(time.Hour), Limit: 10}, "b c"},
		{journal.Filter{Since: base.Add(time.Hour + 1), Limit: 10}, "c"},
		{journal.Filter{Limit: 2}, "a b"},
	} {
		got, err := s.List(ctx(t), tc.f)
		if err != nil {
			t.Fatalf("List(%+v): %v", tc.f, err)
		}
		if strings.Join(keys(got), " ") != tc.want {
			t.Errorf("List(%+v) = %v, want %s", tc.f, keys(got), tc.want)
		}
	}
}

func testListPaging(t *testing.T, s journal.Store) {
	const n = 25
	for i := range n {
		mustAppend(t, s, entry(fmt.Sprintf("page-%02d", i), base))
	}
	var all []string
	after := int64(0)
	for {
		page, err := s.List(ctx(t), journal.Filter{State: journal.Pending, After: after, Limit: 7})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		all = append(all, keys(page)...)
		after = page[len(page)-1].Seq
	}
	if len(all) != n {
		t.Fatalf("paged through %d entries, want %d: %v", len(all), n, all)
	}
	for i, k := range all {
		if want := fmt.Sprintf("page-%02d", i); k != want {
			t.Fatalf("entry %d = %s, want %s", i, k, want)
		}
	}
}

func testCounts(t *testing.T, s journal.Store) {
	c, err := s.Counts(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Pending)+len(c.Done) != 0 {
		t.Fatalf("empty store counts %+v", c)
	}
	for i := range 3 {
		mustAppend(t, s, entry(fmt.Sprintf("s-%d", i), base))
	}
	o := entry("o-1", base)
	o.Kind = journal.KindOutbox
	mustAppend(t, s, o)
	if _, err := s.Complete(ctx(t), "s-0", journal.Result{Status: 200}, base); err != nil {
		t.Fatal(err)
	}
	if c, err = s.Counts(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if c.Pending[journal.KindStandIn] != 2 || c.Pending[journal.KindOutbox] != 1 || c.Done[journal.KindStandIn] != 1 ||
		c.Done[journal.KindOutbox] != 0 {
		t.Fatalf("counts = %+v, want pending standin 2 outbox 1, done standin 1", c)
	}
}

func testBinaryBodies(t *testing.T, s journal.Store) {
	e := entry("bin", base)
	e.Request.Body = []byte{0, 1, 2, 0xff, 0, '\'', '"', '\\'}
	e.Decision = nil
	mustAppend(t, s, e)
	res := journal.Result{Status: 502, Body: []byte{0, 0, 0xfe}}
	got, err := s.Complete(ctx(t), "bin", res, base)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Request.Body, e.Request.Body) || len(got.Decision) != 0 || !bytes.Equal(got.Result.Body, res.Body) {
		t.Fatalf("bodies not kept byte for byte: %+v", got)
	}
}

func testSameKeyRace(t *testing.T, s journal.Store) {
	const n = 16
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		won     []string
		answers = map[string]int{}
	)
	for i := range n {
		wg.Go(func() {
			e := entry("race", base)
			e.Decision = []byte(fmt.Sprintf(`{"writer":%d}`, i))
			got, err := s.Append(context.Background(), e)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won = append(won, string(got.Decision))
			case errors.Is(err, journal.ErrAlreadyExists):
			default:
				t.Errorf("Append: %v", err)
				return
			}
			answers[string(got.Decision)]++
		})
	}
	wg.Wait()
	if len(won) != 1 {
		t.Fatalf("%d appends of one key succeeded, want 1", len(won))
	}
	if len(answers) != 1 || answers[won[0]] != n {
		t.Fatalf("callers were told different entries: %v", answers)
	}
}

func testCompleteRace(t *testing.T, s journal.Store) {
	mustAppend(t, s, entry("cr", base))
	const n = 8
	var wg sync.WaitGroup
	results := make([]journal.Entry, n)
	for i := range n {
		wg.Go(func() {
			got, err := s.Complete(context.Background(), "cr",
				journal.Result{Status: 200, Body: []byte(fmt.Sprint(i))}, base.Add(time.Duration(i+1)*time.Second))
			if err != nil {
				t.Errorf("Complete: %v", err)
			}
			results[i] = got
		})
	}
	wg.Wait()
	final, err := s.Get(ctx(t), "cr")
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results {
		if !bytes.Equal(r.Result.Body, final.Result.Body) || !r.Completed.Equal(final.Completed) {
			t.Fatalf("Complete %d saw result %q at %v, the store kept %q at %v",
				i, r.Result.Body, r.Completed, final.Result.Body, final.Completed)
		}
	}
}

func testConcurrent(t *testing.T, s journal.Store) {
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				k := fmt.Sprintf("w%d-%d", w, i)
				if _, err := s.Append(context.Background(), entry(k, base)); err != nil {
					t.Errorf("Append(%s): %v", k, err)
					return
				}
				if i%2 == 0 {
					if _, err := s.Complete(context.Background(), k, journal.Result{Status: 200}, base); err != nil {
						t.Errorf("Complete(%s): %v", k, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	all, err := s.List(ctx(t), journal.Filter{Limit: journal.MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != writers*each {
		t.Fatalf("%d entries, want %d", len(all), writers*each)
	}
	seen := map[int64]bool{}
	for i, e := range all {
		if seen[e.Seq] || (i > 0 && e.Seq <= all[i-1].Seq) {
			t.Fatalf("Seq %d repeated or out of order", e.Seq)
		}
		seen[e.Seq] = true
	}
	c, err := s.Counts(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if done := writers * ((each + 1) / 2); c.Done[journal.KindStandIn] != done || c.Pending[journal.KindStandIn] != writers*each-done {
		t.Fatalf("counts %+v, want %d done", c, done)
	}
}

func testCanceledContext(t *testing.T, s journal.Store) {
	c, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Append(c, entry("late", base)); err == nil {
		t.Error("Append with a canceled context succeeded")
	}
	if _, err := s.Get(c, "late"); err == nil || errors.Is(err, journal.ErrNotFound) {
		t.Errorf("Get with a canceled context: err = %v, want the context's error", err)
	}
	if _, err := s.List(c, journal.Filter{Limit: 1}); err == nil {
		t.Error("List with a canceled context succeeded")
	}
	if _, err := s.Claim(c, journal.Filter{Limit: 1}, lease("a", 0)); err == nil {
		t.Error("Claim with a canceled context succeeded")
	}
}

func testClosed(t *testing.T, s journal.Store) {
	mustAppend(t, s, entry("before", base))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Append(ctx(t), entry("after", base)); !errors.Is(err, journal.ErrClosed) {
		t.Errorf("Append after Close: err = %v, want ErrClosed", err)
	}
	if _, err := s.Get(ctx(t), "before"); !errors.Is(err, journal.ErrClosed) {
		t.Errorf("Get after Close: err = %v, want ErrClosed", err)
	}
	if _, err := s.Claim(ctx(t), journal.Filter{Limit: 1}, lease("a", 0)); !errors.Is(err, journal.ErrClosed) {
		t.Errorf("Claim after Close: err = %v, want ErrClosed", err)
	}
}

// testLargestBodies: sealing adds bytes, and a field at the limit must still
// be kept whole.
func testLargestBodies(t *testing.T, s journal.Store) {
	e := entry("big", base)
	e.Request.Body = bytes.Repeat([]byte("4971111111111110,"), journal.MaxBodyLen/17)
	e.Decision = bytes.Repeat([]byte{0xff}, journal.MaxBodyLen)
	mustAppend(t, s, e)
	res := journal.Result{Status: 200, Body: bytes.Repeat([]byte{'r'}, journal.MaxBodyLen)}
	if _, err := s.Complete(ctx(t), "big", res, base); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx(t), "big")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Request.Body, e.Request.Body) || !bytes.Equal(got.Decision, e.Decision) ||
		!bytes.Equal(got.Result.Body, res.Body) {
		t.Fatalf("bodies at the size limit not kept whole: lengths %d %d %d",
			len(got.Request.Body), len(got.Decision), len(got.Result.Body))
	}
}

func testPurge(t *testing.T, s journal.Store) {
	mustAppend(t, s, entry("old-pending", base)) // never purged: still owed to the core
	mustAppend(t, s, entry("replayed", base))
	if _, err := s.Complete(ctx(t), "replayed", journal.Result{Status: 200}, base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	declined := entry("declined", base)
	declined.State, declined.Completed = journal.Done, base.Add(2*time.Hour)
	mustAppend(t, s, declined)
	late := entry("late", base)
	late.State, late.Completed = journal.Done, base.Add(3*time.Hour)
	mustAppend(t, s, late)

	for _, step := range []struct {
		before time.Time
		purged int
		left   string
	}{
		{base, 0, "old-pending replayed declined late"},
		// Strictly before: an entry completed at the instant stays.
		{base.Add(2 * time.Hour), 1, "old-pending declined late"},
		{base.Add(2*time.Hour + 1), 1, "old-pending late"},
		{base.Add(100 * time.Hour), 1, "old-pending"},
		{base.Add(100 * time.Hour), 0, "old-pending"},
	} {
		n, err := s.Purge(ctx(t), step.before)
		if err != nil {
			t.Fatalf("Purge(%v): %v", step.before, err)
		}
		all, err := s.List(ctx(t), journal.Filter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if n != step.purged || strings.Join(keys(all), " ") != step.left {
			t.Fatalf("Purge(%v) = %d leaving %v, want %d leaving %s", step.before, n, keys(all), step.purged, step.left)
		}
	}
	if _, err := s.Get(ctx(t), "replayed"); !errors.Is(err, journal.ErrNotFound) {
		t.Fatalf("Get of a purged entry: err = %v, want ErrNotFound", err)
	}
	c, err := s.Counts(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.Pending[journal.KindStandIn] != 1 || c.Done[journal.KindStandIn] != 0 {
		t.Fatalf("counts after purge %+v, want one pending", c)
	}
	// A purged key is free again: the journal no longer knows it.
	again := mustAppend(t, s, entry("replayed", base.Add(200*time.Hour)))
	if again.State != journal.Pending {
		t.Fatalf("re-appended entry %+v, want pending", again)
	}
	if _, err := s.Purge(ctx(t), time.Time{}); !errors.Is(err, journal.ErrInvalid) {
		t.Fatalf("Purge without a time: err = %v, want ErrInvalid", err)
	}
}

// testPurgeMany purges more entries than a backend deletes in one batch
// (both delete 1000 at a time).
func testPurgeMany(t *testing.T, s journal.Store) {
	const n, writers = 1001, 32
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				e := entry(fmt.Sprintf("m-%d", i), base)
				e.State, e.Completed = journal.Done, base
				if _, err := s.Append(context.Background(), e); err != nil {
					t.Errorf("Append: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	mustAppend(t, s, entry("keep", base))
	got, err := s.Purge(ctx(t), base.Add(time.Second))
	if err != nil || got != n {
		t.Fatalf("Purge = %d, %v; want %d", got, err, n)
	}
	all, err := s.List(ctx(t), journal.Filter{Limit: journal.MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(keys(all), " ") != "keep" {
		t.Fatalf("left after purge: %d entries, want only keep", len(all))
	}
}
