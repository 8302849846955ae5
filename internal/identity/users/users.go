package users

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
)

// Errors of the directory; test with errors.Is.
var (
	// ErrNotFound means no customer has the id.
	ErrNotFound = errors.New("user not found")
	// ErrBadPassword means the password does not match.
	ErrBadPassword = errors.New("wrong password")
	// ErrBlocked means the customer is blocked: no login, whatever the
	// password (checked all the same, so timing tells nothing).
	ErrBlocked = errors.New("customer blocked")
)

// User is what the provider needs to know about a customer.
type User struct {
	ID    string
	Name  string
	Phone string // E.164-ish, where SMS one-time codes go
	Email string

	// Verifier is the customer's password verifier (an argon2id PHC
	// string), handed out by Authenticate on success so the provider can
	// keep a backup-login snapshot; never logged. Version rises with every
	// change to the customer's password, phone or status.
	Verifier string `json:"-"`
	Version  uint64 `json:"-"`
	Blocked  bool   `json:"-"`
}

// Demo customers and their demo passwords, the same three people the
// estate's README introduces. The passwords are public on purpose.
var Demo = []struct {
	User     User
	Password string
}{
	{User{ID: "alice", Name: "Alice Martin", Phone: "+33 6 12 34 56 78", Email: "alice@example.com"}, "alice-demo-2025"},
	{User{ID: "bruno", Name: "Bruno Lefèvre", Phone: "+33 6 23 45 67 89", Email: "bruno@example.com"}, "bruno-demo-2025"},
	{User{ID: "camille", Name: "Camille Dubois", Phone: "+33 6 34 56 78 90", Email: "camille@example.com"}, "camille-demo-2025"},
}

// DerivedPassword is the demo password of a derived customer C%08d: "demo-"
// followed by the id, e.g. "demo-C00000042".
func DerivedPassword(id string) string { return "demo-" + id }

// Options configure a Memory directory.
type Options struct {
	// Params are the argon2id costs; zero means OWASP.
	Params Params
	// Derived is how many derived customers C00000000… exist (0 for none).
	Derived int
	// Phone gives derived customer n's phone, where login codes go; nil
	// uses a placeholder built from n. The wiring passes the estate's own,
	// so a login code reaches the same phone as a 3-D Secure code.
	Phone func(n int) string
	// MaxHashes bounds the password checks computed at once; more wait
	// their turn (or their context). Default GOMAXPROCS: a hash is one
	// core's work, so more at once finish no sooner, and each holds its
	// MemoryKiB meanwhile. Without the bound, logins released together
	// (a directory that comes back after hanging, with hundreds waiting on
	// it) allocated 4.8 MiB each at once in the drill and stalled the whole
	// process, card authorisations included, for a second.
	MaxHashes int
}

// Memory is the embedded directory: demo customers hashed at start, derived
// customers hashed on first use (a bounded cache keeps their hashes).
type Memory struct {
	params  Params
	derived int
	phone   func(n int) string
	users   map[string]record
	stuck   atomic.Pointer[chan struct{}]
	hashing chan struct{} // one token per password check under way

	mu    sync.Mutex
	cache map[string]string // derived id -> PHC hash
	// activity is what logins wrote (Apply), for the customers who logged
	// in: a few hundred bytes each, kept for the process's life, as a
	// simulated directory can.
	activity map[string]*activity

	// hashes counts argon2id computations: every password check costs
	// exactly one, whoever the id is (the tests hold it to that).
	hashes atomic.Int64

	// version numbers changes; watchers hear of each changed customer.
	version  atomic.Uint64
	watchMu  sync.Mutex
	watchers []func(id string)
}

type record struct {
	user User
	hash string
}

// derivedCacheMax bounds the derived-customer hash cache (about 150 bytes an
// entry): a credential-stuffing run over the whole population must not grow
// memory without limit.
const derivedCacheMax = 100_000

// NewMemory builds the directory, hashing the demo passwords.
func NewMemory(opts Options) (*Memory, error) {
	if opts.Params == (Params{}) {
		opts.Params = OWASP
	}
	if opts.MaxHashes <= 0 {
		opts.MaxHashes = runtime.GOMAXPROCS(0)
	}
	m := &Memory{params: opts.Params, derived: opts.Derived, phone: opts.Phone, users: map[string]record{}, cache: map[string]string{},
		activity: map[string]*activity{}, hashing: make(chan struct{}, opts.MaxHashes)}
	for _, d := range Demo {
		h, err := Hash(d.Password, m.params)
		if err != nil {
			return nil, err
		}
		m.users[d.User.ID] = record{d.User, h}
	}
	return m, nil
}

// Add stores a customer with a password (for tests and small deployments).
func (m *Memory) Add(u User, password string) error {
	h, err := Hash(password, m.params)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users[u.ID] = record{u, h}
	return nil
}

// Watch calls f (synchronously, outside the directory's locks) with the id
// of every customer whose password, phone or status changes, so that what
// was derived from the old values — backup-login snapshots — dies at once.
func (m *Memory) Watch(f func(id string)) {
	m.watchMu.Lock()
	m.watchers = append(m.watchers, f)
	m.watchMu.Unlock()
}

func (m *Memory) changed(id string) {
	m.watchMu.Lock()
	ws := slices.Clone(m.watchers)
	m.watchMu.Unlock()
	for _, f := range ws {
		f(id)
	}
}

// change applies f to the customer's record (a derived customer gets one of
// their own) and tells the watchers.
func (m *Memory) change(id string, f func(r *record) error) error {
	r, ok := m.find(id)
	if !ok {
		return ErrNotFound
	}
	if err := f(&r); err != nil {
		return err
	}
	r.user.Version = m.version.Add(1)
	m.mu.Lock()
	m.users[id] = r
	delete(m.cache, id)
	m.mu.Unlock()
	m.changed(id)
	return nil
}

// Block blocks (or unblocks) the customer: no login, on any path.
func (m *Memory) Block(id string, blocked bool) error {
	return m.change(id, func(r *record) error { r.user.Blocked = blocked; return nil })
}

// SetPassword replaces the customer's password.
func (m *Memory) SetPassword(id, password string) error {
	h, err := Hash(password, m.params)
	if err != nil {
		return err
	}
	return m.change(id, func(r *record) error { r.hash = h; return nil })
}

// SetPhone replaces the phone login codes go to.
func (m *Memory) SetPhone(id, phone string) error {
	return m.change(id, func(r *record) error { r.user.Phone = phone; return nil })
}

// SetStuck switches the directory stuck (every call waits until its context
// ends, like a query behind a deadlock) or back to normal.
func (m *Memory) SetStuck(stuck bool) {
	if stuck {
		ch := make(chan struct{})
		m.stuck.CompareAndSwap(nil, &ch) // already stuck: keep the old channel
		return
	}
	if p := m.stuck.Swap(nil); p != nil {
		close(*p)
	}
}

// Stuck reports whether the directory is switched stuck.
func (m *Memory) Stuck() bool { return m.stuck.Load() != nil }

// Params are the hash costs of the passwords the directory checks.
func (m *Memory) Params() Params { return m.params }

func (m *Memory) wait(ctx context.Context) error {
	p := m.stuck.Load()
	if p == nil {
		return nil
	}
	select {
	case <-ctx.Done():
		return fmt.Errorf("user directory: %w", ctx.Err())
	case <-*p:
		return nil
	}
}

// Lookup returns the customer with the id.
func (m *Memory) Lookup(ctx context.Context, id string) (User, error) {
	if err := m.wait(ctx); err != nil {
		return User{}, err
	}
	r, ok := m.find(id)
	if !ok {
		return User{}, ErrNotFound
	}
	return r.user, nil
}

// Authenticate checks the customer's password. Every check costs exactly one
// argon2id hash with the directory's parameters — a demo customer's, a
// derived customer's seen or not, or an id that does not exist — so neither
// timing nor CPU tells which ids exist.
func (m *Memory) Authenticate(ctx context.Context, id, password string) (User, error) {
	if err := m.wait(ctx); err != nil {
		return User{}, err
	}
	select {
	case m.hashing <- struct{}{}:
		defer func() { <-m.hashing }()
	case <-ctx.Done():
		return User{}, ctx.Err()
	}
	r, ok := m.find(id)
	if !ok {
		_ = m.hash(password, make([]byte, m.params.SaltLen))
		return User{}, ErrNotFound
	}
	u := r.user
	if r.hash == "" {
		h, ok := m.checkDerived(id, password)
		if !ok {
			return User{}, ErrBadPassword
		}
		u.Verifier = h
	} else {
		m.hashes.Add(1)
		ok, err := Verify(password, r.hash)
		if err != nil {
			return User{}, err
		}
		if !ok {
			return User{}, ErrBadPassword
		}
		u.Verifier = r.hash
	}
	if u.Blocked {
		return User{}, ErrBlocked
	}
	return u, nil
}

// hash is HashWithSalt with the directory's parameters, counted.
func (m *Memory) hash(password string, salt []byte) string {
	m.hashes.Add(1)
	return HashWithSalt(password, salt, m.params)
}

// checkDerived checks a derived customer's password with one hash: the
// presented password under the id's salt, compared with the cached verifier
// when there is one. On a first login there is none yet — a derived
// customer's password is a function of the id, so the presented one is
// compared with it in constant time, and the hash just computed becomes the
// cached verifier. (Hashing the derived password first, as a stored verifier
// would have been, cost a second hash and made an existing customer's first
// check twice as slow as an unknown id's.)
func (m *Memory) checkDerived(id, password string) (string, bool) {
	sum := sha256.Sum256([]byte("rempart derived salt " + id))
	h := m.hash(password, sum[:m.params.SaltLen])
	m.mu.Lock()
	cached, ok := m.cache[id]
	m.mu.Unlock()
	if ok {
		return h, subtle.ConstantTimeCompare([]byte(h), []byte(cached)) == 1
	}
	if subtle.ConstantTimeCompare([]byte(password), []byte(DerivedPassword(id))) != 1 {
		return "", false
	}
	m.mu.Lock()
	if len(m.cache) >= derivedCacheMax {
		for k := range m.cache { // evict an arbitrary entry
			delete(m.cache, k)
			break
		}
	}
	m.cache[id] = h
	m.mu.Unlock()
	return h, true
}

func (m *Memory) find(id string) (record, bool) {
	m.mu.Lock()
	r, ok := m.users[id]
	m.mu.Unlock()
	if ok {
		return r, true
	}
	n, ok := derivedIndex(id)
	if !ok || n >= m.derived {
		return record{}, false
	}
	phone := fmt.Sprintf("+33 7 %08d", n)
	if m.phone != nil {
		phone = m.phone(n)
	}
	return record{user: User{ID: id, Name: "Client " + id[1:], Phone: phone}}, true
}

func derivedIndex(id string) (int, bool) {
	if len(id) != 9 || id[0] != 'C' {
		return 0, false
	}
	n, err := strconv.Atoi(id[1:])
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
