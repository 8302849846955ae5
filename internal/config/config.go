package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rempart/rempart/internal/tier"
)

// InProcess is the upstream URL that means "the simulated estate running in
// this process": no network hop, same behaviour.
const InProcess = "in-process"

// Config is rempart's whole configuration. Every field's comment is its user
// documentation; zero values take the defaults listed.
type Config struct {
	// Listen is the public listener (customers, apps, partner networks).
	// Default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// OpsListen is the operations listener (/healthz, /readyz, /metrics and
	// the ops API). It binds loopback by default because it has no
	// authentication of its own yet. Default 127.0.0.1:9090.
	OpsListen string `yaml:"ops_listen"`
	// DataDir holds the ledger and other durable state. Default ./rempart-data.
	DataDir string `yaml:"data_dir"`
	// LogFormat is "text" (default) or "json".
	LogFormat string `yaml:"log_format"`
	// LogLevel is debug, info (default), warn or error.
	LogLevel string `yaml:"log_level"`
	// DrainTimeout bounds how long a graceful shutdown waits for in-flight
	// requests. Default 15s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// MaxBodyBytes caps request bodies at the gateway; larger bodies get 413.
	// Default 65536.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// Estate configures the simulated bank run in process.
	Estate Estate `yaml:"estate"`
	// Upstreams are the places routes forward to, by name.
	Upstreams []Upstream `yaml:"upstreams"`
	// Routes map requests to upstreams and give each its tier. When empty,
	// every channel of the simulated estate is routed with its own tier.
	Routes []Route `yaml:"routes"`
}

// Estate configures the in-process simulated bank.
type Estate struct {
	// Enabled runs the estate inside rempart serve. Default true when any
	// upstream is "in-process" (which it is by default).
	Enabled *bool `yaml:"enabled"`
	// Seed derives the customer population. Default 1.
	Seed uint64 `yaml:"seed"`
	// Customers is the population size. Default 10000000.
	Customers int `yaml:"customers"`
	// Core is the legacy core's capacity model.
	Core Core `yaml:"core"`
	// LedgerSync is "normal" (default: a crash of the process loses nothing
	// acknowledged) or "full" (also survives power loss, slower).
	LedgerSync string `yaml:"ledger_sync"`
}

// Core is the legacy core's capacity model.
type Core struct {
	// Workers is the fixed worker pool. Default 64.
	Workers int `yaml:"workers"`
	// MedianService is the median service time (lognormal). Default 8ms.
	MedianService time.Duration `yaml:"median_service"`
	// QueueLimit is how many calls may wait for a worker. Default 4096.
	QueueLimit int `yaml:"queue_limit"`
	// LockTimeout is how long a writer waits on a contended lock. Default 5s.
	LockTimeout time.Duration `yaml:"lock_timeout"`
}

// Upstream is somewhere requests go.
type Upstream struct {
	// Name is how routes refer to it.
	Name string `yaml:"name"`
	// URL is an http(s) base URL, or "in-process" for the embedded estate.
	URL string `yaml:"url"`
	// Timeout bounds one forwarded request. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
}

// Route sends matching requests to an upstream.
type Route struct {
	// Name labels metrics and logs; lower-case letters, digits and dashes.
	Name string `yaml:"name"`
	// Match is a Go ServeMux pattern, e.g. "POST /v1/cards/authorize" or
	// "GET /v1/accounts/{account}/balance".
	Match string `yaml:"match"`
	// Tier is critical, important, normal or sheddable.
	Tier string `yaml:"tier"`
	// Upstream names an entry of upstreams.
	Upstream string `yaml:"upstream"`
}

// Default returns the configuration used when no file is given.
func Default() *Config {
	c := &Config{}
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.OpsListen == "" {
		c.OpsListen = "127.0.0.1:9090"
	}
	if c.DataDir == "" {
		c.DataDir = "./rempart-data"
	}
	if c.LogFormat == "" {
		c.LogFormat = "text"
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 15 * time.Second
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 64 << 10
	}
	if c.Estate.Seed == 0 {
		c.Estate.Seed = 1
	}
	if c.Estate.Customers == 0 {
		c.Estate.Customers = 10_000_000
	}
	if c.Estate.LedgerSync == "" {
		c.Estate.LedgerSync = "normal"
	}
	if c.Estate.Core.Workers == 0 {
		c.Estate.Core.Workers = 64
	}
	if c.Estate.Core.MedianService == 0 {
		c.Estate.Core.MedianService = 8 * time.Millisecond
	}
	if c.Estate.Core.QueueLimit == 0 {
		c.Estate.Core.QueueLimit = 4096
	}
	if c.Estate.Core.LockTimeout == 0 {
		c.Estate.Core.LockTimeout = 5 * time.Second
	}
	if len(c.Upstreams) == 0 {
		c.Upstreams = []Upstream{{Name: "estate", URL: InProcess}}
	}
	for i := range c.Upstreams {
		if c.Upstreams[i].Timeout == 0 {
			c.Upstreams[i].Timeout = 10 * time.Second
		}
	}
	if c.Estate.Enabled == nil {
		on := false
		for _, u := range c.Upstreams {
			if u.URL == InProcess {
				on = true
			}
		}
		c.Estate.Enabled = &on
	}
}

// EstateEnabled reports whether the simulated estate runs in process.
func (c *Config) EstateEnabled() bool { return c.Estate.Enabled != nil && *c.Estate.Enabled }

// Error is a configuration error located in its file.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, ": field %s", e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads and validates the file at path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, b)
}

// Parse decodes and validates a YAML document; name is used in errors.
func Parse(name string, data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlError(name, err)
	}
	lines := map[string]int{}
	if len(root.Content) > 0 {
		index(root.Content[0], "", lines)
	}
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(name, err)
	}
	c.setDefaults()
	if errs := c.validate(); len(errs) > 0 {
		e := errs[0]
		e.File = name
		e.Line = lookupLine(lines, e.Field)
		return nil, e
	}
	return c, nil
}

var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)

// yamlError turns a yaml.v3 error into one that starts with file:line.
func yamlError(name string, err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n")
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.TrimSpace(strings.SplitN(msg, "\n", 2)[0])
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		e := &Error{File: name, Msg: m[2]}
		fmt.Sscanf(m[1], "%d", &e.Line)
		if f := strings.TrimPrefix(m[2], "field "); f != m[2] {
			if i := strings.Index(f, " not found"); i > 0 {
				e.Field = f[:i]
				e.Msg = "unknown field" + f[i+len(" not found"):]
			}
		}
		return e
	}
	return &Error{File: name, Msg: msg}
}

// index records the line of every field path, e.g. "routes[2].tier".
func index(n *yaml.Node, prefix string, out map[string]int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if prefix != "" {
				p = prefix + "." + k.Value
			}
			out[p] = k.Line
			index(v, p, out)
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			p := fmt.Sprintf("%s[%d]", prefix, i)
			out[p] = v.Line
			index(v, p, out)
		}
	}
}

// lookupLine finds the line of a field, or of its nearest parent that is in
// the file (a missing field is reported where its parent is).
func lookupLine(lines map[string]int, field string) int {
	for p := field; p != ""; {
		if l, ok := lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

var routeName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

func (c *Config) validate() []*Error {
	var errs []*Error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &Error{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	for _, f := range []struct{ field, addr string }{{"listen", c.Listen}, {"ops_listen", c.OpsListen}} {
		if _, _, err := net.SplitHostPort(f.addr); err != nil {
			bad(f.field, "%q is not host:port", f.addr)
		}
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log_format", "%q must be text or json", c.LogFormat)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "%q must be debug, info, warn or error", c.LogLevel)
	}
	if c.DrainTimeout < 0 {
		bad("drain_timeout", "must not be negative")
	}
	if c.MaxBodyBytes < 0 || c.MaxBodyBytes > 64<<20 {
		bad("max_body_bytes", "must be between 1 and 67108864")
	}
	if c.Estate.Customers < 0 || c.Estate.Customers > 100_000_000 {
		bad("estate.customers", "must be between 1 and 100000000")
	}
	if c.Estate.LedgerSync != "normal" && c.Estate.LedgerSync != "full" {
		bad("estate.ledger_sync", "%q must be normal or full", c.Estate.LedgerSync)
	}
	if w := c.Estate.Core.Workers; w < 1 || w > 10_000 {
		bad("estate.core.workers", "must be between 1 and 10000")
	}
	if c.Estate.Core.MedianService < 0 {
		bad("estate.core.median_service", "must not be negative")
	}
	if c.Estate.Core.QueueLimit < 0 {
		bad("estate.core.queue_limit", "must not be negative")
	}
	if c.Estate.Core.LockTimeout < 0 {
		bad("estate.core.lock_timeout", "must not be negative")
	}
	ups := map[string]bool{}
	for i, u := range c.Upstreams {
		p := fmt.Sprintf("upstreams[%d]", i)
		switch {
		case u.Name == "":
			bad(p+".name", "is required")
		case ups[u.Name]:
			bad(p+".name", "duplicate upstream %q", u.Name)
		}
		ups[u.Name] = true
		if u.URL != InProcess {
			pu, err := url.Parse(u.URL)
			if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
				bad(p+".url", "%q must be an http(s) URL or %q", u.URL, InProcess)
			}
		}
		if u.Timeout < 0 {
			bad(p+".timeout", "must not be negative")
		}
	}
	if len(c.Routes) > 0 && !c.EstateEnabled() {
		// fine: routes point at remote upstreams
	} else if len(c.Routes) == 0 && !c.EstateEnabled() {
		bad("routes", "is required when the in-process estate is disabled")
	}
	names := map[string]bool{}
	patterns := map[string]bool{}
	for i, r := range c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		switch {
		case !routeName.MatchString(r.Name):
			bad(p+".name", "%q must be lower-case letters, digits and dashes", r.Name)
		case names[r.Name]:
			bad(p+".name", "duplicate route %q", r.Name)
		}
		names[r.Name] = true
		if err := checkPattern(r.Match); err != nil {
			bad(p+".match", "%v", err)
		} else if patterns[r.Match] {
			bad(p+".match", "duplicate pattern %q", r.Match)
		}
		patterns[r.Match] = true
		if _, err := tier.Parse(r.Tier); err != nil {
			bad(p+".tier", "%v", err)
		}
		if !ups[r.Upstream] {
			bad(p+".upstream", "%q is not a configured upstream", r.Upstream)
		}
	}
	return errs
}

// checkPattern refuses patterns ServeMux would panic on.
func checkPattern(p string) (err error) {
	if strings.TrimSpace(p) == "" {
		return errors.New("is required")
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%q is not a valid pattern: %v", p, r)
		}
	}()
	mux := newMuxProbe()
	mux.Handle(p, nopHandler{})
	return nil
}
