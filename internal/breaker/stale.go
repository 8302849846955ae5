package breaker

import (
	"bytes"
	"container/list"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/rempart/rempart/internal/request"
)

// StaleConfig configures a Stale cache. Zero fields take the defaults below.
type StaleConfig struct {
	// Entries bounds the cache: the least recently used answer goes first.
	// Default 10,000.
	Entries int
	// MaxBody is the largest answer kept, in bytes; larger ones are not
	// cached. With Entries it bounds the memory: 10,000 × 64 KiB = 640 MiB
	// at worst, a few MiB for balances of a few hundred bytes. Default 64 KiB.
	MaxBody int
	// MaxAge, if positive, is the oldest answer served; older ones count as
	// missing. Zero serves any age: the answer says how old it is.
	MaxAge time.Duration
	// Key names the answer a request may be served: requests with the same
	// key see each other's answers. Default StaleKey.
	Key func(*http.Request) string
	// Now tells the time; nil means time.Now.
	Now func() time.Time
}

// Stale is the fallback of read routes (balances, history): it remembers the
// last good answer per key and, when the upstream cannot answer, serves it
// marked stale — Rempart-Stale: true, Age and Rempart-As-Of — or a 503
// "degraded" problem when it holds none.
type Stale struct {
	cfg StaleConfig

	mu    sync.Mutex
	lru   *list.List // of *staleEntry, most recent first
	byKey map[string]*list.Element
}

var (
	_ Observer = (*Stale)(nil)
	_ Repeater = (*Stale)(nil)
)

type staleEntry struct {
	key         string
	status      int
	contentType string
	body        []byte
	at          time.Time
}

// NewStale returns an empty cache.
func NewStale(cfg StaleConfig) *Stale {
	if cfg.Entries <= 0 {
		cfg.Entries = 10_000
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 64 << 10
	}
	if cfg.Key == nil {
		cfg.Key = StaleKey
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Stale{cfg: cfg, lru: list.New(), byKey: map[string]*list.Element{}}
}

// StaleKey keys an answer by the customer the gateway authenticated (when
// it did) and the path and query, so that one customer's cached balance is
// never served to another who asks for the same URL.
func StaleKey(r *http.Request) string {
	var subject string
	if info := request.From(r.Context()); info != nil && info.Session {
		subject = info.Subject
	}
	return subject + " " + r.URL.RequestURI()
}

// Observe implements Observer: it keeps the upstream's 200 answers to GETs.
func (s *Stale) Observe(r *http.Request, status int, header http.Header, body []byte) {
	if r.Method != http.MethodGet || status != http.StatusOK || len(body) > s.cfg.MaxBody {
		return
	}
	e := &staleEntry{key: s.cfg.Key(r), status: status, contentType: header.Get("Content-Type"),
		body: bytes.Clone(body), at: s.cfg.Now()}
	s.mu.Lock()
	defer s.mu.Unlock()
	if el, ok := s.byKey[e.key]; ok {
		el.Value = e
		s.lru.MoveToFront(el)
		return
	}
	s.byKey[e.key] = s.lru.PushFront(e)
	for s.lru.Len() > s.cfg.Entries {
		old := s.lru.Back()
		s.lru.Remove(old)
		delete(s.byKey, old.Value.(*staleEntry).key)
	}
}

// Answer implements Fallback.
func (s *Stale) Answer(w http.ResponseWriter, r *http.Request, _ []byte, o Outage) string {
	e, ok := s.get(s.cfg.Key(r))
	now := s.cfg.Now()
	if !ok || (s.cfg.MaxAge > 0 && now.Sub(e.at) > s.cfg.MaxAge) || r.Method != http.MethodGet {
		WriteDegraded(w, o, "the upstream is unavailable and no earlier answer to this request is held")
		return AnswerDegraded
	}
	h := w.Header()
	if e.contentType != "" {
		h.Set("Content-Type", e.contentType)
	}
	h.Set("Content-Length", strconv.Itoa(len(e.body)))
	h.Set(HeaderStale, "true")
	h.Set(HeaderAsOf, e.at.UTC().Format(time.RFC3339))
	h.Set("Age", strconv.FormatInt(int64(max(now.Sub(e.at), 0)/time.Second), 10))
	// A stale answer must not be cached downstream as if it were fresh.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(e.status)
	w.Write(e.body)
	return AnswerStale
}

// Repeats implements Repeater.
func (*Stale) Repeats() bool { return true }

func (s *Stale) get(key string) (*staleEntry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	el, ok := s.byKey[key]
	if !ok {
		return nil, false
	}
	s.lru.MoveToFront(el)
	return el.Value.(*staleEntry), true
}

// Len returns how many answers the cache holds.
func (s *Stale) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len()
}
