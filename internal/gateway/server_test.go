package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"
)

// running is a Server started on loopback ports chosen by the kernel.
type running struct {
	srv        *Server
	public     string // http://host:port
	ops        string
	cancel     context.CancelFunc
	done       chan error // receives Run's result
	httpClient *http.Client
}

func run(t *testing.T, public http.Handler, drain time.Duration, deps ...Dependency) *running {
	t.Helper()
	ops := http.NewServeMux()
	ops.HandleFunc("GET /ops/hello", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") })
	srv := &Server{
		Public: public, Ops: ops,
		Metrics:    http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "metrics") }),
		PublicAddr: "127.0.0.1:0", OpsAddr: "127.0.0.1:0", DrainTimeout: drain, Dependencies: deps,
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	pub, opsAddr := srv.Addrs()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{srv: srv, public: "http://" + pub, ops: "http://" + opsAddr, cancel: cancel,
		done: make(chan error, 1), httpClient: &http.Client{Transport: &http.Transport{}}}
	go func() { r.done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-r.done
		r.httpClient.CloseIdleConnections()
	})
	waitFor(t, srv.Ready, true)
	return r
}

// waitFor yields until cond() is want. It asserts nothing about time: if the
// condition never comes, the test binary's own -timeout reports it.
func waitFor(t *testing.T, cond func() bool, want bool) {
	t.Helper()
	for cond() != want {
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

func (r *running) get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := r.httpClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestServerEndpoints(t *testing.T) {
	r := run(t, echo("public"), time.Second)
	tests := []struct {
		name, url string
		status    int
		body      string
	}{
		{"healthz", r.ops + "/healthz", 200, "ok\n"},
		{"readyz", r.ops + "/readyz", 200, `{"status":"ready"}` + "\n"},
		{"metrics", r.ops + "/metrics", 200, "metrics"},
		{"extra ops route", r.ops + "/ops/hello", 200, "hello"},
		{"public", r.public + "/anything", 200, `{"ok":true}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := r.get(t, tt.url)
			if status != tt.status || body != tt.body {
				t.Errorf("GET %s = %d %q, want %d %q", tt.url, status, body, tt.status, tt.body)
			}
		})
	}
}

func TestServerGracefulDrain(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		io.WriteString(w, "done")
	})
	r := run(t, slow, time.Minute)

	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		res, err := r.httpClient.Get(r.public + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		got <- result{res.StatusCode, string(b), err}
	}()
	<-entered

	r.cancel()
	waitFor(t, r.srv.Ready, false)
	// The ops listener stays up while the public one drains, so load
	// balancers see the flip.
	if status, body := r.get(t, r.ops+"/readyz"); status != http.StatusServiceUnavailable {
		t.Errorf("readyz while draining = %d %q, want 503", status, body)
	}
	select {
	case err := <-r.done:
		t.Fatalf("Run returned %v with a request in flight", err)
	default:
	}

	close(release)
	res := <-got
	if res.err != nil || res.status != 200 || res.body != "done" {
		t.Errorf("in-flight request = %d %q %v, want 200 done", res.status, res.body, res.err)
	}
	if err := <-r.done; err != nil {
		t.Errorf("Run = %v, want nil after a clean drain", err)
	}
	r.done <- nil // for the cleanup
}

func TestServerDrainDeadline(t *testing.T) {
	entered := make(chan struct{})
	stuck := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-r.Context().Done() // released only when the server closes the connection
	})
	r := run(t, stuck, 10*time.Millisecond)

	clientErr := make(chan error, 1)
	go func() {
		res, err := r.httpClient.Get(r.public + "/stuck")
		if err == nil {
			_, err = io.ReadAll(res.Body)
			res.Body.Close()
		}
		clientErr <- err
	}()
	<-entered

	r.cancel()
	err := <-r.done
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want an error wrapping context.DeadlineExceeded", err)
	}
	if err := <-clientErr; err == nil {
		t.Error("the stuck request completed; its connection should have been closed")
	}
	if r.srv.Ready() {
		t.Error("Ready() after Run returned")
	}
	r.done <- nil // for the cleanup
}

func TestServerListenError(t *testing.T) {
	tests := []struct {
		name, public, ops, want string
	}{
		{"bad public address", "127.0.0.1:bad", "127.0.0.1:0", "public listener"},
		{"bad ops address", "127.0.0.1:0", "nonsense", "ops listener"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{PublicAddr: tt.public, OpsAddr: tt.ops}
			err := s.Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run = %v, want an error naming the %s", err, tt.want)
			}
		})
	}
}
