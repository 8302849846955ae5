package scrub

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"testing"
)

// FuzzFingerprint feeds header blocks as a client sends them (parsed the
// way net/http parses them) to the fingerprints and to the scrubber itself.
// The agent fingerprint, and so a clearance, depends on User-Agent and
// Accept-Language alone: a clearance granted to a request passes the same
// client's next request whatever else its headers say, and is refused for
// another User-Agent. The header fingerprint counts the set of names, never
// a value other than those two.
func FuzzFingerprint(f *testing.F) {
	for _, block := range []string{
		// A browser's GET, then an app, curl and a bot framework.
		"Host: bank.example\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0\r\n" +
			"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\nAccept-Language: fr-FR,fr;q=0.8,en-US;q=0.5\r\n" +
			"Accept-Encoding: gzip, deflate, br\r\nSec-Fetch-Site: none\r\nUpgrade-Insecure-Requests: 1\r\n\r\n",
		"User-Agent: BankApp/7.1 (iOS 18.2)\r\nAccept: application/json\r\nAccept-Language: fr\r\nRempart-Clearance: c1.1.AAAA\r\n\r\n",
		"User-Agent: curl/8.11.0\r\nAccept: */*\r\n\r\n",
		"user-agent: python-requests/2.32\r\naccept-encoding: gzip\r\naccept: */*\r\nconnection: keep-alive\r\n\r\n",
		// Edge cases: no agent, repeated and empty values, a folded line,
		// odd bytes, a cookie carrying a clearance.
		"\r\n",
		"User-Agent: a\r\nUser-Agent: b\r\nAccept-Language:\r\n\r\n",
		"User-Agent: folded\r\n continued\r\n\r\n",
		"User-Agent: \xff\xfe\x00x\r\nAccept-Language: *\r\n\r\n",
		"Cookie: rempart_clearance=c1.99999999999.AAAAAAAAAAAAAAAAAAAAAA\r\nUser-Agent: x\r\n\r\n",
	} {
		f.Add(block)
	}
	f.Fuzz(func(t *testing.T, block string) {
		mh, err := textproto.NewReader(bufio.NewReader(strings.NewReader(block))).ReadMIMEHeader()
		if err != nil {
			return // net/http answers 400 before any handler runs
		}
		h := http.Header(mh)
		// The test gateway reads these to fake the layers around the scrubber.
		h.Del("X-Test-Session")
		h.Del("X-Test-Partner")
		h.Del("X-Test-Device")
		h.Del(HeaderSolution)

		agent := agentFingerprint(h)
		only := http.Header{}
		for _, k := range []string{"User-Agent", "Accept-Language"} {
			if v := h.Get(k); v != "" {
				only.Set(k, v)
			}
		}
		if got := agentFingerprint(only); got != agent {
			t.Fatalf("agent fingerprint depends on more than User-Agent and Accept-Language: %x != %x", got, agent)
		}
		blank := http.Header{}
		for k := range h {
			blank[k] = []string{""}
		}
		for k, v := range only {
			blank[k] = v
		}
		if headerFingerprint(blank, agentFingerprint(blank)) != headerFingerprint(h, agent) {
			t.Fatal("header fingerprint depends on a header's value")
		}

		// Through the scrubber, under attack: only a cleared client passes.
		s, _ := newTestScrubber(t, nil)
		s.SetMode("balance", ModeAttack)
		gw := testGateway(s, "balance", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
		send := func(hdr http.Header) int {
			req := httptest.NewRequest(http.MethodGet, "/v1/accounts/A-alice/balance", nil)
			req.RemoteAddr = "198.51.100.7:4000"
			req.Header = hdr
			rec := httptest.NewRecorder()
			gw.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("%d for headers %q", rec.Code, hdr)
			}
			return rec.Code
		}
		grant := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = "198.51.100.7:4000"
		req.Header = h.Clone()
		s.GrantClearance(grant, req)
		tok := grant.Header().Get(HeaderClearance)

		same := h.Clone()
		same.Set(HeaderClearance, tok)
		if st := send(same); st != http.StatusOK {
			t.Fatalf("clearance granted to %q refused: %d", h, st)
		}
		other := h.Clone()
		other.Set(HeaderClearance, tok)
		other.Set("Accept", "application/json")
		other.Set("X-Requested-With", "fetch")
		other.Del("Accept-Encoding")
		if st := send(other); st != http.StatusOK {
			t.Fatalf("clearance refused once headers other than the agent changed: %d", st)
		}
		stolen := h.Clone()
		stolen.Set(HeaderClearance, tok)
		stolen.Set("User-Agent", h.Get("User-Agent")+" (another)")
		if st := send(stolen); st == http.StatusOK {
			t.Fatalf("clearance of %q accepted for another User-Agent", h.Get("User-Agent"))
		}
	})
}
