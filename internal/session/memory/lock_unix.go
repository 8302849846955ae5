//go:build unix

package memory

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockWait is how long lockDir waits for a lock another holder is
// releasing. A process that forks (to run any command) while a store closes
// keeps a copy of the lock's descriptor until the child execs, a few
// milliseconds; a process killed by SIGKILL releases it as it dies.
const lockWait = time.Second

// lockDir takes an exclusive lock on dir's LOCK file: two processes
// appending to one log would interleave records.
func lockDir(ctx context.Context, dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock session directory: %w", err)
	}
	deadline := time.Now().Add(lockWait)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) || ctx.Err() != nil {
			f.Close()
			return nil, fmt.Errorf("session directory in use by another process: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
