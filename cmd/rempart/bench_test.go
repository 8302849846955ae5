package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/config"
)

// TestParseWrk reads wrk reports captured from real runs
// (testdata/bench/wrk-*.txt).
func TestParseWrk(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	for _, c := range []struct {
		file    string
		want    loadResult
		wantErr string
	}{
		{file: "wrk-ok.txt", want: loadResult{Requests: 2846, Seconds: 2.05, RPS: 1390.28, Mean: ms(6.37), P99: ms(72.35)}},
		{file: "wrk-non2xx.txt", want: loadResult{Requests: 2298, Seconds: 2.08, RPS: 1105.31, Mean: ms(6.80), P99: ms(40.53), Non2xx: 2298}},
		{file: "wrk-errors.txt", want: loadResult{Requests: 294, Seconds: 3.01, RPS: 97.83, Mean: ms(44.95), P99: ms(212.52), Non2xx: 55, Errors: 12}},
		{file: "wrk-no-latency.txt", wantErr: "no 99% line"},
		{file: "wrk-truncated.txt", wantErr: "no \"N requests in T\" line"},
		{file: "wrk-empty.txt", wantErr: "no \"N requests in T\" line"},
	} {
		t.Run(c.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "bench", c.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseWrk(string(b))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got.Seconds-c.want.Seconds) > 1e-9 {
				t.Errorf("seconds = %v, want %v", got.Seconds, c.want.Seconds)
			}
			got.Seconds = c.want.Seconds
			if got != c.want {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestWrkDurationUnits(t *testing.T) {
	for _, c := range []struct {
		num, unit string
		want      time.Duration
	}{
		{"812.00", "us", 812 * time.Microsecond},
		{"3.52", "ms", 3520 * time.Microsecond},
		{"1.50", "s", 1500 * time.Millisecond},
		{"1.00", "m", time.Minute},
	} {
		t.Run(c.num+c.unit, func(t *testing.T) {
			got, err := wrkDuration(c.num, c.unit)
			if err != nil || got != c.want {
				t.Fatalf("= %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

func TestParseRempartMetrics(t *testing.T) {
	const text = `# HELP go_memstats_mallocs_total Total number of heap objects allocated.
# TYPE go_memstats_mallocs_total counter
go_memstats_mallocs_total 1.234567e+06
rempart_requests_total{code="200",route="bench-normal",tier="normal"} 900
rempart_requests_total{code="503",route="bench-normal",tier="normal"} 40
rempart_requests_total{code="429",route="bench-normal",tier="important"} 2
rempart_requests_total{code="200",route="bench-critical",tier="critical"} 7
rempart_admission_limit{upstream="echo/echo"} 13
rempart_admission_limit{upstream="identity/identity"} 8
rempart_admission_limit{upstream="echoes/echoes"} 5
rempart_sched_latency_p90_seconds 0.0125
`
	for _, c := range []struct {
		name, text, route string
		want              rempartCounters
		wantErr           bool
	}{
		{name: "normal route, every tier", text: text, route: "bench-normal",
			want: rempartCounters{mallocs: 1234567, codes: map[string]float64{"200": 900, "503": 40, "429": 2}, limit: 13, sched: 0.0125}},
		{name: "other route", text: text, route: "bench-critical",
			want: rempartCounters{mallocs: 1234567, codes: map[string]float64{"200": 7}, limit: 13, sched: 0.0125}},
		{name: "no admission limit or scheduling latency", text: "go_memstats_mallocs_total 5\n", route: "r",
			want: rempartCounters{mallocs: 5, codes: map[string]float64{}, limit: -1, sched: -1}},
		{name: "no malloc counter", text: "rempart_requests_total{code=\"200\",route=\"r\"} 1\n", route: "r", wantErr: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseRempartMetrics(strings.NewReader(c.text), c.route)
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, want error %t", err, c.wantErr)
			}
			if c.wantErr {
				return
			}
			if got.mallocs != c.want.mallocs || got.limit != c.want.limit || got.sched != c.want.sched || len(got.codes) != len(c.want.codes) {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
			for k, v := range c.want.codes {
				if got.codes[k] != v {
					t.Errorf("code %s: %v, want %v", k, got.codes[k], v)
				}
			}
		})
	}
}

func TestRatios(t *testing.T) {
	row := func(run int, target string, rps float64, requests, non2xx int64) benchRow {
		return benchRow{Run: run, Target: target, loadResult: loadResult{RPS: rps, Requests: requests, Non2xx: non2xx}}
	}
	for _, c := range []struct {
		name string
		rows []benchRow
		want map[string]map[int]float64
	}{
		{name: "two runs, shed answers are not goodput", rows: []benchRow{
			row(1, "direct", 30000, 180000, 0), row(1, "nginx", 20000, 120000, 0),
			row(1, "rempart normal", 5000, 30000, 7500), row(1, "rempart critical", 16000, 96000, 0),
			row(2, "nginx", 10000, 60000, 0), row(2, "rempart normal", 8000, 48000, 0),
			row(2, "rempart critical", 12000, 72000, 0),
			{Run: 2, Target: "nginx", Rate: 5000, loadResult: loadResult{RPS: 5000, Requests: 30000}},
			{Run: 2, Target: "rempart normal", Rate: 5000, loadResult: loadResult{RPS: 5000, Requests: 30000}},
		}, want: map[string]map[int]float64{"rempart normal": {1: 0.1875, 2: 0.8}, "rempart critical": {1: 0.8, 2: 1.2}}},
		{name: "a run without nginx has no ratio", rows: []benchRow{
			row(1, "rempart normal", 5000, 30000, 0), row(2, "nginx", 10000, 60000, 0), row(2, "rempart normal", 5000, 30000, 0),
		}, want: map[string]map[int]float64{"rempart normal": {2: 0.5}}},
		{name: "nginx answered nothing well", rows: []benchRow{
			row(1, "nginx", 10000, 60000, 60000), row(1, "rempart normal", 5000, 30000, 0),
		}, want: map[string]map[int]float64{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := ratios(c.rows)
			if len(got) != len(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			for k, want := range c.want {
				if len(got[k]) != len(want) {
					t.Fatalf("%s: got %v, want %v", k, got[k], want)
				}
				for run, w := range want {
					if g, ok := got[k][run]; !ok || math.Abs(g-w) > 1e-9 {
						t.Errorf("%s run %d: %v, want %v", k, run, g, w)
					}
				}
			}
		})
	}
}

func TestAddedP99(t *testing.T) {
	ms := time.Millisecond
	row := func(run int, target string, rate float64, p99 time.Duration) benchRow {
		return benchRow{Run: run, Target: target, Rate: rate, loadResult: loadResult{RPS: rate, P99: p99}}
	}
	for _, c := range []struct {
		name string
		rows []benchRow
		want map[string]map[int]time.Duration
	}{
		{name: "paced rows only, same run", rows: []benchRow{
			row(1, "nginx", 0, 9*ms), row(1, "rempart normal", 0, 90*ms),
			row(1, "nginx", 9000, 2*ms), row(1, "rempart normal", 9000, 5*ms), row(1, "rempart critical", 9000, 1*ms),
			row(2, "nginx", 8000, 3*ms), row(2, "rempart normal", 8000, 3500*time.Microsecond),
		}, want: map[string]map[int]time.Duration{"rempart normal": {1: 3 * ms, 2: 500 * time.Microsecond}, "rempart critical": {1: -ms}}},
		{name: "nginx fell behind its pace: no figure for that run", rows: []benchRow{
			{Run: 1, Target: "nginx", Rate: 9000, loadResult: loadResult{RPS: 5000, P99: 2 * time.Second}},
			{Run: 1, Target: "rempart normal", Rate: 9000, loadResult: loadResult{RPS: 3000, P99: 4 * time.Second}},
			{Run: 2, Target: "nginx", Rate: 8000, loadResult: loadResult{RPS: 7900, P99: 3 * ms}},
			{Run: 2, Target: "rempart normal", Rate: 8000, loadResult: loadResult{RPS: 3000, P99: 3 * time.Second}},
		}, want: map[string]map[int]time.Duration{"rempart normal": {2: 3*time.Second - 3*ms}}},
		{name: "not paced", rows: []benchRow{row(1, "nginx", 0, 9*ms), row(1, "rempart normal", 0, 90*ms)},
			want: map[string]map[int]time.Duration{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := addedP99(c.rows)
			if len(got) != len(c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
			for k, want := range c.want {
				if !maps.Equal(got[k], want) {
					t.Errorf("%s: got %v, want %v", k, got[k], want)
				}
			}
		})
	}
}

// TestPacedLoad checks the pacing against the echo back end: never more
// requests than were due (a closed loop would send thousands).
func TestPacedLoad(t *testing.T) {
	echo, err := startEcho()
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	const rate, conns = 200, 4
	d := time.Second
	r, err := goLoader{rate: rate}.Load(context.Background(), "http://"+echo.addr+"/echo", d, conns)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests == 0 || r.Requests > rate*int64(d/time.Second)+conns || r.Non2xx != 0 {
		t.Fatalf("%+v: want 1 to %d answers, all 2xx", r, rate+conns)
	}
}

func TestSummarize(t *testing.T) {
	lat := make([]time.Duration, 0, 200)
	for i := 200; i >= 1; i-- { // unsorted on purpose
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	r := summarize(lat, 2*time.Second, 3, 1)
	want := loadResult{Requests: 200, Seconds: 2, RPS: 100, Mean: 100500 * time.Microsecond, P99: 198 * time.Millisecond, Non2xx: 3, Errors: 1}
	if r != want {
		t.Fatalf("got  %+v\nwant %+v", r, want)
	}
}

func TestFmtNon2xx(t *testing.T) {
	for _, c := range []struct {
		n     int64
		codes map[string]float64
		want  string
	}{
		{0, nil, "0"},
		{1200, map[string]float64{"503": 1150, "429": 50}, "1200 (429×50 503×1150)"},
	} {
		t.Run(c.want, func(t *testing.T) {
			if got := fmtNon2xx(c.n, c.codes); got != c.want {
				t.Fatalf("= %q, want %q", got, c.want)
			}
		})
	}
}

// TestBenchRempartConfig checks that the generated configuration is one
// rempart accepts: no estate, the echo upstream, a route per tier.
func TestBenchRempartConfig(t *testing.T) {
	cfg, err := config.Parse("bench.yaml", []byte(benchRempartConfig("127.0.0.1:4321", "info")))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.EstateEnabled() || len(cfg.Upstreams) != 1 || cfg.Upstreams[0].URL != "http://127.0.0.1:4321" {
		t.Fatalf("estate %t, upstreams %+v", cfg.EstateEnabled(), cfg.Upstreams)
	}
	if len(cfg.Routes) != 2 || cfg.Routes[0].Tier != "normal" || cfg.Routes[1].Tier != "critical" {
		t.Fatalf("routes %+v", cfg.Routes)
	}
}

// TestBenchNginxConfigAccepted has nginx check the plain proxy's
// configuration (nginx -t).
func TestBenchNginxConfigAccepted(t *testing.T) {
	bin := findNginx()
	if bin == "" {
		t.Skip("nginx not installed (" + nginxInstall + ")")
	}
	c, err := newBenchNginx(bin, "127.0.0.1:4321")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(c.dir)
	args := append([]string{"-t", "-q"}, c.args...)
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

// TestBenchEchoOnly runs the harness for real against its echo back end
// alone: two runs of 300 requests with the built-in generator, this
// process's CPU as the "proxy's", the report at the end.
func TestBenchEchoOnly(t *testing.T) {
	echo, err := startEcho()
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	targets := []*benchTarget{{name: "direct", url: "http://" + echo.addr + "/echo", pid: os.Getpid()}}
	var progress bytes.Buffer
	b := &bench{loader: goLoader{maxRequests: 300}, runs: 2, duration: 30 * time.Second, conns: 8, progress: &progress}
	rows, err := b.run(context.Background(), targets)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2", len(rows))
	}
	for _, r := range rows {
		if r.Requests != 300 || r.Non2xx != 0 || r.Errors != 0 || r.P99 < r.Mean/10 || r.CPUPerReq < 0 {
			t.Errorf("run %d: %+v", r.Run, r)
		}
	}
	if n := strings.Count(progress.String(), "\n"); n != 2 {
		t.Errorf("%d progress lines, want 2:\n%s", n, progress.String())
	}
	var out bytes.Buffer
	writeBenchReport(&out, benchHeader{Loader: goLoader{}.Name(), Conns: 8, Runs: 2, Duration: time.Second}, rows)
	if s := out.String(); !strings.Contains(s, "direct") || !strings.Contains(s, "no nginx runs") {
		t.Errorf("report:\n%s", s)
	}
}

// TestWrkAgainstEcho drives the echo back end with the real wrk for a
// second, when wrk is installed: the flags bench passes and the report it
// parses.
func TestWrkAgainstEcho(t *testing.T) {
	bin, err := exec.LookPath("wrk")
	if err != nil {
		t.Skip("wrk not installed (apt-get install wrk)")
	}
	echo, err := startEcho()
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	r, err := wrkLoader{bin: bin, threads: 1}.Load(context.Background(), "http://"+echo.addr+"/echo", time.Second, 4)
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests == 0 || r.Non2xx != 0 || r.P99 == 0 {
		t.Fatalf("%+v", r)
	}
}

// TestEchoAnswer checks the back end's answer: a few hundred bytes of
// JSON with its length, so the connection is kept alive.
func TestEchoAnswer(t *testing.T) {
	echo, err := startEcho()
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	resp, err := http.Get("http://" + echo.addr + "/x")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(b)) || len(b) < 200 || len(b) > 1000 || !json.Valid(b) {
		t.Fatalf("status %d, length %d, %d bytes: %.80q", resp.StatusCode, resp.ContentLength, len(b), b)
	}
}

// TestReportFiguresOnTheirRun checks that a run without a figure (nginx
// fell behind its pace in run 1) leaves its line without one and does not
// shift the next run's onto it.
func TestReportFiguresOnTheirRun(t *testing.T) {
	ms := time.Millisecond
	rows := []benchRow{
		{Run: 1, Target: "nginx", loadResult: loadResult{RPS: 16000, Requests: 96000}},
		{Run: 1, Target: "rempart normal", loadResult: loadResult{RPS: 4000, Requests: 24000}},
		{Run: 1, Target: "nginx", Rate: 8000, loadResult: loadResult{RPS: 5000, Requests: 30000, P99: 900 * ms}},
		{Run: 1, Target: "rempart normal", Rate: 8000, loadResult: loadResult{RPS: 4000, Requests: 24000, P99: 2000 * ms}},
		{Run: 2, Target: "nginx", loadResult: loadResult{RPS: 16000, Requests: 96000}},
		{Run: 2, Target: "rempart normal", loadResult: loadResult{RPS: 8000, Requests: 48000}},
		{Run: 2, Target: "nginx", Rate: 8000, loadResult: loadResult{RPS: 8000, Requests: 48000, P99: 4 * ms}},
		{Run: 2, Target: "rempart normal", Rate: 8000, loadResult: loadResult{RPS: 8000, Requests: 48000, P99: 7 * ms}},
	}
	var out bytes.Buffer
	writeBenchReport(&out, benchHeader{Loader: "wrk -t2", Conns: 64, Runs: 2, Duration: 6 * time.Second}, rows)
	lines := strings.Split(out.String(), "\n")
	// find is the line of run (its first field) that holds target, or
	// with run "", the line that starts with target.
	find := func(run, target string) string {
		for _, l := range lines {
			f := strings.Fields(l)
			if run == "" && strings.HasPrefix(l, target) || run != "" && len(f) > 0 && f[0] == run && strings.Contains(l, target) {
				return l
			}
		}
		t.Fatalf("no line %q %q in\n%s", run, target, out.String())
		return ""
	}
	for _, c := range []struct{ run, target, want, not string }{
		{"1", "rempart normal @8000/s (behind)", "", "p99"},
		{"2", "rempart normal @8000/s", "+3.00ms p99", ""},
		{"1", "rempart normal  ", "0.25×", ""},
		{"2", "rempart normal  ", "0.50×", ""},
		{"", "run 1: the paced load fell behind on nginx itself", "5000 of 8000/s", ""},
		{"", "rempart normal p99 minus nginx p99", "+3.00ms to +3.00ms over 1 run(s)", ""},
		{"", "rempart normal goodput / nginx goodput", "0.25–0.50× over 2 run(s)", ""},
	} {
		t.Run(c.run+" "+c.target, func(t *testing.T) {
			l := find(c.run, c.target)
			rest := l[strings.Index(l, c.target)+len(c.target):]
			if c.want != "" && !strings.Contains(l, c.want) || c.not != "" && strings.Contains(rest, c.not) {
				t.Errorf("%q: want %q, not %q", l, c.want, c.not)
			}
		})
	}
}
