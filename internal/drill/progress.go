package drill

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// shortNames keep the progress line within a terminal's width.
var shortNames = map[string]string{
	ChannelCardAuthorize:   "card",
	ChannelThreeDS:         "3ds",
	ChannelATMWithdraw:     "atm",
	ChannelInstantTransfer: "xfer",
	ChannelAccounts:        "acct",
	ChannelBalance:         "bal",
	ChannelTransactions:    "hist",
	ChannelDocuments:       "docs",
	ChannelParcel:          "parcel",
	ChannelLogin:           "login",
}

// progress prints one line: where the arm is in the scenario and the share
// of requests finished in the last second that succeeded, per channel.
func (r *armRun) progress(live []Counts) {
	s := r.o.Scenario
	elapsed := max(time.Since(r.start), 0)
	phase := len(s.plan) - 1
	for i, p := range s.plan {
		if elapsed < p.end {
			phase = i
			break
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s · %s %d/%d · %s/%s", r.arm.Name(), s.Phases[phase].Name, phase+1, len(s.Phases),
		clock(elapsed), clock(s.Duration()))
	var total, attacks Counts
	for i, c := range live {
		total.add(c)
		if c.Offered == 0 {
			continue
		}
		if r.chans[i].Attack {
			attacks.add(c)
			continue
		}
		name := r.chans[i].Name
		if n, ok := shortNames[name]; ok {
			name = n
		}
		v, _ := c.Success()
		fmt.Fprintf(&b, " · %s %s", name, livePct(v))
	}
	if attacks.Offered > 0 {
		fmt.Fprintf(&b, " · attacks %d/%d through", attacks.Breaches, attacks.Offered)
	}
	fmt.Fprintf(&b, " · %d done/s", total.Offered)
	if total.Dropped > 0 {
		fmt.Fprintf(&b, " · %d client-dropped", total.Dropped)
	}
	fmt.Fprintln(r.o.Progress, b.String())
}

// livePct rounds down, so that 99.7 % never shows as 100 %.
func livePct(v float64) string {
	switch {
	case v >= 1:
		return "100%"
	case v >= 0.99:
		return fmt.Sprintf("%.1f%%", math.Floor(v*1000)/10)
	}
	return fmt.Sprintf("%.0f%%", math.Floor(v*100))
}

func clock(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%d:%02d", int(d.Minutes()), int(d.Seconds())%60)
}

// summaryLine is the one line printed when an arm is done.
func summaryLine(ar ArmResult) string {
	var total Counts
	for _, p := range ar.Phases {
		total.add(p.Total)
	}
	v, _ := total.Success()
	ledger := "ledger ok"
	switch {
	case ar.Ledger.Skipped:
		ledger = "ledger not checked"
	case !ar.Ledger.OK:
		ledger = "LEDGER CHECK FAILED"
	}
	line := fmt.Sprintf("%d requests, %s ok, %d shed, %d errors, %d time-outs, %d client-dropped · %s",
		total.Offered, pct(v), total.Shed, total.Errors, total.Timeouts, total.Dropped, ledger)
	var attacks Counts
	for _, a := range ar.Attacks {
		attacks.add(a.Counts)
	}
	if attacks.Offered > 0 {
		line += fmt.Sprintf(" · %d of %d attacks got through", attacks.Breaches, attacks.Offered)
	}
	return line
}
