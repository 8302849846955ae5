//go:build unix

package memory

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/session"
)

// killEnv, when set in the environment, turns TestSIGKILLLosesNothing into
// the writer it kills: the value is "<dir> <round>".
const killEnv = "REMPART_SESSION_KILL_WRITER"

// TestSIGKILLLosesNothing runs a writer process that creates and deletes
// sessions from several goroutines, printing each one as soon as the store
// acknowledges it, kills it with SIGKILL at an arbitrary moment, and checks
// that a store reopened on the directory has every acknowledged Create and
// none of the acknowledged Deletes. It does so over several rounds on one
// directory, so recovery from a kill is itself killed, and with a tiny
// snapshot threshold, so kills land during snapshots too.
func TestSIGKILLLosesNothing(t *testing.T) {
	if arg := os.Getenv(killEnv); arg != "" {
		killWriter(t, arg)
		return
	}
	t.Parallel()
	dir := t.TempDir()
	created := map[string]string{} // acknowledged id -> subject
	deleting := map[string]bool{}  // delete started, outcome unknown
	deleted := map[string]bool{}   // delete acknowledged
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSIGKILLLosesNothing$", "-test.count=1")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", killEnv, dir, round))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(out)
		acks, killAt := 0, 1500+700*round
		deadline := time.Now().Add(10 * time.Second)
		killed := false
		for lines.Scan() {
			f := strings.Fields(lines.Text())
			if len(f) < 2 || (f[0] == "C" && len(f) < 3) {
				continue
			}
			switch f[0] {
			case "C":
				created[f[1]] = f[2]
				acks++
			case "X":
				deleting[f[1]] = true
			case "D":
				deleted[f[1]] = true
				acks++
			}
			if !killed && (acks >= killAt || time.Now().After(deadline)) {
				// Kill mid-stream; what it printed before dying was
				// acknowledged too, so keep reading to EOF.
				cmd.Process.Kill()
				killed = true
			}
		}
		if !killed {
			t.Fatalf("round %d: writer stopped on its own: %v", round, cmd.Wait())
		}
		cmd.Wait()
		if acks < 100 {
			t.Fatalf("round %d: only %d acknowledgements before the kill", round, acks)
		}
	}

	if snaps, _ := filepath.Glob(filepath.Join(dir, "snapshot-*")); len(snaps) == 0 {
		t.Fatal("no snapshot was taken: the kills did not exercise log rotation")
	}
	s := mustOpen(t, Options{Dir: dir, PruneEvery: -1})
	defer s.Close()
	lost, resurrected := 0, 0
	for id, subject := range created {
		got, err := s.Get(ctx, id)
		switch {
		case deleted[id]:
			if !errors.Is(err, session.ErrNotFound) {
				resurrected++
			}
		case deleting[id]:
			// Either outcome is correct: the delete was never acknowledged.
		case err != nil:
			lost++
			if lost < 5 {
				t.Errorf("acknowledged session %s lost: %v", id, err)
			}
		case got.Subject != subject:
			t.Errorf("session %s came back as %q's, want %q's", id, got.Subject, subject)
		}
	}
	if lost > 0 || resurrected > 0 {
		t.Fatalf("%d of %d acknowledged creates lost, %d acknowledged deletes undone", lost, len(created), resurrected)
	}
	t.Logf("%d acknowledged creates and %d deletes survived 3 SIGKILLs", len(created), len(deleted))
}

// killWriter is the child: it writes until killed.
func killWriter(t *testing.T, arg string) {
	var dir string
	var round int
	if _, err := fmt.Sscan(arg, &dir, &round); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, Options{
		Dir:           dir,
		PruneEvery:    2 * time.Millisecond,
		SnapshotAfter: 16 << 10,
		MaxPerSubject: 1 << 30, // evictions would be deletes nobody acknowledged
	})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex // one line per write, whole
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				now := time.Now()
				id := fmt.Sprintf("r%d-g%d-%d", round, g, i)
				subject := fmt.Sprintf("c%d", i%97)
				err := s.Create(ctx, session.Session{
					ID: id, Subject: subject, CreatedAt: now, ExpiresAt: now.Add(time.Hour),
					AMR: []string{"pwd", "otp"}, IdleTimeout: 30 * time.Minute,
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, "create:", err)
					os.Exit(3)
				}
				say("C %s %s", id, subject)
				if i%4 == 0 {
					s.Touch(ctx, id)
				}
				if i%5 == 0 {
					say("X %s", id)
					if err := s.Delete(ctx, id); err != nil {
						fmt.Fprintln(os.Stderr, "delete:", err)
						os.Exit(3)
					}
					say("D %s", id)
				}
			}
		})
	}
	wg.Wait()
}
