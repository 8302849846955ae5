package memory

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// wal is the append-only log with group commit. Records are appended to an
// in-memory buffer under mu, each getting a sequence number; sync(seq)
// returns once that record is on disk. The first caller to find its record
// not yet durable becomes the leader: it takes the whole buffer, writes and
// fsyncs it without holding mu, and wakes everyone it covered. Callers that
// arrive meanwhile queue behind it and are covered by the next leader's
// single fsync.
type wal struct {
	dir string

	mu       sync.Mutex
	cond     sync.Cond
	f        *os.File
	gen      uint64
	size     int64  // bytes in the current file, buffered ones included
	buf      []byte // records not yet handed to a leader
	spare    []byte // the other buffer, reused to spare allocations
	appended uint64 // sequence number of the last record appended
	durable  uint64 // every record up to this one is fsynced
	flushing bool
	// err is sticky: after a failed write or fsync the file's state is
	// unknown (a later fsync may report success for lost pages), so the
	// log refuses everything until the store is reopened.
	err error
}

func logName(gen uint64) string      { return fmt.Sprintf("log-%016x", gen) }
func snapshotName(gen uint64) string { return fmt.Sprintf("snapshot-%016x", gen) }

// openWAL appends to the log of generation gen in dir, creating it if need be.
func openWAL(dir string, gen uint64) (*wal, error) {
	w := &wal{dir: dir}
	w.cond.L = &w.mu
	f, size, err := openLogFile(dir, gen)
	if err != nil {
		return nil, err
	}
	w.f, w.gen, w.size = f, gen, size
	return w, nil
}

// openLogFile opens a log for appending, writing its header if it has none
// (a crash can leave a log created but with its header unwritten).
func openLogFile(dir string, gen uint64) (*os.File, int64, error) {
	path := filepath.Join(dir, logName(gen))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, 0, fmt.Errorf("open session log: %w", err)
	}
	st, err := f.Stat()
	if err == nil && st.Size() < int64(len(logMagic)) {
		err = f.Truncate(0)
		if err == nil {
			_, err = f.WriteAt([]byte(logMagic), 0)
		}
		if err == nil {
			err = f.Sync()
		}
		if err == nil {
			err = syncDir(dir)
		}
		st, _ = f.Stat()
	}
	var size int64
	if err == nil {
		size = st.Size()
		_, err = f.Seek(size, 0)
	}
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("prepare session log: %w", err)
	}
	return f, size, nil
}

// failed returns the sticky error, if any.
func (w *wal) failed() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// add appends the record enc writes and returns its sequence number.
func (w *wal) add(enc func([]byte) []byte) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(w.buf)
	w.buf = enc(w.buf)
	w.size += int64(len(w.buf) - n)
	w.appended++
	return w.appended
}

// sync waits until record seq is durable.
func (w *wal) sync(seq uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.durable < seq {
		if w.err != nil {
			return w.err
		}
		if w.flushing {
			w.cond.Wait()
			continue
		}
		w.flushLocked()
	}
	return nil
}

// syncAll makes everything appended so far durable; the background loop
// calls it so that coarse Touch records reach the disk too.
func (w *wal) syncAll() error {
	w.mu.Lock()
	seq := w.appended
	w.mu.Unlock()
	return w.sync(seq)
}

// flushLocked is the leader's turn: write and fsync the buffer with mu
// released, so appends continue meanwhile.
func (w *wal) flushLocked() {
	buf, upto, f := w.buf, w.appended, w.f
	w.buf, w.spare = w.spare[:0], nil
	w.flushing = true
	w.mu.Unlock()
	err := writeSync(f, buf)
	w.mu.Lock()
	w.flushing = false
	if cap(buf) <= 4<<20 { // keep a normal buffer, let a burst's go
		w.spare = buf[:0]
	}
	if err != nil {
		w.err = fmt.Errorf("write session log: %w", err)
	} else {
		w.durable = upto
	}
	w.cond.Broadcast()
}

func writeSync(f *os.File, buf []byte) error {
	if len(buf) > 0 {
		if _, err := f.Write(buf); err != nil {
			return err
		}
	}
	return f.Sync()
}

// logSize is the current log's size, for the snapshot trigger.
func (w *wal) logSize() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.size
}

// rotate makes everything appended durable in the current log, switches to
// a new one and returns the new generation. Records appended afterwards go
// to the new log; the snapshot that follows covers everything before.
func (w *wal) rotate() (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.flushing {
		w.cond.Wait()
	}
	if w.err != nil {
		return 0, w.err
	}
	// Flush while holding mu: appenders wait one fsync, and nothing can
	// slip into the old log after this.
	if err := writeSync(w.f, w.buf); err != nil {
		w.err = fmt.Errorf("write session log: %w", err)
		w.cond.Broadcast()
		return 0, w.err
	}
	w.buf = w.buf[:0]
	w.durable = w.appended
	w.cond.Broadcast()

	f, size, err := openLogFile(w.dir, w.gen+1)
	if err != nil {
		return 0, err
	}
	old := w.f
	w.f, w.size = f, size
	w.gen++
	if err := old.Close(); err != nil {
		return 0, fmt.Errorf("close session log: %w", err)
	}
	return w.gen, nil
}

// close flushes everything and closes the file; later syncs fail with errClosed.
func (w *wal) close() error {
	err := w.syncAll()
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.flushing {
		w.cond.Wait()
	}
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close session log: %w", cerr)
	}
	if w.err == nil {
		w.err = ErrClosed
	}
	w.cond.Broadcast()
	if errors.Is(err, ErrClosed) {
		return nil
	}
	return err
}

// syncDir makes a file's creation, rename or removal in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
