package keys

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// Store keeps one versioned record, the (sealed) key set. Backends are
// siblings: Memory, File and postgres.Store; each passes keystest.RunTests.
type Store interface {
	// Load returns the stored record, or ErrNotFound when none was stored.
	Load(ctx context.Context) (Record, error)
	// Update stores data as version prev+1 when the stored version is still
	// prev (0: nothing stored yet), and returns ErrConflict otherwise: another
	// node wrote first.
	Update(ctx context.Context, prev uint64, data []byte) error
}

// Record is what a Store holds: the encoded set and its version, which every
// Update increases by one.
type Record struct {
	Version uint64
	Data    []byte
}

// Sentinels of the Store contract.
var (
	ErrNotFound = errors.New("no key set stored")
	ErrConflict = errors.New("key set changed by another instance")
)

// Interface guards.
var (
	_ Store = (*Memory)(nil)
	_ Store = (*File)(nil)
)

// Memory is a Store in process memory, for one node or for tests.
type Memory struct {
	mu  sync.Mutex
	rec Record
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{} }

// Load implements Store.
func (m *Memory) Load(ctx context.Context) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rec.Version == 0 {
		return Record{}, ErrNotFound
	}
	return Record{Version: m.rec.Version, Data: bytes.Clone(m.rec.Data)}, nil
}

// Update implements Store.
func (m *Memory) Update(ctx context.Context, prev uint64, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rec.Version != prev {
		return ErrConflict
	}
	m.rec = Record{Version: prev + 1, Data: bytes.Clone(data)}
	return nil
}

// File is a Store in dir/keys.json (mode 0600), written atomically
// (temporary file, fsync, rename). Updates are serialised by a lock file, so
// processes sharing the directory compare-and-swap too.
type File struct {
	dir string
	mu  sync.Mutex
}

// NewFile returns a store in dir, created on the first Update.
func NewFile(dir string) *File { return &File{dir: dir} }

func (f *File) path() string { return filepath.Join(f.dir, "keys.json") }

// fileRecord is the file's layout. A file without a version is the layout of
// an older rempart (the set itself, in clear): it is read as version 1.
type fileRecord struct {
	Version uint64 `json:"version"`
	Data    []byte `json:"data"`
}

// Load implements Store.
func (f *File) Load(ctx context.Context) (Record, error) {
	if err := ctx.Err(); err != nil {
		return Record{}, err
	}
	b, err := os.ReadFile(f.path())
	if errors.Is(err, os.ErrNotExist) {
		return Record{}, ErrNotFound
	}
	if err != nil {
		return Record{}, fmt.Errorf("read signing keys: %w", err)
	}
	var r fileRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("parse %s: %w", f.path(), err)
	}
	if r.Version == 0 {
		return Record{Version: 1, Data: b}, nil
	}
	return Record{Version: r.Version, Data: r.Data}, nil
}

// Update implements Store.
func (f *File) Update(ctx context.Context, prev uint64, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		return fmt.Errorf("create key directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(f.dir, "keys.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("lock signing keys: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock signing keys: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	cur, err := f.Load(ctx)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return err
	}
	if cur.Version != prev {
		return ErrConflict
	}
	b, err := json.Marshal(fileRecord{Version: prev + 1, Data: data})
	if err != nil {
		return err
	}
	return writeFile(f.path(), b)
}

func writeFile(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write signing keys: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write signing keys: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write signing keys: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write signing keys: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write signing keys: %w", err)
	}
	return nil
}
