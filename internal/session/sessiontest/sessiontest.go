package sessiontest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/session"
)

// Capabilities tells the suite how a backend keeps time and what it was
// configured with, so that one suite fits backends that cannot share a clock
// with the test.
type Capabilities struct {
	// RealTime means the backend expires sessions on a clock the test cannot
	// move (Redis's native TTLs run on the server's clock). The suite then
	// ignores the FakeClock it hands to newStore, builds sessions around
	// time.Now, uses lifetimes of a fraction of a second and sleeps through
	// them; the expiry tests run in parallel so the whole suite still takes
	// only a few seconds.
	RealTime bool
	// MaxPerSubject is the per-subject bound newStore configures; zero means
	// session.DefaultMaxPerSubject.
	MaxPerSubject int
}

// RunTests runs the conformance suite against a backend that reads time
// from the FakeClock it is given. newStore returns an empty store; the suite
// closes it when the subtest ends.
func RunTests(t *testing.T, newStore func(t *testing.T, clk *FakeClock) session.Store) {
	RunTestsWith(t, Capabilities{}, newStore)
}

// RunTestsWith runs the conformance suite against a backend described by caps.
func RunTestsWith(t *testing.T, caps Capabilities, newStore func(t *testing.T, clk *FakeClock) session.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, e *env)
	}{
		{"CreateGet", testCreateGet},
		{"Invalid", testInvalid},
		{"Copies", testCopies},
		{"Delete", testDelete},
		{"Update", testUpdate},
		{"UpdateRefused", testUpdateRefused},
		{"UpdateExpiry", testUpdateExpiry},
		{"UpdateRace", testUpdateRace},
		{"Expiry", testExpiry},
		{"IdleTimeout", testIdleTimeout},
		{"TouchNotPastExpiry", testTouchNotPastExpiry},
		{"LiveOnly", testLiveOnly},
		{"PerSubjectBound", testPerSubjectBound},
		{"ListSubjectOrder", testListSubjectOrder},
		{"DeleteSubject", testDeleteSubject},
		{"SameIDRace", testSameIDRace},
		{"SubjectRace", testSubjectRace},
		{"Concurrent", testConcurrent},
		{"Many", testMany},
		{"CanceledContext", testCanceledContext},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Every subtest has its own store and clock, so they can overlap;
			// that matters most for RealTime backends, which sleep.
			t.Parallel()
			e := &env{
				t:    t,
				real: caps.RealTime,
				max:  caps.MaxPerSubject,
				unit: time.Minute,
				clk:  NewFakeClock(time.Date(2025, time.December, 18, 7, 0, 0, 0, time.UTC)),
			}
			if e.max == 0 {
				e.max = session.DefaultMaxPerSubject
			}
			if e.real {
				// Each liveness check has a unit of slack, and checks that
				// come too late skip rather than fail (see inTime); the
				// slowest test sleeps four units.
				e.unit = 500 * time.Millisecond
			}
			e.s = newStore(t, e.clk)
			t.Cleanup(func() {
				if err := e.s.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			tc.run(t, e)
		})
	}
}

// env is one subtest's store and its notion of time.
type env struct {
	t    *testing.T
	s    session.Store
	clk  *FakeClock
	real bool
	unit time.Duration
	max  int
}

func bg() context.Context { return context.Background() }

// long is the lifetime of sessions a test does not expect to expire: far
// beyond any test's duration on either clock, however loaded the machine.
const long = time.Hour

func (e *env) now() time.Time {
	if e.real {
		return time.Now().UTC()
	}
	return e.clk.Now()
}

// wait lets d pass, on whichever clock the backend reads.
func (e *env) wait(d time.Duration) {
	if e.real {
		time.Sleep(d)
		return
	}
	e.clk.Advance(d)
}

// past is how far beyond a deadline the suite waits before expecting a
// session gone: nothing with the fake clock, a little with a real one.
func (e *env) past() time.Duration {
	if e.real {
		return e.unit / 4
	}
	return 0
}

// inTime is called before asserting that a session is still live: with a
// real clock, a machine too loaded to reach the check a quarter unit before
// the session's deadline makes the assertion meaningless, so the test skips
// instead of failing on the machine's account.
func (e *env) inTime(deadline time.Time) {
	e.t.Helper()
	if late := time.Now().Add(e.unit / 4).Sub(deadline); e.real && late > 0 {
		e.t.Skipf("machine too slow for real-time expiry checks: %v behind the margin", late)
	}
}

// newSession returns a session created now that lives for life.
func (e *env) newSession(id, subject string, life time.Duration) session.Session {
	now := e.now()
	return session.Session{ID: id, Subject: subject, CreatedAt: now, ExpiresAt: now.Add(life)}
}

func (e *env) mustCreate(s session.Session) {
	e.t.Helper()
	if err := e.s.Create(bg(), s); err != nil {
		e.t.Fatalf("create %q: %v", s.ID, err)
	}
}

func (e *env) mustGet(id string) session.Session {
	e.t.Helper()
	got, err := e.s.Get(bg(), id)
	if err != nil {
		e.t.Fatalf("get %q: %v", id, err)
	}
	return got
}

func (e *env) mustBeGone(id string) {
	e.t.Helper()
	if got, err := e.s.Get(bg(), id); !errors.Is(err, session.ErrNotFound) {
		e.t.Fatalf("get %q: got %+v, %v; want ErrNotFound", id, got, err)
	}
}

func (e *env) listIDs(subject string) []string {
	e.t.Helper()
	list, err := e.s.ListSubject(bg(), subject)
	if err != nil {
		e.t.Fatalf("list %q: %v", subject, err)
	}
	ids := make([]string, 0, len(list))
	for _, s := range list {
		if s.Subject != subject {
			e.t.Errorf("list %q returned session %q of subject %q", subject, s.ID, s.Subject)
		}
		ids = append(ids, s.ID)
	}
	return ids
}

// diff names the first field where got differs from want, or returns "".
// Instants compare with Equal (backends keep no location or monotonic
// reading); empty and nil AMR and Attrs are the same.
func diff(got, want session.Session) string {
	switch {
	case got.ID != want.ID:
		return fmt.Sprintf("id %q, want %q", got.ID, want.ID)
	case got.Subject != want.Subject:
		return fmt.Sprintf("subject %q, want %q", got.Subject, want.Subject)
	case got.ClientID != want.ClientID:
		return fmt.Sprintf("client id %q, want %q", got.ClientID, want.ClientID)
	case got.DeviceID != want.DeviceID:
		return fmt.Sprintf("device id %q, want %q", got.DeviceID, want.DeviceID)
	case !slices.Equal(got.AMR, want.AMR):
		return fmt.Sprintf("amr %q, want %q", got.AMR, want.AMR)
	case !got.CreatedAt.Equal(want.CreatedAt):
		return fmt.Sprintf("created_at %v, want %v", got.CreatedAt, want.CreatedAt)
	case !got.LastSeen.Equal(want.LastSeen):
		return fmt.Sprintf("last_seen %v, want %v", got.LastSeen, want.LastSeen)
	case !got.ExpiresAt.Equal(want.ExpiresAt):
		return fmt.Sprintf("expires_at %v, want %v", got.ExpiresAt, want.ExpiresAt)
	case got.IdleTimeout != want.IdleTimeout:
		return fmt.Sprintf("idle_timeout %v, want %v", got.IdleTimeout, want.IdleTimeout)
	case !maps.Equal(got.Attrs, want.Attrs):
		return fmt.Sprintf("attrs %v, want %v", got.Attrs, want.Attrs)
	}
	return ""
}

func full(e *env, id string) session.Session {
	s := e.newSession(id, "customer-0042", long)
	s.ClientID = "bank-app"
	s.DeviceID = "dev-7f3a9c"
	s.AMR = []string{"pwd", "otp"}
	s.IdleTimeout = long / 2
	s.LastSeen = s.CreatedAt.Add(time.Millisecond)
	s.Attrs = map[string]string{"acr": "sca", "lang": "fr"}
	return s
}

func testCreateGet(t *testing.T, e *env) {
	want := full(e, "sess-full")
	e.mustCreate(want)
	if d := diff(e.mustGet(want.ID), want); d != "" {
		t.Fatalf("get after create: %s", d)
	}

	bare := e.newSession("sess-bare", "customer-0043", long)
	e.mustCreate(bare)
	got := e.mustGet(bare.ID)
	bare.LastSeen = bare.CreatedAt // zero LastSeen means CreatedAt
	if d := diff(got, bare); d != "" {
		t.Fatalf("get bare session: %s", d)
	}

	dup := e.newSession(want.ID, "someone-else", long)
	if err := e.s.Create(bg(), dup); !errors.Is(err, session.ErrAlreadyExists) {
		t.Fatalf("create duplicate id: got %v, want ErrAlreadyExists", err)
	}
	if d := diff(e.mustGet(want.ID), want); d != "" {
		t.Fatalf("duplicate create changed the session: %s", d)
	}
	e.mustBeGone("sess-missing")
}

func testInvalid(t *testing.T, e *env) {
	valid := e.newSession("sess-valid", "customer-1", long)
	long := make([]byte, session.MaxFieldLen+1)
	for i := range long {
		long[i] = 'x'
	}
	tests := []struct {
		name   string
		mutate func(s *session.Session)
	}{
		{"empty id", func(s *session.Session) { s.ID = "" }},
		{"empty subject", func(s *session.Session) { s.Subject = "" }},
		{"expires at creation", func(s *session.Session) { s.ExpiresAt = s.CreatedAt }},
		{"expires before creation", func(s *session.Session) { s.ExpiresAt = s.CreatedAt.Add(-time.Second) }},
		{"no created_at", func(s *session.Session) { s.CreatedAt = time.Time{} }},
		{"no expires_at", func(s *session.Session) { s.ExpiresAt = time.Time{} }},
		{"negative idle", func(s *session.Session) { s.IdleTimeout = -time.Second }},
		{"id too long", func(s *session.Session) { s.ID = string(long) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := valid
			tc.mutate(&s)
			if err := e.s.Create(bg(), s); !errors.Is(err, session.ErrInvalid) {
				t.Fatalf("create: got %v, want ErrInvalid", err)
			}
		})
	}
	// Nothing invalid was stored on the way.
	if ids := e.listIDs(valid.Subject); len(ids) != 0 {
		t.Fatalf("invalid creates left sessions %q", ids)
	}
}

func testCopies(t *testing.T, e *env) {
	in := full(e, "sess-copies")
	want := full(e, "sess-copies")
	want.CreatedAt, want.ExpiresAt, want.LastSeen = in.CreatedAt, in.ExpiresAt, in.LastSeen
	e.mustCreate(in)
	in.AMR[0] = "changed"
	in.Attrs["acr"] = "changed"

	got := e.mustGet(in.ID)
	if d := diff(got, want); d != "" {
		t.Fatalf("store shares the caller's slices or maps: %s", d)
	}
	got.AMR[0] = "changed"
	got.Attrs["lang"] = "changed"
	if d := diff(e.mustGet(in.ID), want); d != "" {
		t.Fatalf("store hands out its own slices or maps: %s", d)
	}
}

func testDelete(t *testing.T, e *env) {
	s := e.newSession("sess-del", "customer-1", long)
	e.mustCreate(s)
	if err := e.s.Delete(bg(), s.ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	e.mustBeGone(s.ID)
	if err := e.s.Delete(bg(), s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("second delete: got %v, want ErrNotFound", err)
	}
	if _, err := e.s.Touch(bg(), s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("touch deleted: got %v, want ErrNotFound", err)
	}
	if ids := e.listIDs(s.Subject); len(ids) != 0 {
		t.Fatalf("list after delete: %q", ids)
	}
	// The ID is free again.
	e.mustCreate(e.newSession(s.ID, "customer-2", long))
	if ids := e.listIDs("customer-2"); !slices.Equal(ids, []string{s.ID}) {
		t.Fatalf("list after re-create: %q", ids)
	}
}

func testExpiry(t *testing.T, e *env) {
	s := e.newSession("sess-exp", "customer-1", 3*e.unit)
	e.mustCreate(s)
	e.wait(2 * e.unit)
	e.inTime(s.ExpiresAt)
	e.mustGet(s.ID)
	if _, err := e.s.Touch(bg(), s.ID); err != nil {
		t.Fatalf("touch before expiry: %v", err)
	}
	if e.real {
		e.wait(e.unit + e.past())
	} else {
		// The boundary is exact: live until the instant before ExpiresAt.
		e.clk.Set(s.ExpiresAt.Add(-time.Nanosecond))
		e.mustGet(s.ID)
		e.clk.Set(s.ExpiresAt)
	}
	e.mustBeGone(s.ID)
	if _, err := e.s.Touch(bg(), s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("touch expired: got %v, want ErrNotFound", err)
	}
	if err := e.s.Delete(bg(), s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("delete expired: got %v, want ErrNotFound", err)
	}
	if ids := e.listIDs(s.Subject); len(ids) != 0 {
		t.Fatalf("list after expiry: %q", ids)
	}
	// An expired session does not hold its ID.
	e.mustCreate(e.newSession(s.ID, s.Subject, 3*e.unit))
}

func testIdleTimeout(t *testing.T, e *env) {
	s := e.newSession("sess-idle", "customer-1", long)
	s.IdleTimeout = 2 * e.unit
	e.mustCreate(s)

	e.wait(e.unit)
	e.inTime(s.CreatedAt.Add(s.IdleTimeout))
	if got := e.mustGet(s.ID); !got.LastSeen.Equal(s.CreatedAt) {
		t.Fatalf("get moved last_seen to %v", got.LastSeen)
	}
	before := e.now()
	touched, err := e.s.Touch(bg(), s.ID)
	if err != nil {
		t.Fatalf("touch: %v", err)
	}
	after := e.now()
	e.checkLastSeen(touched.LastSeen, before, after)
	if got := e.mustGet(s.ID); !got.LastSeen.Equal(touched.LastSeen) {
		t.Fatalf("get after touch: last_seen %v, touch returned %v", got.LastSeen, touched.LastSeen)
	}

	// Untouched, the session would have idled out by now.
	e.wait(e.unit)
	e.inTime(touched.LastSeen.Add(s.IdleTimeout))
	e.mustGet(s.ID)
	if e.real {
		e.wait(e.unit + e.past())
	} else {
		deadline := touched.LastSeen.Add(s.IdleTimeout)
		e.clk.Set(deadline.Add(-time.Nanosecond))
		e.mustGet(s.ID)
		e.clk.Set(deadline)
	}
	e.mustBeGone(s.ID)
	if _, err := e.s.Touch(bg(), s.ID); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("touch idle session: got %v, want ErrNotFound", err)
	}
}

// checkLastSeen checks a Touch stamped the backend's now: exactly the fake
// clock, or within the real interval (backends may round to microseconds).
func (e *env) checkLastSeen(got, before, after time.Time) {
	e.t.Helper()
	slack := time.Duration(0)
	if e.real {
		slack = e.unit / 4
	}
	if got.Before(before.Add(-slack)) || got.After(after.Add(slack)) {
		e.t.Fatalf("touch set last_seen %v, want within [%v, %v]", got, before, after)
	}
}

func testTouchNotPastExpiry(t *testing.T, e *env) {
	s := e.newSession("sess-cap", "customer-1", 4*e.unit)
	s.IdleTimeout = 3 * e.unit
	e.mustCreate(s)
	e.wait(2 * e.unit)
	e.inTime(s.CreatedAt.Add(s.IdleTimeout))
	touched, err := e.s.Touch(bg(), s.ID)
	if err != nil {
		t.Fatalf("touch: %v", err)
	}
	if touched.LastSeen.After(s.ExpiresAt) {
		t.Fatalf("last_seen %v after expires_at %v", touched.LastSeen, s.ExpiresAt)
	}
	// The idle deadline is now 5 units after creation, but ExpiresAt (4)
	// wins.
	e.wait(2*e.unit + e.past())
	e.mustBeGone(s.ID)
}

func testLiveOnly(t *testing.T, e *env) {
	// Distinct CreatedAt keep the order unambiguous; the dead ones are
	// backdated so that they are surely gone one unit from now.
	short := e.newSession("sess-short", "customer-1", e.unit)
	short.CreatedAt = short.CreatedAt.Add(-2 * time.Millisecond)
	idle := e.newSession("sess-idle", "customer-1", long)
	idle.CreatedAt = idle.CreatedAt.Add(-time.Millisecond)
	idle.IdleTimeout = e.unit
	kept := e.newSession("sess-long", "customer-1", long)
	for _, s := range []session.Session{short, idle, kept} {
		e.mustCreate(s)
	}
	if ids := e.listIDs("customer-1"); !slices.Equal(ids, []string{"sess-short", "sess-idle", "sess-long"}) {
		t.Fatalf("list before expiry: %q", ids)
	}
	e.wait(e.unit + e.past())
	if ids := e.listIDs("customer-1"); !slices.Equal(ids, []string{"sess-long"}) {
		t.Fatalf("list after expiry: %q, want only the live session", ids)
	}
	n, err := e.s.DeleteSubject(bg(), "customer-1")
	if err != nil || n != 1 {
		t.Fatalf("delete subject: %d, %v; want 1 live session removed", n, err)
	}
	// Dead sessions count against nobody's bound.
	for i := range e.max {
		s := e.newSession(fmt.Sprintf("sess-new-%d", i), "customer-1", long)
		s.CreatedAt = s.CreatedAt.Add(time.Duration(i) * time.Millisecond)
		e.mustCreate(s)
	}
	if ids := e.listIDs("customer-1"); len(ids) != e.max {
		t.Fatalf("list after refill: %d sessions, want %d", len(ids), e.max)
	}
}

func testPerSubjectBound(t *testing.T, e *env) {
	base := e.now()
	var ids []string
	for i := range e.max + 3 {
		s := e.newSession(fmt.Sprintf("alice-%02d", i), "alice", long)
		s.CreatedAt = base.Add(time.Duration(i) * time.Millisecond)
		e.mustCreate(s)
		ids = append(ids, s.ID)
	}
	for _, s := range []string{"bob-1", "bob-2"} {
		e.mustCreate(e.newSession(s, "bob", long))
	}
	if got := e.listIDs("alice"); !slices.Equal(got, ids[3:]) {
		t.Fatalf("alice's sessions %q, want the newest %d %q", got, e.max, ids[3:])
	}
	for _, id := range ids[:3] {
		e.mustBeGone(id)
	}
	if got := e.listIDs("bob"); len(got) != 2 {
		t.Fatalf("bob's sessions %q: another subject's bound evicted them", got)
	}

	// A new session is never its own victim, even if it claims to be older
	// than the others: the oldest of the others goes.
	old := e.newSession("alice-backdated", "alice", long)
	old.CreatedAt = base.Add(-time.Second)
	e.mustCreate(old)
	want := append([]string{old.ID}, ids[4:]...)
	if got := e.listIDs("alice"); !slices.Equal(got, want) {
		t.Fatalf("after backdated create: %q, want %q", got, want)
	}
	e.mustBeGone(ids[3])
}

func testListSubjectOrder(t *testing.T, e *env) {
	base := e.now()
	// Created out of order: the list follows CreatedAt, not arrival.
	for _, c := range []struct {
		id  string
		ago time.Duration
	}{{"b", 2 * time.Second}, {"c", time.Second}, {"a", 3 * time.Second}} {
		s := e.newSession(c.id, "carol", long)
		s.CreatedAt = base.Add(-c.ago)
		e.mustCreate(s)
	}
	if got := e.listIDs("carol"); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("list %q, want oldest first [a b c]", got)
	}
	list, err := e.s.ListSubject(bg(), "nobody")
	if err != nil || len(list) != 0 {
		t.Fatalf("list unknown subject: %v, %v; want empty and no error", list, err)
	}
}

func testDeleteSubject(t *testing.T, e *env) {
	for i := range 3 {
		s := e.newSession(fmt.Sprintf("dave-%d", i), "dave", long)
		s.CreatedAt = s.CreatedAt.Add(time.Duration(i) * time.Millisecond)
		e.mustCreate(s)
	}
	e.mustCreate(e.newSession("erin-1", "erin", long))
	n, err := e.s.DeleteSubject(bg(), "dave")
	if err != nil || n != 3 {
		t.Fatalf("delete subject: %d, %v; want 3", n, err)
	}
	for i := range 3 {
		e.mustBeGone(fmt.Sprintf("dave-%d", i))
	}
	if ids := e.listIDs("dave"); len(ids) != 0 {
		t.Fatalf("list after delete subject: %q", ids)
	}
	e.mustGet("erin-1")
	for _, sub := range []string{"dave", "nobody"} {
		if n, err := e.s.DeleteSubject(bg(), sub); err != nil || n != 0 {
			t.Fatalf("delete subject %q again: %d, %v; want 0", sub, n, err)
		}
	}
	// A session ID that moved to another subject is not that subject's to delete.
	e.mustCreate(e.newSession("moving", "frank", e.unit))
	e.wait(e.unit + e.past())
	e.mustCreate(e.newSession("moving", "grace", long))
	if n, err := e.s.DeleteSubject(bg(), "frank"); err != nil || n != 0 {
		t.Fatalf("delete frank: %d, %v; want 0", n, err)
	}
	if got := e.mustGet("moving"); got.Subject != "grace" {
		t.Fatalf("moving belongs to %q", got.Subject)
	}
}

func testSameIDRace(t *testing.T, e *env) {
	const n = 32
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			errs[i] = e.s.Create(bg(), e.newSession("contested", fmt.Sprintf("racer-%d", i), long))
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, session.ErrAlreadyExists):
			t.Fatalf("racing create: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d racing creates of one id succeeded, want exactly 1", won)
	}
	got := e.mustGet("contested")
	if ids := e.listIDs(got.Subject); !slices.Equal(ids, []string{"contested"}) {
		t.Fatalf("winner %q lists %q", got.Subject, ids)
	}
}

func testSubjectRace(t *testing.T, e *env) {
	n := 4 * e.max
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := e.s.Create(bg(), e.newSession(fmt.Sprintf("hana-%d", i), "hana", long)); err != nil {
				t.Errorf("create: %v", err)
			}
		})
	}
	wg.Wait()
	ids := e.listIDs("hana")
	if len(ids) != e.max {
		t.Fatalf("%d concurrent creates left %d sessions, want the bound %d", n, len(ids), e.max)
	}
	for _, id := range ids {
		e.mustGet(id)
	}
}

func testConcurrent(t *testing.T, e *env) {
	const workers, perWorker = 16, 40
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			subject := fmt.Sprintf("worker-%d", w)
			for i := range perWorker {
				s := e.newSession(fmt.Sprintf("w%d-%d", w, i), subject, long)
				s.CreatedAt = s.CreatedAt.Add(time.Duration(i) * time.Millisecond)
				s.IdleTimeout = long / 2
				if err := e.s.Create(bg(), s); err != nil {
					t.Errorf("create: %v", err)
					return
				}
				if _, err := e.s.Get(bg(), s.ID); err != nil {
					t.Errorf("get own fresh session: %v", err)
					return
				}
				if _, err := e.s.Touch(bg(), s.ID); err != nil {
					t.Errorf("touch: %v", err)
					return
				}
				if i%3 == 0 {
					if err := e.s.Delete(bg(), s.ID); err != nil {
						t.Errorf("delete: %v", err)
						return
					}
				}
				// Read another worker's subject while it changes.
				if _, err := e.s.ListSubject(bg(), fmt.Sprintf("worker-%d", (w+1)%workers)); err != nil {
					t.Errorf("list: %v", err)
					return
				}
				if _, err := e.s.Get(bg(), fmt.Sprintf("w%d-%d", (w+1)%workers, i)); err != nil && !errors.Is(err, session.ErrNotFound) {
					t.Errorf("get other: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for w := range workers {
		// Replay the worker's script on a model of the bound: evict the
		// oldest when full, then add; deleted ones leave at once.
		var want []string
		for i := range perWorker {
			if len(want) >= e.max {
				want = want[1:]
			}
			want = append(want, fmt.Sprintf("w%d-%d", w, i))
			if i%3 == 0 {
				want = want[:len(want)-1]
			}
		}
		if ids := e.listIDs(fmt.Sprintf("worker-%d", w)); !slices.Equal(ids, want) {
			t.Fatalf("worker %d left %q, want %q", w, ids, want)
		}
	}
}

func testMany(t *testing.T, e *env) {
	n := 5000
	if e.real {
		n = 1000 // a network round trip each, under -race
	}
	subjects := n / 3
	// Eight writers: a durable backend that waits for the disk one caller
	// at a time would take seconds here.
	const writers = 8
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < n; i += writers {
				s := e.newSession(fmt.Sprintf("many-%05d", i), fmt.Sprintf("sub-%05d", i%subjects), long)
				s.CreatedAt = s.CreatedAt.Add(time.Duration(i) * time.Microsecond)
				if err := e.s.Create(bg(), s); err != nil {
					t.Errorf("create: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i := range n {
		got := e.mustGet(fmt.Sprintf("many-%05d", i))
		if want := fmt.Sprintf("sub-%05d", i%subjects); got.Subject != want {
			t.Fatalf("session %d has subject %q, want %q", i, got.Subject, want)
		}
	}
	total := 0
	for i := range subjects {
		total += len(e.listIDs(fmt.Sprintf("sub-%05d", i)))
	}
	if total != n {
		t.Fatalf("subjects list %d sessions, want %d", total, n)
	}
}

func testCanceledContext(t *testing.T, e *env) {
	ctx, cancel := context.WithCancel(bg())
	cancel()
	s := e.newSession("sess-ctx", "customer-1", long)
	if err := e.s.Create(ctx, s); !errors.Is(err, context.Canceled) {
		t.Fatalf("create with canceled context: got %v, want context.Canceled", err)
	}
	e.mustCreate(s)
	if _, err := e.s.Get(ctx, s.ID); !errors.Is(err, context.Canceled) {
		t.Fatalf("get with canceled context: got %v, want context.Canceled", err)
	}
}

func testUpdate(t *testing.T, e *env) {
	want := full(e, "sess-upd")
	e.mustCreate(want)
	touched, err := e.s.Touch(bg(), want.ID)
	if err != nil {
		t.Fatalf("touch: %v", err)
	}
	want.LastSeen = touched.LastSeen
	got, err := e.s.Update(bg(), want.ID, func(s *session.Session) error {
		if d := diff(*s, want); d != "" {
			t.Errorf("update reads %s", d)
		}
		s.Attrs["lang"] = "en"
		delete(s.Attrs, "acr")
		s.ExpiresAt = s.ExpiresAt.Add(time.Hour)
		return nil
	})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	want.Attrs = map[string]string{"lang": "en"}
	want.ExpiresAt = want.ExpiresAt.Add(time.Hour)
	if d := diff(got, want); d != "" {
		t.Fatalf("update returned %s", d)
	}
	if d := diff(e.mustGet(want.ID), want); d != "" {
		t.Fatalf("get after update: %s", d)
	}
	// Touch after an update keeps the update, and the update kept LastSeen.
	touched, err = e.s.Touch(bg(), want.ID)
	if err != nil {
		t.Fatalf("touch after update: %v", err)
	}
	if !maps.Equal(touched.Attrs, want.Attrs) {
		t.Fatalf("touch after update: attrs %v, want %v", touched.Attrs, want.Attrs)
	}
	// Emptying the attributes is an update too.
	if _, err := e.s.Update(bg(), want.ID, func(s *session.Session) error { s.Attrs = nil; return nil }); err != nil {
		t.Fatalf("clear attrs: %v", err)
	}
	if got := e.mustGet(want.ID); len(got.Attrs) != 0 {
		t.Fatalf("attrs after clearing: %v", got.Attrs)
	}
	if ids := e.listIDs(want.Subject); !slices.Equal(ids, []string{want.ID}) {
		t.Fatalf("list after update: %q", ids)
	}
}

func testUpdateRefused(t *testing.T, e *env) {
	base := full(e, "sess-keep")
	e.mustCreate(base)
	base = e.mustGet(base.ID)
	boom := errors.New("boom")
	cases := []struct {
		name string
		f    func(*session.Session) error
		want error
	}{
		{"f fails", func(s *session.Session) error { s.Attrs["x"] = "y"; return boom }, boom},
		{"subject", func(s *session.Session) error { s.Subject = "other"; return nil }, session.ErrInvalid},
		{"id", func(s *session.Session) error { s.ID = "other"; return nil }, session.ErrInvalid},
		{"client", func(s *session.Session) error { s.ClientID = "other"; return nil }, session.ErrInvalid},
		{"device", func(s *session.Session) error { s.DeviceID = "other"; return nil }, session.ErrInvalid},
		{"amr", func(s *session.Session) error { s.AMR = append(s.AMR, "hwk"); return nil }, session.ErrInvalid},
		{"created", func(s *session.Session) error { s.CreatedAt = s.CreatedAt.Add(-time.Second); return nil }, session.ErrInvalid},
		{"idle", func(s *session.Session) error { s.IdleTimeout++; return nil }, session.ErrInvalid},
		{"expiry before creation", func(s *session.Session) error { s.ExpiresAt = s.CreatedAt; return nil }, session.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.s.Update(bg(), base.ID, tc.f); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if d := diff(e.mustGet(base.ID), base); d != "" {
				t.Fatalf("refused update changed the session: %s", d)
			}
		})
	}
	called := false
	if _, err := e.s.Update(bg(), "sess-missing", func(*session.Session) error { called = true; return nil }); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("update missing: got %v, want ErrNotFound", err)
	}
	if called {
		t.Fatal("update called f for a missing session")
	}
	ctx, cancel := context.WithCancel(bg())
	cancel()
	if _, err := e.s.Update(ctx, base.ID, func(*session.Session) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("update with canceled context: got %v, want context.Canceled", err)
	}
}

// testUpdateExpiry moves one session's expiry later and another's earlier:
// the backend expires each at its new instant.
func testUpdateExpiry(t *testing.T, e *env) {
	later := e.newSession("sess-later", "customer-1", 2*e.unit)
	sooner := e.newSession("sess-sooner", "customer-2", long)
	e.mustCreate(later)
	e.mustCreate(sooner)
	if _, err := e.s.Update(bg(), later.ID, func(s *session.Session) error {
		s.ExpiresAt = s.CreatedAt.Add(4 * e.unit)
		return nil
	}); err != nil {
		t.Fatalf("update later: %v", err)
	}
	if _, err := e.s.Update(bg(), sooner.ID, func(s *session.Session) error {
		s.ExpiresAt = s.CreatedAt.Add(2 * e.unit)
		return nil
	}); err != nil {
		t.Fatalf("update sooner: %v", err)
	}
	e.wait(2*e.unit + e.past())
	e.mustBeGone(sooner.ID)
	e.inTime(later.CreatedAt.Add(4 * e.unit))
	e.mustGet(later.ID)
	if ids := e.listIDs(later.Subject); !slices.Equal(ids, []string{later.ID}) {
		t.Fatalf("list of the extended session: %q", ids)
	}
	e.wait(2*e.unit + e.past())
	e.mustBeGone(later.ID)
	if _, err := e.s.Update(bg(), later.ID, func(*session.Session) error { return nil }); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("update expired: got %v, want ErrNotFound", err)
	}
}

// testUpdateRace counts in an attribute from several goroutines at once:
// an Update that read a stale count and wrote over a newer one would lose
// an increment.
func testUpdateRace(t *testing.T, e *env) {
	const workers, perWorker = 4, 25
	s := e.newSession("sess-count", "customer-1", long)
	e.mustCreate(s)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range perWorker {
				_, err := e.s.Update(bg(), s.ID, func(s *session.Session) error {
					n, _ := strconv.Atoi(s.Attrs["n"])
					if s.Attrs == nil {
						s.Attrs = map[string]string{}
					}
					s.Attrs["n"] = strconv.Itoa(n + 1)
					return nil
				})
				if err != nil {
					t.Errorf("update: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := e.mustGet(s.ID).Attrs["n"]; got != strconv.Itoa(workers*perWorker) {
		t.Fatalf("count %s after %d increments", got, workers*perWorker)
	}
}
