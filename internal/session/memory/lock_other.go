//go:build !unix

package memory

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// lockDir only creates the LOCK file: without flock, keeping a second
// process out of the directory is left to the operator.
func lockDir(_ context.Context, dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock session directory: %w", err)
	}
	return f, nil
}
