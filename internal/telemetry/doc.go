// Package telemetry sets up what rempart tells its operators: structured logs
// (log/slog), Prometheus metrics, request ids and W3C trace context.
package telemetry
