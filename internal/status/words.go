package status

import (
	"fmt"
	"math"
	"time"

	"github.com/rempart/rempart/internal/tier"
)

// display is a channel's state in Statuspage's four words. Levels map:
//
//	up                            -> operational
//	degraded                      -> degraded_performance
//	down, part of it still works  -> partial_outage
//	down                          -> major_outage
//
// "Part of it still works" is at least 10 % of useful answers (its fallbacks
// or the backend's own): a channel whose stand-in answers most requests is not
// down at all but degraded (fallbacks count as working), so partial_outage is
// for the channel that mostly fails yet still serves some customers.
type display int

const (
	operational display = iota
	degradedPerformance
	partialOutage
	majorOutage
)

var displayNames = [...]string{"operational", "degraded_performance", "partial_outage", "major_outage"}

func displayOf(l Level, partial bool) display {
	switch {
	case l == Up:
		return operational
	case l == Degraded:
		return degradedPerformance
	case partial:
		return partialOutage
	default:
		return majorOutage
	}
}

var labels = map[display][2]string{ // fr, en
	operational:         {"Normal", "Operational"},
	degradedPerformance: {"Perturbé", "Degraded performance"},
	partialOutage:       {"Partiellement indisponible", "Partial outage"},
	majorOutage:         {"Indisponible", "Major outage"},
}

// words says in French and English what works on a channel, from the
// verdict behind the level shown. The point is precision: what a customer
// can still do, not just a colour.
func words(c Channel, v verdict, now time.Time, loc *time.Location) (fr, en string) {
	switch {
	case v.level == Up:
		return "Fonctionne normalement.", "Working normally."
	case v.level == Down && !v.partial:
		return "Indisponible pour le moment.", "Unavailable at the moment."
	case v.level == Down:
		fr, en = "Partiellement indisponible : une partie seulement des demandes aboutit", "Partly unavailable: only some requests go through"
		if v.reason == fallbacks {
			fr, en = fr+", en mode secours", en+", in fallback mode"
		}
		return fr + ".", en + "."
	case v.reason == fallbacks:
		return fallbackWords(c.Fallback, v.asOf, now, loc)
	case v.reason == line:
		return fmt.Sprintf("Les nouvelles connexions passent par une file d'attente (attente estimée : %s). "+
				"Les clients déjà connectés ne sont pas concernés.", waitFR(v.wait)),
			fmt.Sprintf("New sign-ins go through a waiting line (estimated wait: %s). "+
				"Customers already signed in are not affected.", waitEN(v.wait))
	default:
		return "Fonctionne, avec des lenteurs : certaines demandes peuvent être refusées ; réessayez dans quelques instants.",
			"Working, but slowly: some requests may be refused; try again in a moment."
	}
}

func fallbackWords(f Fallback, asOf, now time.Time, loc *time.Location) (fr, en string) {
	switch f {
	case StaleRead:
		fr, en = "Fonctionne, mais les données affichées peuvent être en retard", "Working, but figures shown may be out of date"
		if !asOf.IsZero() {
			fr += " (état au " + clock(asOf, now, loc, "02/01") + ")"
			en += " (as of " + clock(asOf, now, loc, "2 Jan") + ")"
		}
		return fr + ".", en + "."
	case StandIn:
		return "Fonctionne en mode secours : les opérations sont acceptées dans les limites habituelles et seront confirmées plus tard.",
			"Working in stand-in mode: operations are approved within the usual limits and confirmed later."
	case Outbox:
		return "Fonctionne : les virements sont acceptés et seront exécutés avec un peu de retard, une seule fois.",
			"Working: transfers are accepted and will be carried out a little later, exactly once."
	default:
		return "Fonctionne en mode secours.", "Working in fallback mode."
	}
}

// clock shows a time of day in loc, with the date when it is not today's.
func clock(t, now time.Time, loc *time.Location, dateLayout string) string {
	t, now = t.In(loc), now.In(loc)
	if y, m, d := t.Date(); y != now.Year() || m != now.Month() || d != now.Day() {
		return t.Format(dateLayout + " 15:04 MST")
	}
	return t.Format("15:04 MST")
}

func waitFR(d time.Duration) string {
	if d < time.Minute {
		return "moins d'une minute"
	}
	return fmt.Sprintf("environ %d min", int(math.Round(d.Minutes())))
}

func waitEN(d time.Duration) string {
	if d < time.Minute {
		return "less than a minute"
	}
	return fmt.Sprintf("about %d min", int(math.Round(d.Minutes())))
}

// overall is the page's one-line verdict, Statuspage's status.indicator:
//
//	none      every channel operational        "All Systems Operational"
//	minor     the worst is degraded_performance "Partially Degraded Service"
//	major     a partial or major outage        "Partial System Outage"
//	critical  a CRITICAL channel in major outage, or every channel in one
//	          "Major Service Outage"
//
// A bank whose card payments are down is in a critical state whatever else
// works; a bank whose parcel tracking is down is not.
type overall struct {
	indicator   string
	description string
	fr          string
}

func overallOf(states []ChannelStatus) overall {
	worst, criticalDown, allDown := operational, false, len(states) > 0
	for _, s := range states {
		d := displayOf(s.Level, s.Partial)
		worst = max(worst, d)
		if d == majorOutage && s.Tier == tier.Critical {
			criticalDown = true
		}
		allDown = allDown && d == majorOutage
	}
	switch {
	case criticalDown || allDown:
		return overall{"critical", "Major Service Outage", "Panne majeure : des services essentiels sont indisponibles."}
	case worst >= partialOutage:
		return overall{"major", "Partial System Outage", "Certains services sont indisponibles."}
	case worst == degradedPerformance:
		return overall{"minor", "Partially Degraded Service", "Certains services sont perturbés."}
	default:
		return overall{"none", "All Systems Operational", "Tous les services fonctionnent normalement."}
	}
}
