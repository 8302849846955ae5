package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// ChromeEnv names a Chromium binary to use instead of the first of
// chromium, chromium-browser, google-chrome found on PATH.
const ChromeEnv = "REMPART_CHROME"

// ScreenshotsEnv names a directory to keep screenshots in after the test;
// without it they go to a temporary directory of the test.
const ScreenshotsEnv = "REMPART_SCREENSHOTS"

// StepTimeout bounds each Run: a page that never shows what the test waits
// for fails in seconds, with a screenshot, not at the test binary's timeout.
const StepTimeout = 15 * time.Second

// Browser is one headless Chromium for one test.
type Browser struct {
	ctx   context.Context // the browser's first tab; parent of every Tab
	shots string
}

// ExecPath returns the Chromium to run, or "" when none is installed.
func ExecPath() string {
	if p := os.Getenv(ChromeEnv); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// New starts a headless Chromium for t and stops it when t ends. It skips t
// when no Chromium is installed.
func New(t testing.TB) *Browser {
	t.Helper()
	path := ExecPath()
	if path == "" {
		t.Skip("browsertest: no Chromium (chromium on PATH or $" + ChromeEnv + "): browser test skipped")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.WindowSize(1280, 900),
		chromedp.DisableGPU,
		// Root in a container has no user namespace to sandbox into.
		chromedp.Flag("no-sandbox", os.Geteuid() == 0),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(func(string, ...any) {}))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Run starts the browser; it must not carry a timeout, which
	// would stop the whole browser when it fires.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("browsertest: start %s: %v", path, err)
	}
	dir := os.Getenv(ScreenshotsEnv)
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("browsertest: screenshots: %v", err)
	}
	return &Browser{ctx: ctx, shots: dir}
}

// Tab is one browser tab with its own cookies (an incognito-like browser
// context), closed when t ends.
type Tab struct {
	b   *Browser
	t   testing.TB
	ctx context.Context
}

// Tab opens a tab whose requests say acceptLanguage (e.g. "fr-FR,fr" or
// "en-GB,en"), as a customer's browser would.
func (b *Browser) Tab(t testing.TB, acceptLanguage string) *Tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	tab := &Tab{b: b, t: t, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("browsertest: open tab: %v", err)
	}
	if acceptLanguage != "" {
		tab.Do(func(ctx context.Context, target *chromedp.Target) (chromedp.Void, error) {
			return chromedp.Void{}, setLanguage(ctx, target, acceptLanguage)
		})
	}
	return tab
}

// setLanguage makes every request of the tab send acceptLanguage.
func setLanguage(ctx context.Context, target *chromedp.Target, acceptLanguage string) error {
	if _, err := cdp.Call(ctx, target, network.Enable, network.EnableParams{}); err != nil {
		return fmt.Errorf("enable network: %w", err)
	}
	_, err := cdp.Call(ctx, target, network.SetExtraHTTPHeaders,
		network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": acceptLanguage}})
	if err != nil {
		return fmt.Errorf("set accept-language: %w", err)
	}
	return nil
}

// OnEveryPage has the tab run the JavaScript source in every page it loads
// from now on, before the page's own scripts. A test uses it to note what a
// page looked like when that page goes away by itself faster than a poll
// could see it (a challenge page that resubmits its form once solved).
func (tab *Tab) OnEveryPage(source string) {
	tab.t.Helper()
	tab.Do(func(ctx context.Context, target *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, target, page.AddScriptToEvaluateOnNewDocument,
			page.AddScriptToEvaluateOnNewDocumentParams{Source: source})
		return chromedp.Void{}, err
	})
}

// Do runs steps in the tab, each Run bounded by StepTimeout; on failure it
// keeps a screenshot of the page and fails the test.
func (tab *Tab) Do(steps ...chromedp.Action[chromedp.Void]) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, StepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		tab.Shot("failure")
		tab.t.Fatalf("browsertest: %v", err)
	}
}

// Text returns the text of the first element sel matches, once it exists.
func (tab *Tab) Text(sel string) string {
	tab.t.Helper()
	return Run(tab, chromedp.Text(chromedp.CSS(sel)))
}

// Run runs one action that returns a value, as Do does.
func Run[T any](tab *Tab, a chromedp.Action[T]) T {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, StepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		tab.Shot("failure")
		tab.t.Fatalf("browsertest: %v", err)
	}
	return v
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// Shot keeps a full-page PNG of the tab as <test name>-<name>.png in the
// screenshots directory and returns its path ("" if it could not be taken;
// a missing screenshot does not fail the test by itself).
func (tab *Tab) Shot(name string) string {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, StepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tab.t.Logf("browsertest: screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(tab.b.shots, unsafeName.ReplaceAllString(tab.t.Name()+"-"+name, "_")+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tab.t.Logf("browsertest: screenshot %s: %v", name, err)
		return ""
	}
	tab.t.Logf("browsertest: screenshot %s", path)
	return path
}

// Until waits, within StepTimeout, for the JavaScript expression expr to be
// true in the page. It asks every 100 ms, and an evaluation that fails
// because the page is navigating (its context is gone) is asked again: a
// form submitted a moment ago may still be redirecting.
func (tab *Tab) Until(expr string) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, StepTimeout)
	defer cancel()
	var last error
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			tab.Shot("failure")
			tab.t.Fatalf("browsertest: %s never became true (last error: %v)", expr, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
