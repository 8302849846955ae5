package drill

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestSumTree(t *testing.T) {
	// 1: init; 10: an nginx master with workers 11 and 12, 12 with a child
	// of its own; 20: a backend; 30: someone else's process.
	table := map[int]procStat{
		1:  {ppid: 0, ticks: 1000, pages: 1000},
		10: {ppid: 1, ticks: 5, dead: 7, pages: 100},
		11: {ppid: 10, ticks: 40, pages: 300},
		12: {ppid: 10, ticks: 30, pages: 300},
		13: {ppid: 12, ticks: 1, pages: 2},
		20: {ppid: 1, ticks: 200, pages: 5000},
		30: {ppid: 1, ticks: 9999, pages: 9999},
	}
	for _, tc := range []struct {
		name         string
		pids         []int
		ticks, pages int64
		err          bool
	}{
		{name: "one process", pids: []int{20}, ticks: 200, pages: 5000},
		{name: "master, workers and reaped children", pids: []int{10}, ticks: 5 + 7 + 40 + 30 + 1, pages: 100 + 300 + 300 + 2},
		{name: "two trees", pids: []int{10, 20}, ticks: 83 + 200, pages: 702 + 5000},
		{name: "a pid and its descendant count once", pids: []int{10, 12}, ticks: 83, pages: 702},
		{name: "a leaf", pids: []int{13}, ticks: 1, pages: 2},
		{name: "gone", pids: []int{20, 40}, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ticks, pages, err := sumTree(table, tc.pids)
			if tc.err {
				if err == nil {
					t.Fatalf("no error, %d ticks", ticks)
				}
				return
			}
			if err != nil || ticks != tc.ticks || pages != tc.pages {
				t.Errorf("got %d ticks, %d pages, %v; want %d, %d", ticks, pages, err, tc.ticks, tc.pages)
			}
		})
	}
}

// TestProcUsage reads real processes: this one, and a shell whose child
// it must count.
func TestProcUsage(t *testing.T) {
	self, err := ProcUsage(nil)
	if err != nil || self.RSS <= 0 {
		t.Fatalf("own process: %+v, %v", self, err)
	}
	if _, err := ProcUsage([]int{os.Getpid()}); err != nil {
		t.Fatalf("by pid: %v", err)
	}
	sh := exec.Command("sh", "-c", "sleep 30 & wait")
	if err := sh.Start(); err != nil {
		t.Skipf("no sh to start: %v", err)
	}
	defer func() { sh.Process.Kill(); sh.Wait() }()
	// Once sh has forked the sleep, the tree's RSS is more than sh's own.
	deadline := time.Now().Add(5 * time.Second)
	for {
		tree, err := ProcUsage([]int{sh.Process.Pid})
		if err != nil {
			t.Fatal(err)
		}
		own, err := readStat(fmt.Sprintf("/proc/%d/stat", sh.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		if tree.RSS > own.pages*int64(os.Getpagesize()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the child's memory never counted: %d bytes, %d pages in sh", tree.RSS, own.pages)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := ProcUsage([]int{1 << 30}); err == nil {
		t.Error("a pid that does not exist: no error")
	}
}
