// Package drill replays a day like La Poste's December-2025 outage against
// several arms (the 2025 architecture, rempart, nginx, ...) with identical,
// seeded, open-loop load and identical faults, and reports who stayed served.
//
// A drill is a Scenario (YAML: populations, phases with rates and faults, SLO
// lines), a set of Arms started one after another, and a Run that writes
// results.json and a self-contained report.html. Latency is measured from each
// request's intended send time, so a slow arm cannot hide queueing behind a
// slower generator (no coordinated omission).
package drill
