package breaker

import (
	"bytes"
	"io"
	"net/http"
	"sync"

	"github.com/rempart/rempart/internal/admission"
)

// captured builds an *http.Response from what a handler writes, so that the
// breaker can judge an upstream's answer (and a fallback replace it) before
// anything reaches the client.
type captured struct {
	resp http.Response
	body bytes.Buffer
	rd   body // resp.Body, once the answer is complete
	// shed is why admission inside the breaker shed the request, nil when
	// it did not: it decides whether the fallback may answer.
	shed error
}

var _ admission.ShedRecorder = (*captured)(nil)

// RecordShed implements admission.ShedRecorder.
func (c *captured) RecordShed(err error) { c.shed = err }

// captures lends the breaker its captured answers: the capture, its header
// map, its body buffer and the body's reader were 5 allocations of every
// call (BenchmarkProxiedRequest in cmd/rempart).
var captures = sync.Pool{New: func() any { return &captured{resp: http.Response{Header: http.Header{}}} }}

// maxPooledBody is the largest body buffer kept for another call: an
// occasional large answer is not held in memory for good.
const maxPooledBody = 64 << 10

func newCaptured() *captured { return captures.Get().(*captured) }

// release returns c to the pool. Only for an answer nothing holds any more:
// sent to the client (whose writers copy what they keep, as io.Writer
// requires) and not handed to anything that keeps it. The header's value
// slices went to the client's header in send: clearing the map leaves them.
func (c *captured) release() {
	if c.body.Cap() > maxPooledBody {
		return
	}
	h := c.resp.Header
	clear(h)
	c.resp = http.Response{Header: h}
	c.body.Reset()
	c.rd = body{}
	c.shed = nil
	captures.Put(c)
}

func (c *captured) Header() http.Header { return c.resp.Header }

func (c *captured) WriteHeader(code int) {
	if c.resp.StatusCode == 0 {
		c.resp.StatusCode = code
	}
}

func (c *captured) Write(b []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return c.body.Write(b)
}

// response returns the answer; its body stays readable through bodyOf.
func (c *captured) response() *http.Response {
	c.WriteHeader(http.StatusOK)
	c.resp.ContentLength = int64(c.body.Len())
	c.rd.Reset(c.body.Bytes())
	c.rd.b, c.rd.c = c.body.Bytes(), c
	c.resp.Body = &c.rd
	return &c.resp
}

// body lets the breaker reach a captured answer's bytes without reading it.
type body struct {
	bytes.Reader
	b []byte
	c *captured
}

func (*body) Close() error { return nil }

func bodyOf(r *http.Response) []byte {
	if b, ok := r.Body.(*body); ok {
		return b.b
	}
	return nil
}

// capturedOf is the capture r was made from, nil for another response.
func capturedOf(r *http.Response) *captured {
	if b, ok := r.Body.(*body); ok {
		return b.c
	}
	return nil
}

// send writes a captured answer to the client.
func send(w http.ResponseWriter, r *http.Response) {
	h := w.Header()
	for k, v := range r.Header {
		h[k] = v
	}
	w.WriteHeader(r.StatusCode)
	if b := bodyOf(r); b != nil {
		w.Write(b)
		return
	}
	if r.Body != nil {
		io.Copy(w, r.Body)
	}
}
