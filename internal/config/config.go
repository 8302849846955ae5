package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/rempart/rempart/internal/tier"
)

// envName matches an environment variable name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

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
	// OpsAuth protects the ops API: "webauthn" (default) admits admins who
	// logged in with a FIDO2 security key at /ops/admin/login, and scripts
	// holding the automation token in data_dir/admin/ops-token (sent as
	// Authorization: Bearer); "none" leaves the ops API open to anyone who
	// can reach the ops listener (local development only).
	OpsAuth string `yaml:"ops_auth"`
	// OpsTokenSMS lets the automation token read the simulated SMS outbox
	// (GET /ops/estate/sms), where login codes go: for demos and drills
	// only. Default false: only an admin session reads it.
	OpsTokenSMS bool `yaml:"ops_token_sms"`
	// Estate configures the simulated bank run in process.
	Estate Estate `yaml:"estate"`
	// Upstreams are the places routes forward to, by name.
	Upstreams []Upstream `yaml:"upstreams"`
	// Routes map requests to upstreams and give each its tier. When empty,
	// every channel of the simulated estate is routed with its own tier.
	Routes []Route `yaml:"routes"`
	// Identity configures the built-in OpenID provider.
	Identity Identity `yaml:"identity"`
	// Sessions chooses where sessions and refresh-token families live.
	Sessions Sessions `yaml:"sessions"`
	// Journal chooses where stand-in decisions and outbox transfers are
	// kept until they are replayed to the core.
	Journal Journal `yaml:"journal"`
	// StandIn configures how the nodes of a cluster share the stand-in
	// limits.
	StandIn StandIn `yaml:"standin"`
	// Scrub configures L7 scrubbing: attack detection, rate limits,
	// proof-of-work and clearances.
	Scrub Scrub `yaml:"scrub"`
	// TLS configures the public listener's TLS and the CAs of partner
	// client certificates.
	TLS TLS `yaml:"tls"`
	// Partners are the partner networks, each identified by its client
	// certificate (or an OAuth client acting for it), with the routes it
	// may call. Default, with the demo CA: card-schemes (card-authorize),
	// 3ds-server (3ds-challenge, 3ds-verify), atm-network (atm-withdraw) and
	// instant-scheme (instant-transfer), each with a certificate in
	// data_dir/pki. Partners are never challenged or rate limited by the
	// scrubber and never wait in the login line.
	Partners []Partner `yaml:"partners"`

	// partnersDefaulted: Partners are DemoPartners, not the file's.
	partnersDefaulted bool
}

// PartnersDefaulted reports whether Partners are the demo partners rather
// than configured ones (their routes may then not all exist).
func (c *Config) PartnersDefaulted() bool { return c.partnersDefaulted }

// TLS configures the public listener's TLS.
type TLS struct {
	// Enabled serves TLS on the public listener. Default true. False serves
	// plain HTTP only, for a listener behind a TLS-terminating balancer
	// (partners are then known by forwarded_client_cert).
	Enabled *bool `yaml:"enabled"`
	// CertFile and KeyFile are the server certificate chain and key (PEM).
	// Empty: a demo certificate for the listener's host, localhost,
	// 127.0.0.1 and ::1, signed by a demo CA created in data_dir/pki.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFiles are PEM files of the CAs that sign partner client
	// certificates. Empty: the demo CA (data_dir/pki/ca.pem).
	ClientCAFiles []string `yaml:"client_ca_files"`
	// Plaintext says who may also speak plain HTTP on the TLS port:
	// loopback (default: the demo, the drill and local apps), trusted_proxies
	// (balancers in scrub.trusted_proxies that terminate TLS themselves) or
	// off. Plain HTTP never carries a partner certificate, so partner routes
	// refuse it unless a trusted balancer forwards one.
	Plaintext string `yaml:"plaintext"`
	// ForwardedClientCert names the header in which a TLS-terminating
	// balancer in scrub.trusted_proxies forwards the client certificate:
	// Envoy's x-forwarded-client-cert (its Cert or Chain field), RFC 9440's
	// Client-Cert (":<base64 DER>:") or a bare URL-encoded PEM (nginx's
	// $ssl_client_escaped_cert). It is verified
	// against client_ca_files like a direct one, believed only from trusted
	// proxies, and removed from every request before it goes on. Empty (the
	// default) accepts none.
	ForwardedClientCert string `yaml:"forwarded_client_cert"`
}

// TLSEnabled reports whether the public listener speaks TLS.
func (c *Config) TLSEnabled() bool { return c.TLS.Enabled == nil || *c.TLS.Enabled }

// DemoPKI reports whether the demo CA and certificates are in use.
func (c *Config) DemoPKI() bool { return c.TLS.CertFile == "" && len(c.TLS.ClientCAFiles) == 0 }

// Partner is a partner network.
type Partner struct {
	// Name labels the partner in logs and metrics.
	Name string `yaml:"name"`
	// Subjects identify its client certificates: the common name or a DNS
	// or URI subject alternative name, e.g. card-schemes.partners.example.
	Subjects []string `yaml:"subjects"`
	// Clients are OAuth clients (client credentials) acting for it: their
	// tokens are admitted on its routes as it is.
	Clients []string `yaml:"clients"`
	// Routes it may call, by route name.
	Routes []string `yaml:"routes"`
}

// DemoPartners are the default partners and their routes.
func DemoPartners() []Partner {
	return []Partner{
		{Name: "card-schemes", Routes: []string{"card-authorize"}},
		{Name: "3ds-server", Routes: []string{"3ds-challenge", "3ds-verify"}},
		{Name: "atm-network", Routes: []string{"atm-withdraw"}},
		{Name: "instant-scheme", Routes: []string{"instant-transfer", "outbox-status"}},
	}
}

// Scrub configures the traffic scrubber in front of every route.
type Scrub struct {
	// Enabled runs the scrubber. Default true.
	Enabled *bool `yaml:"enabled"`
	// TrustedProxies are CIDR prefixes of load balancers whose
	// X-Forwarded-For is believed; from anyone else it is ignored.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// PartnerPrefixes is no longer accepted: a source address is not an
	// identity. Partners are identified by their client certificate (or a
	// partner client's token) under partners:, and those are what the
	// scrubber exempts. Kept only to refuse old configs with that message
	// instead of letting a partner exemption silently disappear.
	PartnerPrefixes []string `yaml:"partner_prefixes,omitempty"`
	// RedisURL, when set, shares rate limits between gateways through Redis
	// (falling back to local limits if Redis is lost).
	RedisURL string `yaml:"redis_url"`
	// WarmUp is how long a route learns its traffic baseline after start
	// before the scrubber may call a surge (default 30s). Drills that play a
	// day in minutes shorten it, since their gateway has not been up all
	// morning.
	WarmUp time.Duration `yaml:"warm_up"`
}

// ScrubEnabled reports whether the scrubber runs.
func (c *Config) ScrubEnabled() bool { return c.Scrub.Enabled == nil || *c.Scrub.Enabled }

// Journal chooses the durable journal of stand-in decisions and outbox
// transfers. Entries hold card numbers, so their bodies are sealed
// (AES-256-GCM) under a 32-byte key, and journal.db is readable by its owner
// only. With backend sqlite the key is data_dir/journal.key, created (mode
// 0600) on first start. With backend postgres every node sharing the table
// needs the same key, so none is created: give it in the environment as
// REMPART_JOURNAL_KEY (base64, e.g. `head -c 32 /dev/urandom | base64`) or
// copy one file of 32 bytes to data_dir/journal.key (mode 0600) on every
// node. A key file readable by others, or of another size, is refused. Lose
// the key and the entries cannot be read: back it up apart from the journal.
type Journal struct {
	// Backend is "sqlite" (default: data_dir/journal.db) or "postgres".
	Backend string `yaml:"backend"`
	// DatabaseURL is the PostgreSQL to use with backend postgres, e.g.
	// postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
	DatabaseURL string `yaml:"database_url"`
	// ReplayRate bounds replays to a recovering core, per second. Default 50.
	ReplayRate float64 `yaml:"replay_rate"`
	// Lease is how long the entries a node's replayer has claimed stay its
	// own: nodes sharing a postgres journal never replay the same entry
	// while its lease lasts, and a dead node's entries are taken over by
	// another once it ends. Between 20s (twice the 10s a replayed call may
	// take) and 1h; default 30s. Node clocks must agree to well within it.
	Lease time.Duration `yaml:"lease"`
	// Retention is how long an entry is kept once it is done (replayed to
	// the core, or a stand-in decline), e.g. 72h. Default 24h, the least
	// allowed: stand-in rebuilds each card's daily limit from the day's
	// entries after a restart, and answers a retried key from its entry.
	// At most 8760h (a year). Entries still pending are never purged.
	Retention time.Duration `yaml:"retention"`
}

// StandIn configures how the nodes of a cluster share the stand-in limits
// (per transaction, per card per day, total exposure).
type StandIn struct {
	// Nodes is how many gateways take stand-in decisions for the bank.
	// Each node alone approves its share (the per-card daily and total
	// limits divided by nodes) while the shared counters are unset or
	// unreachable, never the whole limit. Between 1 and 64; default 1.
	Nodes int `yaml:"nodes"`
	// RedisURL is the Redis whose counters every node checks and adds to
	// atomically, so the cluster approves no more than one node would, e.g.
	// redis://127.0.0.1:6379/0. Default sessions.redis_url when
	// sessions.backend is redis. Each call has 50ms; past that, or with
	// Redis down, the node decides on its share for a second, logs the
	// change once and counts rempart_breaker_standin_shared_fallbacks_total.
	RedisURL string `yaml:"redis_url"`
}

// Identity configures the built-in OpenID provider (served on the public
// listener: discovery, /keys, /oauth/*, /login). Its upstream name in routes
// is "identity".
type Identity struct {
	// Enabled runs the provider. Default true.
	Enabled *bool `yaml:"enabled"`
	// Issuer is the provider's public URL, as clients reach it. Default
	// http:// + listen.
	Issuer string `yaml:"issuer"`
	// PasswordHash sets the argon2id costs of the embedded customer
	// directory. The default is OWASP's first option (memory_kib: 19456,
	// time: 2), about 26 ms of one core per check; lower it only to size a
	// drill to a small machine, never in production.
	PasswordHash PasswordHash `yaml:"password_hash"`
	// Keys chooses where the signing keys and the device-cookie key live.
	Keys IdentityKeys `yaml:"keys"`
	// PasswordResetURL is the bank's own page for choosing a new password
	// (https), linked from the login's "forgot your password?" page. Empty,
	// that page says how to reach the bank instead.
	PasswordResetURL string `yaml:"password_reset_url"`
	// MaxLoginRate caps the logins a second the login waiting room lets
	// through to the password check, whatever it measures the provider can
	// take: for a directory behind it that is known to fall over above a
	// rate, or to hold logins back on purpose (the browser tests use 1 to
	// put a customer in the line). Its floor follows it down when below 5.
	// Default 0: no cap but the room's own 1000.
	MaxLoginRate float64 `yaml:"max_login_rate"`
}

// IdentityKeys chooses the store of the provider's signing keys (and of the
// device-cookie key). Nodes of a cluster must share it: a token signed by one
// node is then accepted by every node, and all publish the same JWKS.
type IdentityKeys struct {
	// Backend is "file" (default: data_dir/identity/keys.json, one node's
	// own) or "postgres" (one row every node shares; exactly one node
	// rotates, the others reload the set every minute and on an unknown key
	// id).
	Backend string `yaml:"backend"`
	// DatabaseURL is the PostgreSQL to use with backend postgres. Default
	// journal.database_url.
	DatabaseURL string `yaml:"database_url"`
	// KEKEnv names the environment variable holding the key-encryption key
	// that seals the set at rest (AES-256-GCM): base64 of 32 random bytes,
	// e.g. `head -c 32 /dev/urandom | base64`, the same on every node.
	// Default REMPART_KEYS_KEK. Required with backend postgres (rempart
	// refuses to start without it); with backend file, keys.json is sealed
	// when the variable is set. Lose it and every token must be reissued:
	// back it up apart from the database.
	KEKEnv string `yaml:"kek_env"`
}

// PasswordHash is an argon2id cost; zero fields take OWASP's.
type PasswordHash struct {
	// MemoryKiB is the memory one hash fills, in KiB (8 to 4194304).
	MemoryKiB uint32 `yaml:"memory_kib"`
	// Time is the number of passes over that memory (1 to 16).
	Time uint32 `yaml:"time"`
}

// Sessions chooses the session store.
type Sessions struct {
	// Backend is "memory" (default: sharded in memory, durable in data_dir)
	// or "redis" (shared between nodes, native TTLs).
	Backend string `yaml:"backend"`
	// RedisURL is the Redis to use with backend redis, e.g.
	// redis://127.0.0.1:6379/0.
	RedisURL string `yaml:"redis_url"`
	// MaxPerCustomer bounds live sessions per customer; the oldest go first.
	// Default 10.
	MaxPerCustomer int `yaml:"max_per_customer"`
	// RequirePersistence, with backend redis, refuses to start unless Redis
	// keeps every acknowledged write across its restart (appendonly yes,
	// appendfsync always). Off, serve starts and logs at error level what a
	// Redis restart would lose.
	RequirePersistence bool `yaml:"require_persistence"`
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
	// OpsURL is the ops listener of a remote `rempart estate` this gateway
	// fronts instead of one in process (estate.enabled false; its channels
	// are an upstream's url). Login codes go out through its SMS gateway,
	// /ops/estate/* is passed on to it, and without routes the default ones
	// are its channels. The nodes of a cluster point at the same one, and
	// so share one bank; seed and customers must be the estate's own.
	OpsURL string `yaml:"ops_url"`
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
	// Upstream names an entry of upstreams ("identity" is the built-in
	// OpenID provider).
	Upstream string `yaml:"upstream"`
	// Auth is none (default: a public route), optional (a valid bearer
	// token raises the request to the important tier), required (401
	// without a valid customer token, unless a partner the route admits
	// presents its certificate) or partner (only the partners whose routes
	// list this one).
	Auth string `yaml:"auth"`
	// Scope is the scope a customer token needs here, e.g. accounts or
	// payments; 403 insufficient-scope without it.
	Scope string `yaml:"scope"`
	// Owner names what the customer must own: customer (the path's
	// {customer}), account (the path's {account}) or from (the JSON body's
	// "from" account). Someone else's gets 403 not-owner.
	Owner string `yaml:"owner"`
	// SCAMaxAge, when set, asks for a strong customer authentication (a
	// second factor in the token's amr, PSD2) at most this old; older or
	// weaker tokens get 401 with error="insufficient_user_authentication".
	SCAMaxAge time.Duration `yaml:"sca_max_age"`
	// Services are client-credentials clients admitted on this route as
	// themselves. By default a service token reaches no customer data.
	Services []string `yaml:"services"`
	// Fallback is what answers when the upstream's breaker is open or the
	// call fails: none (default: 503 with Retry-After), stale (last good
	// answer, marked stale), standin (card/ATM stand-in processing within
	// risk limits, journaled and replayed) or outbox (instant transfers
	// accepted with 202 and executed exactly once later).
	Fallback string `yaml:"fallback"`
	// Timeout bounds one call before the fallback answers. Default: the
	// upstream's timeout.
	Timeout time.Duration `yaml:"timeout"`
	// Pool names the admission pool: routes whose calls land on the same
	// back end share one adaptive limit (a bulkhead per back end). Default:
	// the upstream's name.
	Pool string `yaml:"pool"`
}

// Default returns the configuration used when no file is given.
func Default() *Config {
	c := &Config{}
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.Identity.Enabled == nil {
		on := true
		c.Identity.Enabled = &on
	}
	if c.Journal.Backend == "" {
		c.Journal.Backend = "sqlite"
	}
	if c.Identity.Keys.Backend == "" {
		c.Identity.Keys.Backend = "file"
	}
	if c.Identity.Keys.Backend == "postgres" && c.Identity.Keys.DatabaseURL == "" {
		c.Identity.Keys.DatabaseURL = c.Journal.DatabaseURL
	}
	if c.Identity.Keys.KEKEnv == "" {
		c.Identity.Keys.KEKEnv = "REMPART_KEYS_KEK"
	}
	if c.Journal.ReplayRate == 0 {
		c.Journal.ReplayRate = 50
	}
	if c.StandIn.Nodes == 0 {
		c.StandIn.Nodes = 1
	}
	if c.Journal.Lease == 0 {
		c.Journal.Lease = 30 * time.Second
	}
	if c.Journal.Retention == 0 {
		c.Journal.Retention = 24 * time.Hour
	}
	if c.Sessions.Backend == "" {
		c.Sessions.Backend = "memory"
	}
	if c.Sessions.MaxPerCustomer == 0 {
		c.Sessions.MaxPerCustomer = 10
	}
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
	if c.OpsAuth == "" {
		c.OpsAuth = "webauthn"
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
	if c.TLS.Plaintext == "" {
		c.TLS.Plaintext = "loopback"
	}
	if c.Partners == nil && c.DemoPKI() {
		c.Partners, c.partnersDefaulted = DemoPartners(), true
	}
	for i := range c.Partners {
		if len(c.Partners[i].Subjects) == 0 && c.DemoPKI() {
			c.Partners[i].Subjects = []string{c.Partners[i].Name + ".partners.rempart.test"}
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

// IdentityEnabled reports whether the built-in OpenID provider runs.
func (c *Config) IdentityEnabled() bool { return c.Identity.Enabled != nil && *c.Identity.Enabled }

// IdentityUpstream is the reserved upstream name of the built-in provider.
const IdentityUpstream = "identity"

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
		return nil, yamlError(name, err, fields{})
	}
	f := fields{line: map[string]int{}, value: map[string]*yaml.Node{}}
	if len(root.Content) > 0 {
		doc := root.Content[0]
		f.line[""], f.value[""] = doc.Line, doc
		f.index(doc, "")
	}
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(name, err, f)
	}
	c.setDefaults()
	if errs := c.validate(); len(errs) > 0 {
		e := errs[0]
		e.File = name
		e.Line = f.lineOf(e.Field)
		return nil, e
	}
	return c, nil
}

var (
	yamlLine     = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownField = regexp.MustCompile(`^field (.+) not found in type \S+$`)
	wrongType    = regexp.MustCompile("^cannot unmarshal (\\S+)(?: `.*`)? into (\\S+)$")
	duplicateKey = regexp.MustCompile(`^mapping key (".*") already defined at (line \d+)$`)
)

// yamlError turns a yaml.v3 error into one that starts with file:line and,
// for an unknown field or a value of the wrong type, names the field: yaml.v3
// reports only a line, so the field is found in f by its line and key or value.
func yamlError(name string, err error, f fields) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n")
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.TrimSpace(strings.SplitN(msg, "\n", 2)[0])
	m := yamlLine.FindStringSubmatch(msg)
	if m == nil {
		return &Error{File: name, Msg: msg}
	}
	e := &Error{File: name, Msg: m[2]}
	e.Line, _ = strconv.Atoi(m[1])
	if u := unknownField.FindStringSubmatch(m[2]); u != nil {
		e.Field, e.Msg = f.byKey(e.Line, u[1]), "unknown field"
	} else if d := duplicateKey.FindStringSubmatch(m[2]); d != nil {
		if key, err := strconv.Unquote(d[1]); err == nil {
			e.Field, e.Msg = f.byKey(e.Line, key), "already set at "+d[2]
		}
	} else if t := wrongType.FindStringSubmatch(m[2]); t != nil {
		if p, ok := f.byValue(e.Line, t[1], t[2], m[2]); ok {
			e.Field, e.Line = p, f.lineOf(p)
			e.Msg = wantType(t[2], f.value[p])
		}
	}
	return e
}

// wantType says what a field of Go type goType accepts, in the user's terms.
func wantType(goType string, n *yaml.Node) string {
	var want string
	switch {
	case goType == "time.Duration":
		want = "a duration such as 250ms, 15s or 2m"
	case goType == "bool":
		want = "true or false"
	case goType == "string":
		want = "a string"
	case strings.HasPrefix(goType, "int") || strings.HasPrefix(goType, "uint"):
		want = "an integer"
	case strings.HasPrefix(goType, "[]"):
		want = "a list"
	default:
		want = "a mapping"
	}
	if n != nil && n.Kind == yaml.ScalarNode {
		return fmt.Sprintf("%q must be %s", n.Value, want)
	}
	return "must be " + want
}

// fields locates every field path of a document, e.g. "routes[2].tier":
// the line of its key (of the item, in a list) and its value node.
type fields struct {
	line  map[string]int
	value map[string]*yaml.Node
}

func (f fields) index(n *yaml.Node, prefix string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if prefix != "" {
				p = prefix + "." + k.Value
			}
			f.line[p], f.value[p] = k.Line, v
			f.index(v, p)
		}
	case yaml.SequenceNode:
		for i, v := range n.Content {
			p := fmt.Sprintf("%s[%d]", prefix, i)
			f.line[p], f.value[p] = v.Line, v
			f.index(v, p)
		}
	}
}

// lineOf finds the line of a field, or of its nearest parent that is in the
// file (a missing field is reported where its parent is, a missing top-level
// field where the document starts).
func (f fields) lineOf(field string) int {
	for p := field; ; {
		if l, ok := f.line[p]; ok {
			return l
		}
		if p == "" {
			return 0
		}
		if i := strings.LastIndexAny(p, ".["); i >= 0 {
			p = p[:i]
		} else {
			p = ""
		}
	}
}

// byKey finds the path of the key named key on line. It falls back to the
// bare key.
func (f fields) byKey(line int, key string) string {
	for _, p := range f.paths() {
		if f.line[p] == line && (p == key || strings.HasSuffix(p, "."+key)) {
			return p
		}
	}
	return key
}

// byValue finds the path yaml.v3 reported in msg: a field decoding into
// goType whose value is a node of the tag's kind on line and, for a scalar,
// is quoted in msg the way yaml.v3 quotes it.
func (f fields) byValue(line int, tag, goType, msg string) (string, bool) {
	for _, p := range f.paths() {
		v := f.value[p]
		for v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		if v.Line != line {
			continue
		}
		// yaml.v3 names the pointed-to type of a pointer field.
		if t := typeAt(p); t == nil || strings.TrimPrefix(t.String(), "*") != goType {
			continue
		}
		switch v.Kind {
		case yaml.SequenceNode, yaml.MappingNode:
			if tag == "!!seq" && v.Kind == yaml.SequenceNode || tag == "!!map" && v.Kind == yaml.MappingNode {
				return p, true
			}
		case yaml.ScalarNode:
			s := v.Value
			if len(s) > 10 {
				s = s[:7] + "..."
			}
			if strings.Contains(msg, " `"+s+"` into ") {
				return p, true
			}
		}
	}
	return "", false
}

// typeAt returns the Go type that the field at path decodes into, or nil
// when path names no field of Config.
func typeAt(path string) reflect.Type {
	t := reflect.TypeFor[Config]()
	for path != "" {
		if path[0] == '[' {
			i := strings.IndexByte(path, ']')
			if i < 0 || t.Kind() != reflect.Slice {
				return nil
			}
			t, path = t.Elem(), path[i+1:]
			continue
		}
		path = strings.TrimPrefix(path, ".")
		end := strings.IndexAny(path, ".[")
		if end < 0 {
			end = len(path)
		}
		name := path[:end]
		path = path[end:]
		if t.Kind() != reflect.Struct {
			return nil
		}
		found := false
		for i := range t.NumField() {
			if sf := t.Field(i); sf.Tag.Get("yaml") == name {
				t, found = sf.Type, true
				break
			}
		}
		if !found {
			return nil
		}
	}
	return t
}

// paths lists the field paths in a stable order, so that an ambiguous line
// (flow style puts many fields on one) resolves the same way every time.
func (f fields) paths() []string {
	ps := make([]string, 0, len(f.line))
	for p := range f.line {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

var routeName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

func (c *Config) validate() []*Error {
	var errs []*Error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &Error{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	for _, f := range []struct{ field, addr string }{{"listen", c.Listen}, {"ops_listen", c.OpsListen}} {
		if _, port, err := net.SplitHostPort(f.addr); err != nil {
			bad(f.field, "%q is not host:port", f.addr)
		} else if _, err := net.LookupPort("tcp", port); err != nil {
			bad(f.field, "%q has no valid port", f.addr)
		}
	}
	if c.OpsAuth != "webauthn" && c.OpsAuth != "none" {
		bad("ops_auth", "%q must be webauthn or none", c.OpsAuth)
	} else if c.OpsAuth == "none" && !loopbackListen(c.OpsListen) {
		bad("ops_auth", "none is refused on an ops listener that is not on loopback (%s): anyone reaching it could switch faults and read SMS codes", c.OpsListen)
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
		if u.URL == InProcess {
			if !c.EstateEnabled() {
				bad(p+".url", "%q needs the estate, but estate.enabled is false", InProcess)
			}
		} else {
			pu, err := url.Parse(u.URL)
			if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
				bad(p+".url", "%q must be an http(s) URL or %q", u.URL, InProcess)
			}
		}
		if u.Timeout < 0 {
			bad(p+".timeout", "must not be negative")
		}
	}
	if o := c.Estate.OpsURL; o != "" {
		pu, err := url.Parse(o)
		switch {
		case err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "":
			bad("estate.ops_url", "%q must be an http(s) URL: a remote rempart estate's ops listener", o)
		case c.EstateEnabled():
			bad("estate.ops_url", "a remote estate and one in process are exclusive: set estate.enabled false")
		}
		remote := false
		for _, u := range c.Upstreams {
			remote = remote || u.URL != InProcess
		}
		if !remote {
			bad("upstreams", "estate.ops_url needs an upstream with the remote estate's channels url")
		}
	}
	if len(c.Routes) == 0 && !c.EstateEnabled() && c.Estate.OpsURL == "" {
		bad("routes", "is required when the in-process estate is disabled (or estate.ops_url names a remote one)")
	}
	names := map[string]bool{}
	patterns := map[string]int{}
	probe := newMuxProbe()
	for i, r := range c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		switch {
		case !routeName.MatchString(r.Name):
			bad(p+".name", "%q must be lower-case letters, digits and dashes", r.Name)
		case names[r.Name]:
			bad(p+".name", "duplicate route %q", r.Name)
		}
		names[r.Name] = true
		if j, dup := patterns[r.Match]; dup {
			bad(p+".match", "duplicate pattern %q, also routes[%d].match", r.Match, j)
		} else if err := checkPattern(newMuxProbe(), r.Match); err != nil {
			bad(p+".match", "%v", err)
		} else if err := checkPattern(probe, r.Match); err != nil {
			// Valid alone, so it conflicts with an earlier route: name it.
			j := slices.IndexFunc(c.Routes[:i], func(o Route) bool { return conflict(o.Match, r.Match) })
			if j >= 0 {
				bad(p+".match", "%q conflicts with routes[%d].match %q", r.Match, j, c.Routes[j].Match)
			} else {
				bad(p+".match", "%v", err)
			}
		}
		if _, dup := patterns[r.Match]; !dup {
			patterns[r.Match] = i
		}
		if _, err := tier.Parse(r.Tier); err != nil {
			bad(p+".tier", "%v", err)
		}
		if !ups[r.Upstream] && !(r.Upstream == IdentityUpstream && c.IdentityEnabled()) {
			bad(p+".upstream", "%q is not a configured upstream", r.Upstream)
		}
		switch strings.ToLower(r.Auth) {
		case "", "none", "optional", "required", "partner":
		default:
			bad(p+".auth", "%q must be none, optional, required or partner", r.Auth)
		}
		switch r.Owner {
		case "", "customer", "account", "from":
		default:
			bad(p+".owner", "%q must be customer, account or from", r.Owner)
		}
		if r.SCAMaxAge < 0 || r.SCAMaxAge > 24*time.Hour {
			bad(p+".sca_max_age", "must be between 1s and 24h")
		}
		switch r.Fallback {
		case "", "none", "stale", "standin", "outbox":
		default:
			bad(p+".fallback", "%q must be none, stale, standin or outbox", r.Fallback)
		}
		if r.Timeout < 0 {
			bad(p+".timeout", "must not be negative")
		}
	}
	switch c.Sessions.Backend {
	case "memory":
	case "redis":
		if u, err := url.Parse(c.Sessions.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
			bad("sessions.redis_url", "%q must be a redis:// or rediss:// URL when backend is redis", c.Sessions.RedisURL)
		}
	default:
		bad("sessions.backend", "%q must be memory or redis", c.Sessions.Backend)
	}
	if c.Sessions.RequirePersistence && c.Sessions.Backend != "redis" {
		bad("sessions.require_persistence", "applies to backend redis (the memory backend writes its own log)")
	}
	for _, l := range []struct {
		field string
		list  []string
	}{{"scrub.trusted_proxies", c.Scrub.TrustedProxies}} {
		for i, p := range l.list {
			if _, err := netip.ParsePrefix(p); err != nil {
				bad(fmt.Sprintf("%s[%d]", l.field, i), "%q is not a CIDR prefix such as 10.0.0.0/8", p)
			}
		}
	}
	if c.Scrub.PartnerPrefixes != nil {
		bad("scrub.partner_prefixes", "is no longer supported: partners are identified by their client certificate "+
			"(partners: in the config), not by source address; remove it")
	}
	if c.Scrub.RedisURL != "" {
		if u, err := url.Parse(c.Scrub.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
			bad("scrub.redis_url", "%q must be a redis:// or rediss:// URL", c.Scrub.RedisURL)
		}
	}
	switch c.Identity.Keys.Backend {
	case "file":
	case "postgres":
		if u, err := url.Parse(c.Identity.Keys.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			bad("identity.keys.database_url", "%q must be a postgres:// URL when backend is postgres (default journal.database_url)", c.Identity.Keys.DatabaseURL)
		}
	default:
		bad("identity.keys.backend", "%q must be file or postgres", c.Identity.Keys.Backend)
	}
	if r := c.Identity.PasswordResetURL; r != "" {
		if u, err := url.Parse(r); err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && loopbackHost(u.Hostname()))) {
			bad("identity.password_reset_url", "%q must be an https:// URL (http only on a loopback host)", r)
		}
	}
	if r := c.Identity.MaxLoginRate; r < 0 || math.IsNaN(r) {
		bad("identity.max_login_rate", "%v must be 0 (no cap) or more", r)
	}
	if !envName.MatchString(c.Identity.Keys.KEKEnv) {
		bad("identity.keys.kek_env", "%q must be an environment variable name such as REMPART_KEYS_KEK", c.Identity.Keys.KEKEnv)
	}
	switch c.Journal.Backend {
	case "sqlite":
	case "postgres":
		if u, err := url.Parse(c.Journal.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			bad("journal.database_url", "%q must be a postgres:// URL when backend is postgres", c.Journal.DatabaseURL)
		}
	default:
		bad("journal.backend", "%q must be sqlite or postgres", c.Journal.Backend)
	}
	if !(c.Journal.ReplayRate > 0 && c.Journal.ReplayRate <= 100_000) {
		bad("journal.replay_rate", "must be between 0 and 100000 per second")
	}
	if c.StandIn.Nodes < 1 || c.StandIn.Nodes > 64 {
		bad("standin.nodes", "%d must be between 1 and 64", c.StandIn.Nodes)
	}
	if c.StandIn.RedisURL != "" {
		if u, err := url.Parse(c.StandIn.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
			bad("standin.redis_url", "%q must be a redis:// or rediss:// URL", c.StandIn.RedisURL)
		}
	}
	if c.Journal.Lease < 20*time.Second || c.Journal.Lease > time.Hour {
		bad("journal.lease", "%v must be between 20s and 1h", c.Journal.Lease)
	}
	if c.Journal.Retention < 24*time.Hour || c.Journal.Retention > 8760*time.Hour {
		bad("journal.retention", "%v must be between 24h and 8760h", c.Journal.Retention)
	}
	if c.Sessions.MaxPerCustomer < 1 || c.Sessions.MaxPerCustomer > 1000 {
		bad("sessions.max_per_customer", "must be between 1 and 1000")
	}
	if c.Scrub.WarmUp < 0 || c.Scrub.WarmUp > time.Hour {
		bad("scrub.warm_up", "must be between 1s and 1h")
	}
	if ph := c.Identity.PasswordHash; ph.MemoryKiB != 0 && (ph.MemoryKiB < 8 || ph.MemoryKiB > 4<<20) {
		bad("identity.password_hash.memory_kib", "must be between 8 and 4194304")
	}
	if ph := c.Identity.PasswordHash; ph.Time > 16 {
		bad("identity.password_hash.time", "must be between 1 and 16")
	}
	switch c.TLS.Plaintext {
	case "loopback", "trusted_proxies", "off":
	default:
		bad("tls.plaintext", "%q must be loopback, trusted_proxies or off", c.TLS.Plaintext)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls.key_file", "cert_file and key_file go together")
	}
	if c.TLS.CertFile != "" && len(c.TLS.ClientCAFiles) == 0 && len(c.Partners) > 0 {
		bad("tls.client_ca_files", "is required with your own certificate: partners need the CA of their certificates")
	}
	pnames := map[string]bool{}
	for i, pt := range c.Partners {
		p := fmt.Sprintf("partners[%d]", i)
		switch {
		case !routeName.MatchString(pt.Name):
			bad(p+".name", "%q must be lower-case letters, digits and dashes", pt.Name)
		case pnames[pt.Name]:
			bad(p+".name", "duplicate partner %q", pt.Name)
		}
		pnames[pt.Name] = true
		if len(pt.Subjects) == 0 && len(pt.Clients) == 0 {
			bad(p+".subjects", "is required: the certificate names that identify %s", pt.Name)
		}
		if len(pt.Routes) == 0 {
			bad(p+".routes", "is required: the routes %s may call", pt.Name)
		}
		// Route names are checked by serve, which knows the default routes.
	}
	if c.Identity.Issuer != "" {
		if u, err := url.Parse(c.Identity.Issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("identity.issuer", "%q must be an http(s) URL", c.Identity.Issuer)
		}
	}
	return errs
}

// loopbackListen reports whether addr binds a loopback address only ("" and
// 0.0.0.0 bind every interface; a name other than localhost may resolve
// anywhere).
func loopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// loopbackHost reports whether a URL's host name is a loopback one.
func loopbackHost(h string) bool {
	a, err := netip.ParseAddr(h)
	return h == "localhost" || err == nil && a.IsLoopback()
}

// checkPattern registers p on mux, refusing what ServeMux would panic on: a
// bad pattern, or one that conflicts with a pattern already on mux.
func checkPattern(mux *http.ServeMux, p string) (err error) {
	if strings.TrimSpace(p) == "" {
		return errors.New("is required")
	}
	// ServeMux reads "POST v1/cards" as host "v1" and path "/cards": a route
	// that silently never matches. rempart routes by path only.
	path := p
	if _, rest, ok := strings.Cut(p, " "); ok {
		path = strings.TrimLeft(rest, " \t")
	}
	if !strings.HasPrefix(path, "/") {
		return fmt.Errorf("%q must be [METHOD ]/path (the path starts with /; host patterns are not supported)", p)
	}
	defer func() {
		if r := recover(); r != nil {
			// ServeMux's message repeats the pattern and, for a conflict,
			// explains it over several lines; keep the first line's reason.
			msg, _, _ := strings.Cut(fmt.Sprint(r), "\n")
			msg = strings.TrimPrefix(msg, fmt.Sprintf("parsing %q: ", p))
			err = fmt.Errorf("%q is not a valid pattern: %s", p, msg)
		}
	}()
	mux.Handle(p, nopHandler{})
	return nil
}

// conflict reports whether a is a valid pattern that b cannot be registered
// beside.
func conflict(a, b string) bool {
	mux := newMuxProbe()
	return checkPattern(mux, a) == nil && checkPattern(mux, b) != nil
}
