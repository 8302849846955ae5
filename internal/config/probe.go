package config

import "net/http"

// The gateway registers routes on an http.ServeMux, which panics on a bad
// pattern or on two patterns that conflict; validation registers the patterns
// on a throwaway mux first so the user gets a located error instead of a
// failure at start-up.

type nopHandler struct{}

func (nopHandler) ServeHTTP(http.ResponseWriter, *http.Request) {}

func newMuxProbe() *http.ServeMux { return http.NewServeMux() }
