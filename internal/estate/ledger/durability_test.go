package ledger_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/rempart/rempart/internal/estate/ledger"
)

const killHelperEnv = "REMPART_LEDGER_KILL_HELPER"

// TestSurvivesKill applies transfers in a child process, SIGKILLs it in full
// flight and checks that every transfer it acknowledged is in the ledger,
// once, with the books balanced: the promise of Options.Sync "normal".
func TestSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	path := dbPath(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillHelper$")
	cmd.Env = append(os.Environ(), killHelperEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(acked) < 300 {
		if key, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
			acked = append(acked, key)
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if len(acked) < 300 {
		t.Fatalf("child acknowledged only %d transfers before stopping", len(acked))
	}

	l := open(t, path, richSource{})
	rep := mustCheck(t, l, acked...)
	if !rep.OK {
		t.Fatalf("after SIGKILL: %+v", rep)
	}
	t.Logf("child killed after %d acknowledged transfers; ledger holds %d", len(acked), rep.Transfers)
}

// TestKillHelper is the child process of TestSurvivesKill: it applies
// transfers from several goroutines until killed, printing each key once
// Apply has returned.
func TestKillHelper(t *testing.T) {
	path := os.Getenv(killHelperEnv)
	if path == "" {
		t.Skip("helper process for TestSurvivesKill")
	}
	l, err := ledger.Open(context.Background(), path, richSource{}, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				key := fmt.Sprintf("k%d-%d", w, i)
				if _, err := l.Apply(context.Background(), ledger.Transfer{
					Key: key, From: fmt.Sprint("A", i%10), To: fmt.Sprint("A", w+10), Amount: 1, Kind: ledger.KindInstant,
				}); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "acked %s\n", key)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
