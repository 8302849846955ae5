package breach

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// PrefixLen is the number of hex digits of the SHA-1 sent to a Source.
const PrefixLen = 5

// Source answers a k-anonymity range query: every suffix (the remaining 35
// upper-case hex digits) of the breached hashes starting with prefix, with
// how often each was seen.
type Source interface {
	Range(ctx context.Context, prefix string) (map[string]int, error)
}

// Check returns how many times password appears in src's breaches (0 when
// never). The password is hashed here; src sees only the prefix.
func Check(ctx context.Context, src Source, password string) (int, error) {
	sum := sha1.Sum([]byte(password))
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	suffixes, err := src.Range(ctx, h[:PrefixLen])
	if err != nil {
		return 0, fmt.Errorf("breached password range %s: %w", h[:PrefixLen], err)
	}
	return suffixes[h[PrefixLen:]], nil
}

// File is a Source reading a sorted Pwned Passwords file. It binary-searches
// the file for each query, so a list of any size costs a few reads, not
// memory.
type File struct {
	f    *os.File
	size int64
}

var _ Source = (*File)(nil)

// Open opens a sorted "SHA1HEX:COUNT" file.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &File{f: f, size: st.Size()}, nil
}

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }

// ErrBadPrefix is returned for a prefix that is not five hex digits.
var ErrBadPrefix = errors.New("prefix is not five hex digits")

// Range implements Source.
func (f *File) Range(ctx context.Context, prefix string) (map[string]int, error) {
	if len(prefix) != PrefixLen {
		return nil, ErrBadPrefix
	}
	if _, err := hex.DecodeString(prefix + "0"); err != nil {
		return nil, ErrBadPrefix
	}
	prefix = strings.ToUpper(prefix)
	// Binary search for the first line whose hash is >= prefix. lo is
	// always a line start and every line before it sorts below prefix; each
	// step either moves lo past a line or shrinks hi.
	lo, hi := int64(0), f.size
	for lo < hi {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		mid := lo + (hi-lo)/2
		start, err := f.lineStart(mid)
		if err != nil {
			return nil, err
		}
		if start >= hi {
			hi = mid
			continue
		}
		line, err := f.lineAt(start)
		if err != nil {
			return nil, err
		}
		if strings.ToUpper(string(line[:min(len(line), PrefixLen)])) < prefix {
			lo = start + int64(len(line)) + 1
		} else {
			hi = start
		}
	}
	if lo >= f.size {
		return map[string]int{}, nil
	}
	out := map[string]int{}
	r := bufio.NewReader(io.NewSectionReader(f.f, lo, f.size-lo))
	for {
		line, err := r.ReadString('\n')
		line = strings.TrimRight(line, "\r\n")
		if line != "" {
			h, n, ok := strings.Cut(line, ":")
			h = strings.ToUpper(h)
			if len(h) != 40 || !strings.HasPrefix(h, prefix) {
				if h > prefix {
					break
				}
			} else if ok {
				c, _ := strconv.Atoi(strings.TrimSpace(n))
				out[h[PrefixLen:]] = c
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// lineStart returns the start of the first line beginning at or after off.
func (f *File) lineStart(off int64) (int64, error) {
	if off == 0 {
		return 0, nil
	}
	buf := make([]byte, 256)
	pos := off - 1
	for {
		n, err := f.f.ReadAt(buf, pos)
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			return pos + int64(i) + 1, nil
		}
		pos += int64(n)
		if err == io.EOF {
			return f.size, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// lineAt returns the line starting at off without its line ending (the raw
// length up to the newline, so callers can step over it). Lines longer than
// 256 bytes are not hashes and are cut.
func (f *File) lineAt(off int64) ([]byte, error) {
	buf := make([]byte, 256)
	n, err := f.f.ReadAt(buf, off)
	if err != nil && err != io.EOF {
		return nil, err
	}
	line := buf[:n]
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	return line, nil
}
