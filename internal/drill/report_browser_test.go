package drill

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rempart/rempart/internal/browsertest"
)

// overflowJS lists what spills out of the page or out of its own box: the
// page wider than the window, or an element whose content is wider than it
// is. A table may scroll inside its card on a phone (wide tables are read
// by scrolling them), but only when tablesMayScroll, and nothing else may.
const overflowJS = `((tablesMayScroll) => {
  const bad = [];
  const name = el => el.tagName.toLowerCase() + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().replace(/\s+/g, '.') : '') +
    ' "' + (el.textContent || '').trim().slice(0, 40) + '"';
  const vw = window.innerWidth;
  if (document.documentElement.scrollWidth > vw) bad.push('page is ' + document.documentElement.scrollWidth + ' px wide in a ' + vw + ' px window');
  // A card scrolls for its table when the table is wider than the card's
  // content box (a table can be no narrower than its longest cells).
  for (const el of document.body.querySelectorAll('*')) {
    if (el.closest('svg') || el.clientWidth === 0 || el.scrollWidth <= el.clientWidth + 1) continue;
    const table = el.querySelector(':scope > table, :scope > details > table');
    const cs = getComputedStyle(el);
    const inner = el.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    if (tablesMayScroll && el.classList.contains('card') && table && table.getBoundingClientRect().width > inner + 1) continue;
    bad.push(name(el) + ': content ' + el.scrollWidth + ' px in a ' + el.clientWidth + ' px box');
  }
  return bad.slice(0, 12);
})`

// TestReportLayout opens a drill's report in Chromium at a desktop and at a
// phone's width and checks that no text spills out of its card or widens
// the page.
func TestReportLayout(t *testing.T) {
	b := browsertest.New(t)
	s := mustScenario(t, miniYAML)
	dir := t.TempDir()
	var cpu time.Duration
	_, err := Run(context.Background(), Options{
		Scenario: s,
		Arms:     []Arm{&fakeBank{name: "small", capacity: 3, service: 20 * time.Millisecond}, &fakeBank{name: "big", service: 2 * time.Millisecond}},
		OutDir:   dir,
		// A saturated multi-core arm: the usage card holds its widest figures.
		Usage: func([]int) (Usage, error) {
			cpu += 2500 * time.Millisecond
			return Usage{CPU: cpu, RSS: 1500 << 20}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name            string
		width           int64
		tablesMayScroll bool
	}{
		{"desktop", 1400, false},
		{"phone", 390, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			tab := b.Tab(t, "")
			tab.Do(chromedp.EmulateViewport(c.width, 900), chromedp.Navigate("file://"+filepath.Join(dir, "report.html")))
			tab.Until(`document.readyState === "complete" && !!document.querySelector("svg")`)
			mayScroll := "false"
			if c.tablesMayScroll {
				mayScroll = "true"
			}
			bad := browsertest.Run(tab, chromedp.Evaluate[[]string](overflowJS+"("+mayScroll+")"))
			tab.Shot(c.name)
			if len(bad) > 0 {
				t.Errorf("at %d px:\n%s", c.width, strings.Join(bad, "\n"))
			}
		})
	}
}
