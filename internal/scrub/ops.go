package scrub

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/rempart/rempart/internal/problem"
)

// maxListTTL bounds how long a hand-made list entry lives: permanent partners
// belong in the configuration, and a forgotten block should not outlive the
// attack by months.
const maxListTTL = 30 * 24 * time.Hour

// States returns every tracked route's state, sorted by route.
func (s *Scrubber) States() []RouteState {
	now := s.clock.Now()
	rs := *s.routes.Load()
	out := make([]RouteState, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.snapshot(now, s))
	}
	slices.SortFunc(out, func(a, b RouteState) int { return strings.Compare(a.Route, b.Route) })
	return out
}

// SetMode forces a route's state (ModeNormal, ModeFlashCrowd, ModeAttack) or
// hands it back to detection (ModeAuto). ModeAttack on a login route is its
// under-attack mode.
func (s *Scrubber) SetMode(route string, m Mode) RouteState {
	r := s.route(route)
	r.setMode(m, s.clock.Now(), s)
	return r.snapshot(s.clock.Now(), s)
}

// Block adds a CIDR to the block list for ttl.
func (s *Scrubber) Block(p netip.Prefix, ttl time.Duration, reason string) error {
	return s.addList(s.block, p, ttl, reason)
}

// Allow adds a CIDR to the allow list for ttl: its clients are never
// challenged or limited.
func (s *Scrubber) Allow(p netip.Prefix, ttl time.Duration, reason string) error {
	return s.addList(s.allow, p, ttl, reason)
}

func (s *Scrubber) addList(l *cidrList, p netip.Prefix, ttl time.Duration, reason string) error {
	now := s.clock.Now()
	return l.add(ListEntry{Prefix: p, Reason: reason, Added: now, Expires: now.Add(ttl)}, now)
}

// OpsHandler serves the scrubber's ops API under /ops/scrub/; mount it on the
// ops listener with mux.Handle("/ops/scrub/", s.OpsHandler()):
//
//	GET    /ops/scrub/routes                 every route's state with its evidence
//	GET    /ops/scrub/routes/{route}         one route's state
//	PUT    /ops/scrub/routes/{route}/mode    {"mode":"auto|normal|flash_crowd|attack"}
//	GET    /ops/scrub/lists/{list}           list = block or allow
//	POST   /ops/scrub/lists/{list}           {"cidr":"203.0.113.0/24","ttl":"1h","reason":"..."}
//	DELETE /ops/scrub/lists/{list}?cidr=203.0.113.0/24
//
// Bad input is answered with an RFC 9457 problem whose field member names
// what is wrong.
func (s *Scrubber) OpsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ops/scrub/routes", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"routes": s.States()})
	})
	mux.HandleFunc("GET /ops/scrub/routes/{route}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("route")
		if _, ok := (*s.routes.Load())[name]; !ok {
			problem.Write(w, problem.New(http.StatusNotFound, "unknown-route",
				fmt.Sprintf("no traffic or mode seen for route %q", name)).WithField("route"))
			return
		}
		writeJSON(w, http.StatusOK, s.State(name))
	})
	mux.HandleFunc("PUT /ops/scrub/routes/{route}/mode", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("route")
		if !validRouteName(name) {
			problem.Write(w, problem.New(http.StatusBadRequest, "invalid-field",
				"route names are 1 to 64 characters from [a-zA-Z0-9._-]").WithField("route"))
			return
		}
		var body struct {
			Mode *string `json:"mode"`
		}
		if !decode(w, r, &body) {
			return
		}
		if body.Mode == nil {
			problem.Write(w, problem.New(http.StatusBadRequest, "invalid-field", "mode is required").WithField("mode"))
			return
		}
		m, err := ParseMode(*body.Mode)
		if err != nil {
			problem.Write(w, problem.New(http.StatusBadRequest, "invalid-field", err.Error()).WithField("mode"))
			return
		}
		st := s.SetMode(name, m)
		s.log.Warn("scrub: route mode set by hand", "route", name, "mode", m.String())
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("GET /ops/scrub/lists/{list}", func(w http.ResponseWriter, r *http.Request) {
		l, ok := s.list(w, r)
		if !ok {
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"list": r.PathValue("list"), "entries": l.list(s.clock.Now())})
	})
	mux.HandleFunc("POST /ops/scrub/lists/{list}", func(w http.ResponseWriter, r *http.Request) {
		l, ok := s.list(w, r)
		if !ok {
			return
		}
		var body struct {
			CIDR   *string `json:"cidr"`
			TTL    *string `json:"ttl"`
			Reason string  `json:"reason"`
		}
		if !decode(w, r, &body) {
			return
		}
		if body.CIDR == nil {
			problem.Write(w, problem.New(http.StatusBadRequest, "invalid-field", "cidr is required").WithField("cidr"))
			return
		}
		p, err := parseCIDR(*body.CIDR)
		if err != nil {
			problem.Write(w, problem.New(http.StatusBadRequest, "invalid-field", err.Error()).WithField("cidr"))
			return
		}
		if body.TTL == nil {
			problem.Write(w, problem.New(http.StatusBadRequest, "invalid-field",
				"ttl is required (entries expire; permanent partners belong in the configuration)").WithField("ttl"))
			return
		}
		ttl, err := time.ParseDuration(*body.TTL)
		if err != nil || ttl <= 0 || ttl > maxListTTL {
			problem.Write(w, problem.New(http.StatusBadRequest, "invalid-field",
				fmt.Sprintf("ttl %q: want a Go duration between 1s and %s, e.g. \"1h\"", *body.TTL, maxListTTL)).WithField("ttl"))
			return
		}
		if len(body.Reason) > 256 {
			problem.Write(w, problem.New(http.StatusBadRequest, "invalid-field", "reason longer than 256 bytes").WithField("reason"))
			return
		}
		now := s.clock.Now()
		e := ListEntry{Prefix: p, Reason: body.Reason, Added: now, Expires: now.Add(ttl)}
		if err := l.add(e, now); err != nil {
			problem.Write(w, problem.New(http.StatusConflict, "list-full", err.Error()).WithField("cidr"))
			return
		}
		s.log.Warn("scrub: list entry added", "list", r.PathValue("list"), "cidr", p.String(), "ttl", ttl, "reason", body.Reason)
		e.Prefix = p.Masked()
		writeJSON(w, http.StatusCreated, e)
	})
	mux.HandleFunc("DELETE /ops/scrub/lists/{list}", func(w http.ResponseWriter, r *http.Request) {
		l, ok := s.list(w, r)
		if !ok {
			return
		}
		p, err := parseCIDR(r.URL.Query().Get("cidr"))
		if err != nil {
			problem.Write(w, problem.New(http.StatusBadRequest, "invalid-field", err.Error()).WithField("cidr"))
			return
		}
		if !l.remove(p, s.clock.Now()) {
			problem.Write(w, problem.New(http.StatusNotFound, "not-listed",
				p.Masked().String()+" is not in the list").WithField("cidr"))
			return
		}
		s.log.Warn("scrub: list entry removed", "list", r.PathValue("list"), "cidr", p.String())
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/ops/scrub/", func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, problem.New(http.StatusNotFound, "no-route", "no scrub ops endpoint at "+r.Method+" "+r.URL.Path))
	})
	return mux
}

func (s *Scrubber) list(w http.ResponseWriter, r *http.Request) (*cidrList, bool) {
	switch r.PathValue("list") {
	case "block":
		return s.block, true
	case "allow":
		return s.allow, true
	}
	problem.Write(w, problem.New(http.StatusNotFound, "invalid-field",
		fmt.Sprintf("unknown list %q (want block or allow)", r.PathValue("list"))).WithField("list"))
	return nil, false
}

// parseCIDR reads a prefix ("203.0.113.0/24") or a single address.
func parseCIDR(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, errors.New("cidr is required, e.g. 203.0.113.0/24")
	}
	if p, err := netip.ParsePrefix(s); err == nil {
		if p.Addr().Is4In6() {
			return netip.Prefix{}, fmt.Errorf("cidr %q: write IPv4 prefixes in IPv4 form", s)
		}
		return p, nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.Prefix{}, fmt.Errorf("cidr %q: not an address or prefix like 203.0.113.0/24 or 2001:db8::/48", s)
}

func validRouteName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// decode reads a small JSON body strictly, answering the problem itself.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		problem.Write(w, problem.New(http.StatusUnsupportedMediaType, "content-type",
			"send application/json").WithField("Content-Type"))
		return false
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		field := "body"
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te) && te.Field != "":
			field = te.Field
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			field = strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		}
		problem.Write(w, problem.New(http.StatusBadRequest, "invalid-json", err.Error()).WithField(field))
		return false
	}
	if dec.More() {
		problem.Write(w, problem.New(http.StatusBadRequest, "invalid-json", "one JSON object expected").WithField("body"))
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		problem.Write(w, problem.New(http.StatusInternalServerError, "internal", err.Error()))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
