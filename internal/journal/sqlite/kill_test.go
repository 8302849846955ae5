//go:build unix

package sqlite_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/journal"
	"github.com/rempart/rempart/internal/journal/sqlite"
)

// killEnv, when set, turns TestSIGKILLLosesNothing into the writer it kills;
// the value is the journal file.
const killEnv = "REMPART_JOURNAL_KILL_WRITER"

// TestSIGKILLLosesNothing runs a writer process that appends and completes
// entries from several goroutines, printing each as soon as the store
// acknowledges it, kills it with SIGKILL mid-stream, and checks that the
// reopened journal holds every acknowledged append and completion.
func TestSIGKILLLosesNothing(t *testing.T) {
	if path := os.Getenv(killEnv); path != "" {
		killWriter(path)
		return
	}
	path := filepath.Join(t.TempDir(), "journal.db")
	appended, completed := map[string]bool{}, map[string]bool{}
	for round := range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSIGKILLLosesNothing$", "-test.count=1")
		cmd.Env = append(os.Environ(), killEnv+"="+path)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(out)
		acks, killed := 0, false
		deadline := time.Now().Add(10 * time.Second)
		for lines.Scan() {
			f := strings.Fields(lines.Text())
			if len(f) != 2 {
				continue
			}
			switch f[0] {
			case "A":
				appended[f[1]] = true
			case "C":
				completed[f[1]] = true
			default:
				continue
			}
			acks++
			if !killed && (acks >= 300+200*round || time.Now().After(deadline)) {
				// What it printed before dying was acknowledged too, so keep
				// reading to EOF.
				cmd.Process.Kill()
				killed = true
			}
		}
		err = cmd.Wait()
		if !killed {
			t.Fatalf("round %d: writer stopped on its own: %v", round, err)
		}
	}

	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer s.Close()
	for k := range appended {
		e, err := s.Get(t.Context(), k)
		if err != nil {
			t.Fatalf("acknowledged append %s lost: %v", k, err)
		}
		if completed[k] && (e.State != journal.Done || e.Result.Status != 200) {
			t.Fatalf("acknowledged completion of %s lost: %+v", k, e)
		}
	}
	t.Logf("%d appends and %d completions acknowledged before the kills, all present", len(appended), len(completed))
}

// killWriter appends entries until it is killed, printing "A key" once an
// append is acknowledged and "C key" once its completion is.
func killWriter(path string) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "writer:", err)
		os.Exit(2)
	}
	var (
		mu sync.Mutex
		w  = bufio.NewWriter(os.Stdout)
	)
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, format+"\n", args...)
		w.Flush()
	}
	pid := os.Getpid()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				k := fmt.Sprintf("p%d-g%d-%d", pid, g, i)
				e := journal.Entry{Key: k, Kind: journal.KindStandIn, Upstream: "estate",
					Request: journal.Request{Method: "POST", Path: "/v1/cards/authorize", Body: []byte(`{}`)},
					Created: time.Now()}
				if _, err := s.Append(ctx, e); err != nil && !errors.Is(err, journal.ErrAlreadyExists) {
					fmt.Fprintln(os.Stderr, "writer:", err)
					os.Exit(2)
				}
				say("A %s", k)
				if i%3 == 0 {
					if _, err := s.Complete(ctx, k, journal.Result{Status: 200}, time.Now()); err != nil {
						fmt.Fprintln(os.Stderr, "writer:", err)
						os.Exit(2)
					}
					say("C %s", k)
				}
			}
		})
	}
	wg.Wait()
}
