// Package gateway is rempart's front door: it matches each request to a route,
// gives it its criticality tier, request id and trace context, forwards it to
// the route's upstream, and records it in metrics and logs. It serves the
// public and the ops listeners and drains them gracefully on shutdown.
package gateway
