package users

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestApply: each event counts once whatever order and however often it
// arrives; the latest login by its own time is the last; devices are kept
// most recent first, at most maxDevices; bad events change nothing.
func TestApply(t *testing.T) {
	ctx := context.Background()
	m, err := NewMemory(Options{Params: Fast, Derived: 10})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	login := func(id string, at time.Duration, device string) Event {
		return Event{ID: id, Kind: EventLogin, Account: "C00000003", At: t0.Add(at), Method: "m-" + id, Device: device}
	}
	for _, tc := range []struct {
		e       Event
		applied bool
		err     error
	}{
		{login("late", time.Hour, "phone"), true, nil},
		{login("early", time.Minute, "tablet"), true, nil},
		{login("late", time.Hour, "phone"), false, nil}, // again: once
		{Event{ID: "pw", Kind: EventPasswordFailed, Account: "C00000003", At: t0}, true, nil},
		{Event{ID: "code", Kind: EventCodeFailed, Account: "C00000003", At: t0}, true, nil},
		{Event{ID: "x", Kind: EventLogin, Account: "C00000099", At: t0}, false, ErrNotFound},
		{Event{ID: "x", Kind: "unblock", Account: "C00000003", At: t0}, false, ErrInvalidEvent},
		{Event{ID: "", Kind: EventLogin, Account: "C00000003", At: t0}, false, ErrInvalidEvent},
		{Event{ID: "x", Kind: EventLogin, Account: "C00000003"}, false, ErrInvalidEvent},
	} {
		applied, err := m.Apply(ctx, tc.e)
		if applied != tc.applied || !errors.Is(err, tc.err) {
			t.Errorf("Apply(%+v) = %v, %v; want %v, %v", tc.e, applied, err, tc.applied, tc.err)
		}
	}
	a, err := m.ActivityOf(ctx, "C00000003")
	if err != nil {
		t.Fatal(err)
	}
	if a.Logins != 2 || a.FailedPasswords != 1 || a.FailedCodes != 1 || a.LastMethod != "m-late" || !a.LastLogin.Equal(t0.Add(time.Hour)) {
		t.Errorf("activity %+v", a)
	}
	if fmt.Sprint(a.Devices) != "[tablet phone]" {
		t.Errorf("devices %v, want the latest applied first", a.Devices)
	}
	for i := range maxDevices + 3 {
		if _, err := m.Apply(ctx, login(fmt.Sprint("d", i), time.Duration(i), fmt.Sprint("dev", i))); err != nil {
			t.Fatal(err)
		}
	}
	if a, _ = m.ActivityOf(ctx, "C00000003"); len(a.Devices) != maxDevices || a.Devices[0] != fmt.Sprint("dev", maxDevices+2) {
		t.Errorf("devices %v: want the %d latest", a.Devices, maxDevices)
	}
}

// TestApplyWaitsWhileStuck: a stuck directory applies nothing until its
// caller gives up.
func TestApplyWaitsWhileStuck(t *testing.T) {
	m, err := NewMemory(Options{Params: Fast})
	if err != nil {
		t.Fatal(err)
	}
	m.SetStuck(true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := m.Apply(ctx, Event{ID: "a", Kind: EventLogin, Account: "alice", At: time.Now()}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Apply on a stuck directory: %v", err)
	}
	m.SetStuck(false)
	if a, _ := m.ActivityOf(context.Background(), "alice"); a.Logins != 0 {
		t.Fatalf("applied while stuck: %+v", a)
	}
}
