package drill

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rempart/rempart/client"
)

// sourceIdle is how long a source's keep-alive connection may sit unused,
// like a phone app's or a flood bot's HTTP client between requests. It also
// bounds the open connections: at laposte-2025's peak about 4,000 addresses
// are seen within 5 s, well under the 20,000 files a process may open here
// even when the arm's end of each connection is in the same process.
const sourceIdle = 5 * time.Second

// sources keeps one HTTP client per loopback source address in use, so that
// each address reuses its own keep-alive connection and the arm sees exactly
// the addresses drawn. Opening a fresh connection per request instead cost
// most of the generator's CPU in socket system calls (measured at 1,800
// req/s: 41 % of CPU samples in connect/accept/close).
type sources struct {
	m   sync.Map                   // int -> *sourceClient
	tls atomic.Pointer[tls.Config] // for https:// requests: the arm's CA, no client certificate
}

type sourceClient struct {
	http.Client
	used atomic.Int64 // unix nanoseconds of the last request

	sdkOnce sync.Once
	sdk     *client.Client // the app's SDK client, for sdk populations
}

func (s *sources) client(i int) *http.Client { return &s.get(i).Client }

// sdk returns the SDK client of the app at address i.
func (s *sources) sdk(i int, p *Population, base string) *client.Client {
	sc := s.get(i)
	sc.sdkOnce.Do(func() { sc.sdk = newSDK(&sc.Client, p, base) })
	return sc.sdk
}

func (s *sources) get(i int) *sourceClient {
	if c, ok := s.m.Load(i); ok {
		sc := c.(*sourceClient)
		sc.used.Store(time.Now().UnixNano())
		return sc
	}
	ip := sourceAddr(i)
	sc := &sourceClient{Client: http.Client{CheckRedirect: noRedirect, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: ip}, Control: bindNoPort}
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     s.tls.Load(),
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     sourceIdle,
		DisableCompression:  true,
	}}}
	sc.used.Store(time.Now().UnixNano())
	c, _ := s.m.LoadOrStore(i, sc)
	return c.(*sourceClient)
}

// sweep forgets the clients idle for longer than sourceIdle; their idle
// connections close on their own time-out.
func (s *sources) sweep(now time.Time) {
	s.m.Range(func(k, v any) bool {
		sc := v.(*sourceClient)
		if now.UnixNano()-sc.used.Load() > int64(sourceIdle) {
			s.m.Delete(k)
			sc.CloseIdleConnections()
		}
		return true
	})
}

func (s *sources) close() {
	s.m.Range(func(k, v any) bool {
		v.(*sourceClient).CloseIdleConnections()
		s.m.Delete(k)
		return true
	})
}

func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
