package drill

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

func TestTree(t *testing.T) {
	// 1: init; 10: an nginx master with workers 11 and 12, 12 with a child
	// of its own; 20: a backend; 30: someone else's process.
	table := map[int]procStat{1: {ppid: 0}, 10: {ppid: 1}, 11: {ppid: 10}, 12: {ppid: 10}, 13: {ppid: 12}, 20: {ppid: 1}, 30: {ppid: 1}}
	for _, tc := range []struct {
		name string
		pids []int
		want []int // nil: an error
	}{
		{name: "one process", pids: []int{20}, want: []int{20}},
		{name: "master, workers and theirs", pids: []int{10}, want: []int{10, 11, 12, 13}},
		{name: "two trees", pids: []int{20, 10}, want: []int{10, 11, 12, 13, 20}},
		{name: "a pid and its descendant count once", pids: []int{10, 12}, want: []int{10, 11, 12, 13}},
		{name: "a leaf", pids: []int{13}, want: []int{13}},
		{name: "gone", pids: []int{20, 40}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tree(table, tc.pids)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("no error: %v", got)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("got %v, %v; want %v", got, err, tc.want)
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
