package waitroom

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/problem"
	"github.com/rempart/rempart/internal/request"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 12, 22, 8, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var testKey = []byte("0123456789abcdef0123456789abcdef")

// fixture is a room with a fixed rate (floor = ceiling) in front of a backend
// that answers 200 and counts its calls.
type fixture struct {
	t     *testing.T
	clock *fakeClock
	room  *Room
	h     http.Handler
	mu    sync.Mutex
	calls int
}

func newFixture(t *testing.T, rate float64, mod func(*Options)) *fixture {
	t.Helper()
	f := &fixture{t: t, clock: newFakeClock()}
	o := Options{ID: "login-test", Key: testKey, MinRate: rate, MaxRate: rate, Clock: f.clock}
	if mod != nil {
		mod(&o)
	}
	f.room = New(o)
	f.h = f.room.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.calls++
		f.mu.Unlock()
		_, _ = w.Write([]byte("welcome"))
	}))
	return f
}

// call sends one login request; ticket, if set, goes in the Rempart-Ticket
// header.
func (f *fixture) call(ticket string, info *request.Info, hdr ...string) *http.Response {
	req := httptest.NewRequest(http.MethodPost, "/login", nil)
	if info != nil {
		req = req.WithContext(request.With(req.Context(), info))
	}
	if ticket != "" {
		req.Header.Set("Rempart-Ticket", ticket)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec.Result()
}

// ticket sends newcomers until one gets a ticket, and returns it.
func (f *fixture) ticket() string {
	f.t.Helper()
	for range 10000 {
		if tk := f.call("", nil).Header.Get("Rempart-Ticket"); tk != "" {
			return tk
		}
	}
	f.t.Fatal("no ticket after 10000 newcomers")
	return ""
}

// waitingDoc is the problem document of a waiting answer.
type waitingDoc struct {
	Type     string  `json:"type"`
	Title    string  `json:"title"`
	Status   int     `json:"status"`
	Detail   string  `json:"detail"`
	Ticket   string  `json:"ticket"`
	Position int     `json:"position"`
	ETA      float64 `json:"estimated_wait_seconds"`
	Poll     float64 `json:"poll_after_seconds"`
}

func decodeWaiting(t *testing.T, res *http.Response) waitingDoc {
	t.Helper()
	var d waitingDoc
	if err := json.NewDecoder(res.Body).Decode(&d); err != nil {
		t.Fatalf("decode waiting answer: %v", err)
	}
	return d
}

func seqOf(t *testing.T, tk string) uint64 {
	t.Helper()
	p, err := parseTicket(tk, testKey, "login-test", time.Date(2025, 12, 22, 8, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatalf("parse own ticket: %v", err)
	}
	return p.seq
}

func TestPassThroughBelowCapacity(t *testing.T) {
	f := newFixture(t, 10, nil)
	for range 50 { // 5 per second for 10 s against a rate of 10
		res := f.call("", nil)
		if res.StatusCode != http.StatusOK || res.Header.Get("Rempart-Ticket") != "" || TurnedAway(res.Header) {
			t.Fatalf("status %d ticket %q, want a plain 200", res.StatusCode, res.Header.Get("Rempart-Ticket"))
		}
		f.clock.Advance(200 * time.Millisecond)
	}
	if s := f.room.Stats(); s.Waiting != 0 {
		t.Errorf("waiting %d, want 0", s.Waiting)
	}
}

func TestWireFormat(t *testing.T) {
	f := newFixture(t, 2, nil)
	f.call("", nil) // the initial burst, one second at 2/s
	f.call("", nil)
	res := f.call("", nil)
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", res.StatusCode)
	}
	if ct := res.Header.Get("Content-Type"); ct != problem.ContentType {
		t.Errorf("Content-Type %q", ct)
	}
	d := decodeWaiting(t, res)
	if !strings.HasSuffix(d.Type, "/waiting-room") || d.Title == "" || d.Detail == "" || d.Status != 503 {
		t.Errorf("problem %+v", d)
	}
	if d.Ticket == "" || d.Ticket != res.Header.Get("Rempart-Ticket") {
		t.Errorf("ticket %q, header %q", d.Ticket, res.Header.Get("Rempart-Ticket"))
	}
	if d.Position != 1 || d.ETA != 0.5 {
		t.Errorf("position %d eta %v, want 1 and 0.5 (one ahead at 2/s)", d.Position, d.ETA)
	}
	ra, err := strconv.Atoi(res.Header.Get("Retry-After"))
	if err != nil || ra < 1 || float64(ra) != d.Poll {
		t.Errorf("Retry-After %q, poll_after_seconds %v", res.Header.Get("Retry-After"), d.Poll)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	if !TurnedAway(res.Header) || res.Header.Get(Header) != "waiting" {
		t.Errorf("%s: %q", Header, res.Header.Get(Header))
	}
	// Untouched extension members are numbers, not strings.
	var raw map[string]any
	f.clock.Advance(100 * time.Millisecond)
	_ = json.NewDecoder(f.call(d.Ticket, nil).Body).Decode(&raw)
	for _, k := range []string{"position", "estimated_wait_seconds", "poll_after_seconds"} {
		if _, ok := raw[k].(float64); !ok {
			t.Errorf("%s = %#v, want a number", k, raw[k])
		}
	}
}

// TestFIFOConcurrent sends clients in all at once, then lets them poll all at
// once every 250 ms with newcomers arriving meanwhile: at every step whoever
// was admitted held an earlier place than whoever still waits, nobody is
// admitted twice, and the rate holds.
func TestFIFOConcurrent(t *testing.T) {
	const rate = 10
	f := newFixture(t, rate, nil)

	var mu sync.Mutex
	waiting := map[uint64]string{} // seq -> latest ticket
	admittedNow := 0
	arrive := func(n int) {
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				res := f.call("", nil)
				mu.Lock()
				defer mu.Unlock()
				if res.StatusCode == http.StatusOK {
					admittedNow++
					return
				}
				tk := res.Header.Get("Rempart-Ticket")
				waiting[seqOf(t, tk)] = tk
			})
		}
		wg.Wait()
	}
	arrive(60)
	if admittedNow != rate {
		t.Fatalf("%d admitted straight away, want the burst of %d", admittedNow, rate)
	}
	if len(waiting) != 60-rate {
		t.Fatalf("%d distinct tickets, want %d", len(waiting), 60-rate)
	}

	var admitted []uint64
	for step := 0; len(waiting) > 0; step++ {
		if step > 1000 {
			t.Fatal("line never drained")
		}
		f.clock.Advance(250 * time.Millisecond)
		var got []uint64
		var wg sync.WaitGroup
		mu.Lock()
		snapshot := maps(waiting)
		mu.Unlock()
		for seq, tk := range snapshot {
			wg.Go(func() {
				res := f.call(tk, nil)
				mu.Lock()
				defer mu.Unlock()
				switch res.StatusCode {
				case http.StatusOK:
					got = append(got, seq)
					delete(waiting, seq)
				case http.StatusServiceUnavailable:
					nt := res.Header.Get("Rempart-Ticket")
					if s := seqOf(t, nt); s != seq {
						t.Errorf("poll of ticket %d came back with place %d", seq, s)
					}
					waiting[seq] = nt
				}
			})
		}
		if step < 10 {
			wg.Go(func() { arrive(3) })
		}
		wg.Wait()
		for _, a := range got {
			for w := range waiting {
				if a > w {
					t.Fatalf("step %d: ticket %d admitted while %d still waits", step, a, w)
				}
			}
			if slices.Contains(admitted, a) {
				t.Fatalf("ticket %d admitted twice", a)
			}
		}
		admitted = append(admitted, got...)
	}
	if admittedNow != rate {
		t.Errorf("newcomers were let straight through past the line: %d direct admissions", admittedNow)
	}
	// 80 tickets at 10/s: 8 s.
	if el := f.clock.Now().Sub(time.Date(2025, 12, 22, 8, 0, 0, 0, time.UTC)); el < 8*time.Second || el > 8250*time.Millisecond {
		t.Errorf("line of 80 drained in %v at 10/s", el)
	}
}

func maps(m map[uint64]string) map[uint64]string {
	c := make(map[uint64]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// TestETAHonest checks that the wait quoted on arrival is the wait observed
// when the rate does not change.
func TestETAHonest(t *testing.T) {
	f := newFixture(t, 20, nil)
	start := f.clock.Now()
	type client struct {
		ticket  string
		eta     time.Duration
		lastPos int
	}
	var line []*client
	for range 50 {
		res := f.call("", nil)
		if res.StatusCode == http.StatusOK {
			continue
		}
		d := decodeWaiting(t, res)
		line = append(line, &client{ticket: d.Ticket, eta: time.Duration(d.ETA * float64(time.Second)), lastPos: d.Position})
	}
	for len(line) > 0 {
		f.clock.Advance(50 * time.Millisecond)
		now := f.clock.Now().Sub(start)
		var still []*client
		for _, c := range line {
			res := f.call(c.ticket, nil)
			if res.StatusCode == http.StatusOK {
				// The quote is rounded up to a tenth of a second and the
				// client polls every 50 ms.
				if diff := now - c.eta; diff < -100*time.Millisecond || diff > 50*time.Millisecond {
					t.Errorf("quoted %v, admitted after %v", c.eta, now)
				}
				continue
			}
			d := decodeWaiting(t, res)
			if d.Position > c.lastPos {
				t.Errorf("position went from %d to %d", c.lastPos, d.Position)
			}
			c.ticket, c.lastPos = d.Ticket, d.Position
			still = append(still, c)
		}
		line = still
	}
}

func TestBypass(t *testing.T) {
	f := newFixture(t, 1, func(o *Options) { o.MaxWaiting = 1 })
	f.call("", nil) // burst
	f.call("", nil) // ticket: line full
	if res := f.call("", nil); res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("newcomer got %d with the line full, want 503", res.StatusCode)
	}
	for name, info := range map[string]*request.Info{
		"session": {Session: true, Subject: "alice"},
		"partner": {Partner: true},
	} {
		t.Run(name, func(t *testing.T) {
			res := f.call("", info)
			if res.StatusCode != http.StatusOK || res.Header.Get("Rempart-Ticket") != "" {
				t.Errorf("status %d, want 200 with no ticket", res.StatusCode)
			}
		})
	}
}

func TestLineFull(t *testing.T) {
	f := newFixture(t, 1, func(o *Options) { o.MaxWaiting = 3 })
	f.call("", nil)
	for range 3 {
		if res := f.call("", nil); res.Header.Get("Rempart-Ticket") == "" {
			t.Fatal("no ticket before the line is full")
		}
	}
	res := f.call("", nil)
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", res.StatusCode)
	}
	var d waitingDoc
	_ = json.NewDecoder(res.Body).Decode(&d)
	if !strings.HasSuffix(d.Type, "/waiting-room-full") {
		t.Errorf("type %q, want .../waiting-room-full", d.Type)
	}
	if ra, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q", res.Header.Get("Retry-After"))
	}
	if res.Header.Get("Rempart-Ticket") != "" || d.Ticket != "" {
		t.Error("a full room handed out a ticket")
	}
	if res.Header.Get(Header) != "full" {
		t.Errorf("%s: %q", Header, res.Header.Get(Header))
	}
}

// TestNoTicketGoesToTheBack covers every way a presented ticket is no ticket:
// the client is treated as a newcomer and gets a fresh place at the back.
func TestNoTicketGoesToTheBack(t *testing.T) {
	tests := []struct {
		name   string
		reason string
		mod    func(*Options)
		spoil  func(t *testing.T, f *fixture, tk string) (string, *request.Info)
	}{
		{"tampered", "forged", nil, func(t *testing.T, f *fixture, tk string) (string, *request.Info) {
			b := []byte(tk)
			i := len(b) / 2
			if b[i] == 'A' {
				b[i] = 'B'
			} else {
				b[i] = 'A'
			}
			return string(b), nil
		}},
		{"truncated", "malformed", nil, func(t *testing.T, f *fixture, tk string) (string, *request.Info) {
			return tk[:len(tk)-4], nil
		}},
		{"garbage", "malformed", nil, func(t *testing.T, f *fixture, tk string) (string, *request.Info) {
			return "not a ticket", nil
		}},
		{"expired", "expired", func(o *Options) { o.TicketTTL = 30 * time.Second }, func(t *testing.T, f *fixture, tk string) (string, *request.Info) {
			f.clock.Advance(31 * time.Second)
			return tk, nil
		}},
		{"other room", "other-room", nil, func(t *testing.T, f *fixture, tk string) (string, *request.Info) {
			o := ticket{room: "login-other", seq: 2, issued: f.clock.Now(), expiry: f.clock.Now().Add(time.Minute)}
			return o.encode(testKey), nil
		}},
		{"other key", "forged", nil, func(t *testing.T, f *fixture, tk string) (string, *request.Info) {
			o := ticket{room: "login-test", seq: 2, issued: f.clock.Now(), expiry: f.clock.Now().Add(time.Minute)}
			return o.encode([]byte("another key of thirty-two bytes!")), nil
		}},
		{"from the future", "unknown", nil, func(t *testing.T, f *fixture, tk string) (string, *request.Info) {
			o := ticket{room: "login-test", seq: 1 << 40, issued: f.clock.Now(), expiry: f.clock.Now().Add(time.Minute)}
			return o.encode(testKey), nil
		}},
		{"other client", "other-client", func(o *Options) { o.BindClient = true }, func(t *testing.T, f *fixture, tk string) (string, *request.Info) {
			return tk, &request.Info{Client: netip.MustParseAddr("198.51.100.7")}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 0.01, func(o *Options) {
				o.Registerer = prometheus.NewRegistry()
				if tt.mod != nil {
					tt.mod(o)
				}
			})
			home := &request.Info{Client: netip.MustParseAddr("203.0.113.9")}
			var last string
			for range 3 {
				last = f.call("", home).Header.Get("Rempart-Ticket")
			}
			if last == "" {
				t.Fatal("no ticket issued")
			}
			lastSeq := seqOf(t, last)
			bad, info := tt.spoil(t, f, last)
			if info == nil {
				info = home
			}
			res := f.call(bad, info)
			if res.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503", res.StatusCode)
			}
			d := decodeWaiting(t, res)
			if d.Ticket == "" {
				t.Fatal("no new ticket")
			}
			p, err := parseTicket(d.Ticket, testKey, "login-test", f.clock.Now())
			if err != nil || p.seq <= lastSeq {
				t.Errorf("new place %d (err %v), want after %d", p.seq, err, lastSeq)
			}
			if got := counter(t, f.room.opts.Registerer.(*prometheus.Registry), "rempart_waitroom_rejected_total", "reason", tt.reason); got != 1 {
				t.Errorf("rejected_total{reason=%q} = %v, want 1", tt.reason, got)
			}
		})
	}
}

func TestSingleUse(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFixture(t, 2, func(o *Options) { o.Registerer = reg })
	tk := f.ticket()
	f.clock.Advance(time.Second)
	if res := f.call(tk, nil); res.StatusCode != http.StatusOK {
		t.Fatalf("called ticket got %d, want 200", res.StatusCode)
	}
	behind := f.ticket() // the capacity used up: a line again
	res := f.call(tk, nil)
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("second use got %d, want 503", res.StatusCode)
	}
	if s := seqOf(t, decodeWaiting(t, res).Ticket); s <= seqOf(t, behind) {
		t.Errorf("replayed ticket got place %d, want behind %d", s, seqOf(t, behind))
	}
	if got := counter(t, reg, "rempart_waitroom_rejected_total", "reason", "replayed"); got != 1 {
		t.Errorf("rejected_total{reason=replayed} = %v, want 1", got)
	}
	// The first second's two, the ticket once, and the newcomer who took
	// the second second's other admission.
	if f.calls != 4 {
		t.Errorf("backend saw %d calls, want 4", f.calls)
	}
}

func TestReplayLimit(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFixture(t, 10, func(o *Options) { o.ReplayLimit = 2; o.Registerer = reg })
	var tks []string
	for range 4 {
		tks = append(tks, f.ticket())
	}
	f.clock.Advance(time.Second)
	// The third admission evicts the first used entry and with it the
	// validity of every ticket numbered up to it.
	for _, tk := range tks[:3] {
		if res := f.call(tk, nil); res.StatusCode != http.StatusOK {
			t.Fatalf("status %d", res.StatusCode)
		}
	}
	for range 20 { // use up the capacity so a refused ticket meets a line
		f.call("", nil)
	}
	for i, tk := range tks[:3] {
		if res := f.call(tk, nil); res.StatusCode == http.StatusOK {
			t.Errorf("ticket %d admitted twice", i)
		}
	}
	if got := counter(t, reg, "rempart_waitroom_rejected_total", "reason", "replayed"); got != 3 {
		t.Errorf("rejected_total{reason=replayed} = %v, want 3", got)
	}
	if res := f.call(tks[3], nil); res.StatusCode != http.StatusOK {
		t.Errorf("unused ticket refused: %d", res.StatusCode)
	}
}

func TestBrowserPage(t *testing.T) {
	const browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
	tests := []struct {
		name, acceptLanguage, lang, want string
	}{
		{"french by default", "", "fr", "Votre position dans la file"},
		{"french", "fr-FR,fr;q=0.9,en;q=0.5", "fr", "Attente estimée"},
		{"english", "en-GB,en;q=0.9,fr;q=0.8", "en", "Your place in line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, 1, nil)
			f.call("", nil)
			f.call("", nil)
			res := f.call("", nil, "Accept", browser, "Accept-Language", tt.acceptLanguage)
			if res.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("status %d", res.StatusCode)
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Fatalf("Content-Type %q", ct)
			}
			body := readAll(t, res)
			poll := res.Header.Get("Retry-After")
			for _, want := range []string{`<html lang="` + tt.lang + `">`, tt.want, `<dd>2</dd>`,
				`<meta http-equiv="refresh" content="` + poll + `">`} {
				if !strings.Contains(body, want) {
					t.Errorf("page lacks %q:\n%s", want, body)
				}
			}
			if strings.Contains(body, "<script") {
				t.Error("page has a script")
			}
			var ck *http.Cookie
			for _, c := range res.Cookies() {
				if c.Name == "rempart_ticket" {
					ck = c
				}
			}
			if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Value != res.Header.Get("Rempart-Ticket") {
				t.Fatalf("cookie %+v", ck)
			}

			// The cookie is accepted like the header, and cleared once used.
			f.clock.Advance(3 * time.Second)
			req := httptest.NewRequest(http.MethodGet, "/login", nil)
			req.Header.Set("Accept", browser)
			req.AddCookie(ck)
			rec := httptest.NewRecorder()
			f.h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("with the cookie: status %d", rec.Code)
			}
			if sc := rec.Header().Get("Set-Cookie"); !strings.Contains(sc, "rempart_ticket=;") || !strings.Contains(sc, "Max-Age=0") {
				t.Errorf("cookie not cleared: %q", sc)
			}
		})
	}
}

func TestFullPageForBrowsers(t *testing.T) {
	f := newFixture(t, 1, func(o *Options) { o.MaxWaiting = 1 })
	f.call("", nil)
	f.call("", nil)
	res := f.call("", nil, "Accept", "text/html", "Accept-Language", "en")
	body := readAll(t, res)
	if res.StatusCode != 503 || !strings.Contains(body, "The waiting line is full") || res.Header.Get("Rempart-Ticket") != "" {
		t.Errorf("status %d body %s", res.StatusCode, body)
	}
}

func readAll(t *testing.T, res *http.Response) string {
	t.Helper()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := res.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

func TestPrefersHTML(t *testing.T) {
	tests := []struct {
		accept string
		want   bool
	}{
		{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", true}, // Firefox, Chrome
		{"", false},
		{"*/*", false}, // curl
		{"application/json", false},
		{"application/problem+json, application/json;q=0.9", false},
		{"application/json, text/html;q=0.5", false},
		{"text/html;q=0.9, application/json;q=0.5", true},
		{"TEXT/HTML", true},
		{"text/html;q=0", false},
	}
	for _, tt := range tests {
		t.Run(tt.accept, func(t *testing.T) {
			if got := prefersHTML(tt.accept); got != tt.want {
				t.Errorf("prefersHTML(%q) = %v, want %v", tt.accept, got, tt.want)
			}
		})
	}
}

func TestLanguage(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "fr"},
		{"de-DE", "fr"},
		{"en", "en"},
		{"en-US,en;q=0.9", "en"},
		{"fr-CA,en;q=0.9", "fr"},
		{"de,en;q=0.7,fr;q=0.5", "en"},
		{"EN-gb", "en"},
	}
	for _, tt := range tests {
		if got := language(tt.in); got != tt.want {
			t.Errorf("language(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestStatsAndMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFixture(t, 1, func(o *Options) { o.Registerer = reg })
	f.call("", nil)
	f.call("", nil)
	f.call("", nil)
	f.clock.Advance(500 * time.Millisecond)
	s := f.room.Stats()
	// Two ahead of a newcomer, 0.5 served of the first: 2.5 s at 1/s.
	if s.Waiting != 2 || s.AdmitRate != 1 || s.OldestWait != 500*time.Millisecond || s.Wait != 2500*time.Millisecond {
		t.Errorf("stats %+v", s)
	}
	for name, want := range map[string]float64{
		"rempart_waitroom_waiting":             2,
		"rempart_waitroom_admitted_total":      1,
		"rempart_waitroom_issued_total":        2,
		"rempart_waitroom_admit_rate":          1,
		"rempart_waitroom_oldest_wait_seconds": 0.5,
	} {
		if got := counter(t, reg, name, "room", "login-test"); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// counter reads the value of the series of name that has label = value.
func counter(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					switch {
					case m.Counter != nil:
						return m.GetCounter().GetValue()
					case m.Gauge != nil:
						return m.GetGauge().GetValue()
					}
				}
			}
		}
	}
	t.Fatalf("no series %s{%s=%q}", name, label, value)
	return 0
}

func TestPanicIsNotLeftInFlight(t *testing.T) {
	f := newFixture(t, 10, nil)
	h := f.room.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
	func() {
		defer func() { _ = recover() }()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/login", nil).WithContext(context.Background()))
	}()
	f.room.mu.Lock()
	defer f.room.mu.Unlock()
	if f.room.est.inflight != 0 {
		t.Errorf("in flight %d after a panic, want 0", f.room.est.inflight)
	}
}

// discard is a ResponseWriter that costs nothing, so the benchmarks measure
// the room.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkPassThrough is what the room costs a login while demand is below
// capacity: two lock round trips, no ticket.
func BenchmarkPassThrough(b *testing.B) {
	room := New(Options{Key: testKey, MinRate: 1e9, MaxRate: 1e9})
	h := room.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	req := httptest.NewRequest(http.MethodPost, "/login", nil)
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
}

// BenchmarkPoll is what one poll of a waiting client costs: verify the
// ticket, re-sign it, write the problem document.
func BenchmarkPoll(b *testing.B) {
	clock := newFakeClock()
	room := New(Options{Key: testKey, MinRate: 0.001, MaxRate: 0.001, Clock: clock})
	h := room.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/login", nil))
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/login", nil))
	req := httptest.NewRequest(http.MethodPost, "/login", nil)
	req.Header.Set("Rempart-Ticket", rec.Header().Get("Rempart-Ticket"))
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(&discard{h: http.Header{}}, req)
	}
}
