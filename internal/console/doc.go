// Package console is the ops console's live page: per tier and per route
// what was served, shed, refused and answered by a fallback, the scrubber's
// state per route, the waiting room, the breakers, the journal's backlog and
// the faults in force, read from the same registry /metrics serves and
// redrawn every second by the page's own script. It is mounted under the
// admin login's path prefix, so only an admin session reaches it.
package console
