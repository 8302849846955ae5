// Package status says, channel by channel, what works: it turns the outcome
// of every request into a level per channel (up, degraded, down) and serves
// them as a public status page (/status, in French and English) and as
// /status.json in the shape of Atlassian Statuspage's summary.json, which
// existing status tooling reads.
//
// In December 2025 La Poste had to tell customers by hand that card payments,
// ATMs and instant transfers still worked while the apps were down. Here the
// system says it itself, as precisely as it knows: a balance answered from
// the last known value is "working, figures possibly out of date (as of
// 14:05)", not "down".
//
// The gateway calls Observe once per request; Run re-evaluates the levels
// and pre-renders both pages once a second, so serving them costs a copy of
// a few kilobytes whatever the load. A channel without enough traffic to
// judge is judged on synthetic checks (Options.Probe, probe.go): a cheap read
// through the same path a request takes, every 2 s, so an outage shows within
// 10 s on a channel nobody is using. A login channel fed by the waiting room
// would be declared like the others:
//
//	status.Channel{Name: "login", Tier: tier.Important,
//		TitleFR: "Connexion à l'espace client", TitleEN: "Signing in"}
//
// with Options.Line reporting the room's line for it.
package status
