package breaker

import (
	"bytes"
	"io"
	"net/http"

	"github.com/rempart/rempart/internal/admission"
)

// captured builds an *http.Response from what a handler writes, so that the
// breaker can judge an upstream's answer (and a fallback replace it) before
// anything reaches the client.
type captured struct {
	resp http.Response
	body bytes.Buffer
	// shed is why admission inside the breaker shed the request, nil when
	// it did not: it decides whether the fallback may answer.
	shed error
}

var _ admission.ShedRecorder = (*captured)(nil)

// RecordShed implements admission.ShedRecorder.
func (c *captured) RecordShed(err error) { c.shed = err }

func newCaptured() *captured {
	return &captured{resp: http.Response{Header: http.Header{}}}
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
	c.resp.Body = body{bytes.NewReader(c.body.Bytes()), c.body.Bytes()}
	return &c.resp
}

// body lets the breaker reach a captured answer's bytes without reading it.
type body struct {
	*bytes.Reader
	b []byte
}

func (body) Close() error { return nil }

func bodyOf(r *http.Response) []byte {
	if b, ok := r.Body.(body); ok {
		return b.b
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
