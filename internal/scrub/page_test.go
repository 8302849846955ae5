package scrub

import (
	"context"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestPageSolvesInJavaScript runs the challenge page's script in Node (whose
// Web Crypto is the browser's API) with a stub document, and checks that the
// solution it stores in the cookie buys a clearance.
func TestPageSolvesInJavaScript(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed: skipping the browser page's solver")
	}
	s, _ := newTestScrubber(t, nil)
	s.SetMode("balance", ModeAttack)
	h := testGateway(s, "balance", &seenInfo{})
	page := get(h, "198.51.100.7:1", map[string]string{"Accept": "text/html", "User-Agent": "Firefox/140"})
	m := regexp.MustCompile(`(?s)<script>(.*)</script>`).FindStringSubmatch(page.Body.String())
	if m == nil {
		t.Fatalf("no script in the page:\n%s", page.Body)
	}
	stub := `globalThis.window = globalThis;
globalThis.document = { cookie: "", getElementById: () => ({ textContent: "" }) };
globalThis.location = { protocol: "https:", reload() { console.log(document.cookie); } };
globalThis.history = { back() {} };
`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, "-e", stub+m[1]).CombinedOutput()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, out)
	}
	cookie := strings.TrimSpace(string(out))
	sol, attrs, ok := strings.Cut(strings.TrimPrefix(cookie, CookieSolution+"="), ";")
	if !ok || !strings.Contains(attrs, "secure") || !strings.HasPrefix(sol, page.Header().Get(HeaderChallenge)+".") {
		t.Fatalf("page set cookie %q", cookie)
	}
	rec := get(h, "198.51.100.7:1", map[string]string{"Cookie": CookieSolution + "=" + sol, "User-Agent": "Firefox/140"})
	if rec.Code != http.StatusOK || !strings.Contains(strings.Join(rec.Header().Values("Set-Cookie"), "\n"), CookieClearance+"=") {
		t.Fatalf("solution from the page: %d %v", rec.Code, rec.Header())
	}
}
