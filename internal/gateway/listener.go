package gateway

import (
	"bufio"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"
)

// tlsHandshake is the first byte of every TLS connection (a handshake
// record, RFC 8446 section 5.1).
const tlsHandshake = 0x16

// sniffTimeout bounds how long a new connection may take to send its first
// byte; it is the header timeout, so a slowloris gains nothing here.
const sniffTimeout = 5 * time.Second

// dualListener serves TLS on one port and, to the peers plaintext admits,
// plain HTTP beside it: it reads each connection's first byte off the accept
// path and hands http.Server a *tls.Conn (which the server handshakes and
// fills r.TLS from) or the plain connection. Anyone else speaking plain HTTP
// is told to use https and closed.
type dualListener struct {
	net.Listener
	tls       *tls.Config
	plaintext func(netip.Addr) bool

	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	mu    sync.Mutex
	err   error // why accepting stopped, when not Close
}

func newDualListener(ln net.Listener, cfg *tls.Config, plaintext func(netip.Addr) bool) *dualListener {
	if plaintext == nil {
		plaintext = func(netip.Addr) bool { return false }
	}
	d := &dualListener{Listener: ln, tls: cfg, plaintext: plaintext, conns: make(chan net.Conn), done: make(chan struct{})}
	go d.acceptLoop()
	return d
}

func (d *dualListener) acceptLoop() {
	for {
		c, err := d.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			d.mu.Lock()
			d.err = err
			d.mu.Unlock()
			d.Close()
			return
		}
		go d.classify(c)
	}
}

// classify reads the first byte and delivers the connection.
func (d *dualListener) classify(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(sniffTimeout))
	br := bufio.NewReaderSize(c, 512)
	first, err := br.Peek(1)
	if err != nil {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	pc := &peekedConn{Conn: c, r: br}
	var out net.Conn
	if first[0] == tlsHandshake {
		out = tls.Server(pc, d.tls)
	} else if d.plaintext(remoteAddr(c)) {
		out = pc
	} else {
		c.SetWriteDeadline(time.Now().Add(time.Second))
		c.Write([]byte("HTTP/1.1 400 Bad Request\r\nContent-Type: application/problem+json\r\nConnection: close\r\n\r\n" +
			`{"type":"https://rempart.dev/problems/tls-required","title":"Bad Request","status":400,` +
			`"detail":"this listener speaks https: plain HTTP is accepted from loopback and trusted proxies only"}`))
		c.Close()
		return
	}
	select {
	case d.conns <- out:
	case <-d.done:
		c.Close()
	}
}

// Accept returns the next classified connection.
func (d *dualListener) Accept() (net.Conn, error) {
	select {
	case c := <-d.conns:
		return c, nil
	case <-d.done:
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.err != nil && !errors.Is(d.err, net.ErrClosed) {
			return nil, d.err
		}
		return nil, net.ErrClosed
	}
}

// Close stops accepting.
func (d *dualListener) Close() error {
	var err error
	d.once.Do(func() {
		close(d.done)
		err = d.Listener.Close()
	})
	return err
}

func remoteAddr(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		a, _ := netip.AddrFromSlice(ta.IP)
		return a.Unmap()
	}
	return netip.Addr{}
}

// peekedConn is a connection whose first bytes were buffered by classify.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (p *peekedConn) Read(b []byte) (int, error) {
	if p.r != nil {
		if p.r.Buffered() > 0 {
			return p.r.Read(b)
		}
		p.r = nil // drained: read the connection directly, without a copy
	}
	return p.Conn.Read(b)
}
