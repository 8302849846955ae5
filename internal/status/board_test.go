package status

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/tier"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var cet = time.FixedZone("CET", 3600)

// The morning of the incident, in the busiest week of the year.
var morning = time.Date(2025, 12, 22, 8, 0, 0, 0, cet)

type lineFunc func(string) (int, time.Duration)

func (f lineFunc) Line(c string) (int, time.Duration) { return f(c) }

type breakerFunc func(string) string

func (f breakerFunc) BreakerState(c string) string { return f(c) }

func newBoard(t testing.TB, channels []Channel, mod func(*Options)) (*Board, *fakeClock) {
	t.Helper()
	clock := &fakeClock{t: morning}
	o := Options{PageID: "rempart-demo", Name: "Banque démo", URL: "https://status.banque.example", Location: cet, Clock: clock}
	if mod != nil {
		mod(&o)
	}
	b, err := New(channels, o)
	if err != nil {
		t.Fatal(err)
	}
	return b, clock
}

// login is the sign-in channel the waiting room stands in front of.
var login = Channel{Name: "login", Tier: tier.Important, TitleFR: "Connexion à l'espace client", TitleEN: "Signing in"}

// incident replays a minute of the day on a board of every default channel
// plus login: the core is down, stand-in and last known values answer,
// documents are shed, parcel tracking fails, logins wait in line.
func incident(t testing.TB) *Board {
	t.Helper()
	b, clock := newBoard(t, append(DefaultChannels(), login), func(o *Options) {
		o.Line = lineFunc(func(c string) (int, time.Duration) {
			if c == "login" {
				return 41250, 7 * time.Minute
			}
			return 0, 0
		})
	})
	asOf := morning.Add(-4 * time.Minute)
	for range 60 {
		for range 20 {
			b.Observe("card-authorize", Outcome{Status: 200, Latency: 30 * time.Millisecond, Fallback: true})
			b.Observe("atm-withdraw", Outcome{Status: 200, Latency: 40 * time.Millisecond})
			b.Observe("3ds-challenge", Outcome{Status: 200, Latency: 200 * time.Millisecond})
			b.Observe("3ds-verify", Outcome{Status: 200, Latency: 20 * time.Millisecond})
			b.Observe("instant-transfer", Outcome{Status: 202, Latency: 15 * time.Millisecond, Fallback: true})
			b.Observe("accounts", Outcome{Status: 200, Latency: 3 * time.Second})
			b.Observe("balance", Outcome{Status: 200, Latency: 5 * time.Millisecond, Fallback: true, AsOf: asOf})
			b.Observe("transactions", Outcome{Status: 200, Latency: 50 * time.Millisecond})
			b.Observe("parcel", Outcome{Status: 503, Latency: 10 * time.Second, UpstreamFailure: true})
			b.Observe("login", Outcome{Status: 200, Latency: 400 * time.Millisecond})
			b.Observe("login", Outcome{Status: 401}) // wrong passwords say nothing
		}
		for i := range 20 { // 30 % served, the rest shed
			if i < 6 {
				b.Observe("documents", Outcome{Status: 200, Latency: 80 * time.Millisecond})
			} else {
				b.Observe("documents", Outcome{Status: 503, Shed: true})
			}
		}
		clock.Advance(time.Second)
		b.Tick()
	}
	return b
}

func TestIncidentLevels(t *testing.T) {
	b := incident(t)
	want := map[string]struct {
		level   Level
		partial bool
		fr, en  string
	}{
		"card-authorize":   {Degraded, false, "mode secours", "stand-in mode"},
		"3ds-challenge":    {Up, false, "Fonctionne normalement", "Working normally"},
		"3ds-verify":       {Up, false, "Fonctionne normalement", "Working normally"},
		"atm-withdraw":     {Up, false, "Fonctionne normalement", "Working normally"},
		"instant-transfer": {Degraded, false, "exécutés avec un peu de retard", "carried out a little later"},
		"accounts":         {Degraded, false, "lenteurs", "slowly"},
		"balance":          {Degraded, false, "(état au 07:56 CET)", "(as of 07:56 CET)"},
		"transactions":     {Up, false, "Fonctionne normalement", "Working normally"},
		"documents":        {Down, true, "Partiellement indisponible", "Partly unavailable"},
		"parcel":           {Down, false, "Indisponible pour le moment", "Unavailable at the moment"},
		"login":            {Degraded, false, "file d'attente (attente estimée : environ 7 min)", "waiting line (estimated wait: about 7 min)"},
	}
	got := b.Channels()
	if len(got) != len(want) {
		t.Fatalf("%d channels, want %d", len(got), len(want))
	}
	for _, s := range got {
		w := want[s.Name]
		if s.Level != w.level || s.Partial != w.partial || !strings.Contains(s.FR, w.fr) || !strings.Contains(s.EN, w.en) {
			t.Errorf("%s: %v partial=%v %q / %q; want %v partial=%v containing %q / %q",
				s.Name, s.Level, s.Partial, s.FR, s.EN, w.level, w.partial, w.fr, w.en)
		}
		if l, ok := b.Level(s.Name); !ok || l != s.Level {
			t.Errorf("Level(%q) = %v, %v", s.Name, l, ok)
		}
	}
}

// TestSummaryGolden checks status.json against testdata/summary.golden.json:
// Statuspage's summary.json shape, field by field. Run with -update to
// rewrite it after a deliberate change, and read the diff.
func TestSummaryGolden(t *testing.T) {
	b := incident(t)
	rec := httptest.NewRecorder()
	b.ServeJSON(rec, httptest.NewRequest(http.MethodGet, "/status.json", nil))
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var got bytes.Buffer
	if err := json.Indent(&got, rec.Body.Bytes(), "", "  "); err != nil {
		t.Fatal(err)
	}
	got.WriteByte('\n')
	path := filepath.Join("testdata", "summary.golden.json")
	if *update {
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("status.json differs from %s (run with -update to accept):\n%s", path, got.String())
	}

	// The shape status tooling relies on, whatever the golden file says.
	var s map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"page", "components", "incidents", "scheduled_maintenances", "status"} {
		if _, ok := s[k]; !ok {
			t.Errorf("no %q", k)
		}
	}
	valid := map[string]bool{"operational": true, "degraded_performance": true, "partial_outage": true, "major_outage": true}
	for _, c := range s["components"].([]any) {
		c := c.(map[string]any)
		if !valid[c["status"].(string)] {
			t.Errorf("component %v: status %q", c["id"], c["status"])
		}
		for _, k := range []string{"id", "name", "created_at", "updated_at", "position", "description", "showcase", "group_id", "page_id", "group", "only_show_if_degraded"} {
			if _, ok := c[k]; !ok {
				t.Errorf("component %v lacks %q", c["id"], k)
			}
		}
	}
}

func TestOverall(t *testing.T) {
	st := func(name string, tr tier.Tier, l Level, partial bool) ChannelStatus {
		return ChannelStatus{Channel: Channel{Name: name, Tier: tr}, Level: l, Partial: partial}
	}
	tests := []struct {
		name   string
		states []ChannelStatus
		want   string
	}{
		{"all up", []ChannelStatus{st("a", tier.Critical, Up, false), st("b", tier.Normal, Up, false)}, "none"},
		{"one degraded", []ChannelStatus{st("a", tier.Critical, Degraded, false), st("b", tier.Normal, Up, false)}, "minor"},
		{"sheddable down", []ChannelStatus{st("a", tier.Critical, Up, false), st("b", tier.Sheddable, Down, false)}, "major"},
		{"critical partly down", []ChannelStatus{st("a", tier.Critical, Down, true), st("b", tier.Normal, Up, false)}, "major"},
		{"critical down", []ChannelStatus{st("a", tier.Critical, Down, false), st("b", tier.Normal, Up, false)}, "critical"},
		{"everything down", []ChannelStatus{st("a", tier.Normal, Down, false), st("b", tier.Sheddable, Down, false)}, "critical"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := overallOf(tt.states).indicator; got != tt.want {
				t.Errorf("indicator %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHTMLPage(t *testing.T) {
	b := incident(t)
	rec := httptest.NewRecorder()
	b.ServeHTML(rec, httptest.NewRequest(http.MethodGet, "/status", nil))
	body := rec.Body.String()
	if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	for _, s := range b.Channels() {
		for _, want := range []string{s.TitleFR, s.TitleEN, s.FR, s.EN} {
			if !strings.Contains(body, escaped(want)) {
				t.Errorf("page lacks %q", want)
			}
		}
	}
	for _, want := range []string{`<html lang="fr">`, `<p lang="en" class="en">`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, want := range []string{"Perturbé", "Degraded performance",
		"Partiellement indisponible", "Partial outage", "Indisponible", "Major outage", "Normal", "Operational",
		"Certains services sont indisponibles.", "Partial System Outage", "Vérifié le 22/12/2025 à 08:01:00 CET"} {
		if !strings.Contains(body, escaped(want)) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script") {
		t.Error("the page has a script")
	}
	if len(body) > 16<<10 {
		t.Errorf("page is %d bytes: keep it light", len(body))
	}
}

// escaped is s the way html/template writes text.
func escaped(s string) string {
	return strings.NewReplacer("'", "&#39;", "&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;").Replace(s)
}

func TestServing(t *testing.T) {
	b, clock := newBoard(t, DefaultChannels(), nil)
	for _, tt := range []struct {
		name  string
		serve http.HandlerFunc
	}{{"html", b.ServeHTML}, {"json", b.ServeJSON}} {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tt.serve(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			h := rec.Header()
			if rec.Code != 200 || h.Get("Cache-Control") != "public, max-age=5" || h.Get("Etag") == "" || h.Get("Last-Modified") == "" {
				t.Fatalf("status %d headers %v", rec.Code, h)
			}
			if h.Get("Content-Length") != strconv.Itoa(rec.Body.Len()) {
				t.Errorf("Content-Length %s for %d bytes", h.Get("Content-Length"), rec.Body.Len())
			}

			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.Header.Set("If-None-Match", h.Get("Etag"))
			rec2 := httptest.NewRecorder()
			tt.serve(rec2, req)
			if rec2.Code != http.StatusNotModified || rec2.Body.Len() != 0 {
				t.Errorf("conditional GET: %d with %d bytes", rec2.Code, rec2.Body.Len())
			}

			rec3 := httptest.NewRecorder()
			tt.serve(rec3, httptest.NewRequest(http.MethodHead, "/", nil))
			if rec3.Code != 200 || rec3.Body.Len() != 0 {
				t.Errorf("HEAD: %d with %d bytes", rec3.Code, rec3.Body.Len())
			}

			rec4 := httptest.NewRecorder()
			tt.serve(rec4, httptest.NewRequest(http.MethodPost, "/", nil))
			if rec4.Code != http.StatusMethodNotAllowed || rec4.Header().Get("Allow") != "GET, HEAD" {
				t.Errorf("POST: %d, Allow %q", rec4.Code, rec4.Header().Get("Allow"))
			}
		})
	}
	// The JSON only changes when a level does, so pollers get 304s.
	etag := jsonETag(b)
	clock.Advance(10 * time.Second)
	b.Tick()
	if jsonETag(b) != etag {
		t.Error("status.json changed with nothing to report")
	}
}

func jsonETag(b *Board) string {
	rec := httptest.NewRecorder()
	b.ServeJSON(rec, httptest.NewRequest(http.MethodGet, "/status.json", nil))
	return rec.Header().Get("Etag")
}

func TestBreakerAndRecovery(t *testing.T) {
	state := "closed"
	var mu sync.Mutex
	b, clock := newBoard(t, DefaultChannels()[:1], func(o *Options) {
		o.Breakers = breakerFunc(func(string) string { mu.Lock(); defer mu.Unlock(); return state })
	})
	step := func(n int, o Outcome) {
		for range n {
			for range 20 {
				b.Observe("card-authorize", o)
			}
			clock.Advance(time.Second)
			b.Tick()
		}
	}
	level := func() Level { l, _ := b.Level("card-authorize"); return l }

	step(5, Outcome{Status: 200})
	if level() != Up {
		t.Fatalf("healthy: %v", level())
	}
	mu.Lock()
	state = "open"
	mu.Unlock()
	step(1, Outcome{Status: 200, Fallback: true})
	if level() != Up {
		t.Fatalf("one second after the breaker opened: %v, want up still (RaiseAfter)", level())
	}
	step(2, Outcome{Status: 200, Fallback: true})
	if level() != Degraded {
		t.Fatalf("breaker open, stand-in answering: %v, want degraded", level())
	}
	mu.Lock()
	state = "closed"
	mu.Unlock()
	// The fallbacks leave the 30 s window, then the level must hold 30 s more.
	step(30, Outcome{Status: 200})
	if level() != Degraded {
		t.Fatalf("just recovered: %v, want degraded until it has held", level())
	}
	step(31, Outcome{Status: 200})
	if level() != Up {
		t.Fatalf("recovered for a minute: %v, want up", level())
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	_ = incidentWith(t, reg)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "rempart_status_level" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ch, tr string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "channel":
					ch = l.GetValue()
				case "tier":
					tr = l.GetValue()
				}
			}
			got[ch+"/"+tr] = m.GetGauge().GetValue()
		}
	}
	for k, want := range map[string]float64{"card-authorize/critical": 1, "parcel/sheddable": 2, "atm-withdraw/critical": 0} {
		if got[k] != want {
			t.Errorf("rempart_status_level{%s} = %v, want %v", k, got[k], want)
		}
	}
}

func incidentWith(t *testing.T, reg prometheus.Registerer) *Board {
	b, clock := newBoard(t, DefaultChannels(), func(o *Options) { o.Registerer = reg })
	for range 5 {
		for range 20 {
			b.Observe("card-authorize", Outcome{Status: 200, Fallback: true})
			b.Observe("parcel", Outcome{Status: 504})
			b.Observe("atm-withdraw", Outcome{Status: 200})
		}
		clock.Advance(time.Second)
		b.Tick()
	}
	return b
}

func TestNewRefusesBadChannels(t *testing.T) {
	for name, chans := range map[string][]Channel{
		"no name":   {{TitleFR: "x"}},
		"duplicate": {DefaultChannels()[0], DefaultChannels()[0]},
	} {
		if _, err := New(chans, Options{}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// sink is a ResponseWriter that copies the body into a reused buffer, as a
// real one copies it into its bufio.Writer, and does nothing else: the
// benchmarks measure the handler plus the copy.
type sink struct {
	h   http.Header
	buf []byte
}

func (d *sink) Header() http.Header         { return d.h }
func (d *sink) Write(b []byte) (int, error) { d.buf = append(d.buf[:0], b...); return len(b), nil }
func (d *sink) WriteHeader(int)             {}

// BenchmarkServeHTML measures serving /status: it should cost about what
// writing its bytes costs (BenchmarkWriteBytes), whatever the load.
func BenchmarkServeHTML(b *testing.B) {
	board := incident(b)
	req := httptest.NewRequest(http.MethodGet, "/status", nil)
	b.SetBytes(int64(len(board.pages.Load().html.body)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &sink{h: http.Header{}}
		for pb.Next() {
			board.ServeHTML(w, req)
		}
	})
}

// BenchmarkWriteBytes is the floor BenchmarkServeHTML is compared with:
// copying the page's bytes and nothing else.
func BenchmarkWriteBytes(b *testing.B) {
	body := incident(b).pages.Load().html.body
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &sink{h: http.Header{}}
		for pb.Next() {
			_, _ = w.Write(body)
		}
	})
}

func BenchmarkServeJSON(b *testing.B) {
	board := incident(b)
	req := httptest.NewRequest(http.MethodGet, "/status.json", nil)
	b.SetBytes(int64(len(board.pages.Load().json.body)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := &sink{h: http.Header{}}
		for pb.Next() {
			board.ServeJSON(w, req)
		}
	})
}

// BenchmarkObserve measures what every request through the gateway pays.
func BenchmarkObserve(b *testing.B) {
	board, _ := newBoard(b, DefaultChannels(), nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			board.Observe("card-authorize", Outcome{Status: 200, Latency: 20 * time.Millisecond})
		}
	})
}

// TestHTMLPageLanguage: ?lang= gives the page in that one language, with a
// link to the other; anything else, both.
func TestHTMLPageLanguage(t *testing.T) {
	b := incident(t)
	for _, c := range []struct {
		query         string
		want, notWant []string
	}{
		{"?lang=fr", []string{`<html lang="fr">`, "Indisponible", "Vérifié le 22/12/2025", `href="/status?lang=en"`, escaped("Retraits aux distributeurs")},
			[]string{"Major outage", "Cash withdrawals at ATMs"}},
		{"?lang=en", []string{`<html lang="en">`, "Major outage", "Checked on 22 Dec 2025", `href="/status?lang=fr"`, "Cash withdrawals at ATMs"},
			[]string{"Indisponible", escaped("Retraits aux distributeurs")}},
		{"?lang=de", []string{`<html lang="fr">`, "Indisponible", "Major outage"}, nil},
		{"", []string{`<html lang="fr">`, "Indisponible", "Major outage"}, nil},
	} {
		t.Run(c.query, func(t *testing.T) {
			rec := httptest.NewRecorder()
			b.ServeHTML(rec, httptest.NewRequest(http.MethodGet, "/status"+c.query, nil))
			body := rec.Body.String()
			for _, w := range c.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, w := range c.notWant {
				if strings.Contains(body, w) {
					t.Errorf("page has %q", w)
				}
			}
		})
	}
}
