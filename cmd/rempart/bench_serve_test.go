package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rempart/rempart/internal/config"
)

// BenchmarkProxiedRequest is one GET through `rempart serve` (run in this
// process, over loopback, the bench's configuration with the load's source on
// the scrubber's allow list, as `bench proxy --allow-loopback` puts it, so
// that no answer is a per-address 429) against the same
// GET sent to the echo back end directly, in the same run. Client and back
// end are in the process in both, so the difference in allocs/op and B/op
// is what rempart allocates for a proxied request; ns/op is the round trip
// on a shared machine, to compare within a run only. Requests go one at a
// time: nothing is shed.
//
//	go test -run '^$' -bench ProxiedRequest -benchmem -count 3 ./cmd/rempart/
func BenchmarkProxiedRequest(b *testing.B) {
	echo, err := startEcho()
	if err != nil {
		b.Fatal(err)
	}
	defer echo.Close()
	b.Run("direct", func(b *testing.B) { benchGET(b, "http://"+echo.addr+"/echo") })
	// A bare httputil.ReverseProxy (no buffer pool, default transport) in
	// front of the same back end: what any Go proxy costs, the floor to
	// compare rempart's pipeline with.
	base := &url.URL{Scheme: "http", Host: echo.addr}
	bare := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(base) }})
	defer bare.Close()
	b.Run("bare-reverseproxy", func(b *testing.B) { benchGET(b, bare.URL+"/echo") })
	// info is rempart's default log level (a line per request); at warn
	// the request line is not written.
	for _, level := range []string{"info", "warn"} {
		public := benchServe(b, echo.addr, level)
		for _, tr := range benchTiers {
			b.Run("rempart-"+tr+"-log-"+level, func(b *testing.B) { benchGET(b, "http://"+public+"/"+tr+"/echo") })
		}
	}
}

// benchGET sends b.N GETs on one kept-alive connection; any answer but 200
// fails the benchmark.
func benchGET(b *testing.B, url string) {
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	b.ReportAllocs()
	for b.Loop() {
		resp, err := hc.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: status %d", url, resp.StatusCode)
		}
	}
}

// benchServe runs serve() with the bench's configuration on loopback ports
// until the benchmark ends and returns its public address once ready. Its
// log (a line per request at info) goes to /dev/null: serve writes to
// os.Stderr, which is swapped while it starts.
func benchServe(b *testing.B, echoAddr, level string) string {
	b.Helper()
	cfg, err := config.Parse("bench.yaml", []byte(benchRempartConfig(echoAddr, level)))
	if err != nil {
		b.Fatal(err)
	}
	cfg.Listen, cfg.OpsListen, cfg.DataDir = "127.0.0.1:0", "127.0.0.1:0", b.TempDir()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan [2]string, 1)
	done := make(chan error, 1)
	exited := make(chan struct{})
	stderr := os.Stderr
	os.Stderr = null
	go func() {
		done <- serve(ctx, cfg, func(public, ops string) { addrs <- [2]string{public, ops} })
		close(exited)
	}()
	var a [2]string
	select {
	case a = <-addrs:
		os.Stderr = stderr
	case err := <-done:
		os.Stderr = stderr
		cancel()
		b.Fatalf("serve returned before listening: %v", err)
	}
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("serve: %v", err)
		}
		null.Close()
	})
	if err := waitReady(ctx, "http://"+a[1]+"/readyz", exited); err != nil {
		b.Fatal(err)
	}
	token, err := os.ReadFile(filepath.Join(cfg.DataDir, "admin", "ops-token"))
	if err != nil {
		b.Fatal(err)
	}
	if err := opsCall(ctx, a[1], strings.TrimSpace(string(token)), http.MethodPost, "/ops/scrub/lists/allow",
		`{"cidr":"127.0.0.1/32","ttl":"1h","reason":"BenchmarkProxiedRequest: the load generator"}`, http.StatusCreated); err != nil {
		b.Fatalf("allow-list the load's source: %v", err)
	}
	return a[0]
}
