package breaker_test

import (
	"io"
	"net/http"
	"strings"
)

// repeat sends n GETs of target through h.
func repeat(h http.Handler, target string, n int) {
	for range n {
		do(h, "GET", target)
	}
}

func stringsReader(s string) io.Reader { return strings.NewReader(s) }
