package main

import (
	"context"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rempart/rempart/internal/gateway"
)

// dependencies are the checks /readyz reports (gateway/readiness.go says
// what a balancer does with them): one per distinct Redis and PostgreSQL the
// configuration names, each also on rempart_dependency_up.
func (s *stack) dependencies() []gateway.Dependency {
	cfg := s.cfg
	redisURLs := map[string][]string{} // url -> roles
	add := func(m map[string][]string, url, role string) {
		if url != "" {
			m[url] = append(m[url], role)
		}
	}
	if cfg.Sessions.Backend == "redis" {
		add(redisURLs, cfg.Sessions.RedisURL, "sessions")
	}
	add(redisURLs, cfg.Scrub.RedisURL, "scrub")
	standin := cfg.StandIn.RedisURL
	if standin == "" && cfg.Sessions.Backend == "redis" {
		standin = cfg.Sessions.RedisURL
	}
	add(redisURLs, standin, "standin")
	pgURLs := map[string][]string{}
	if cfg.Journal.Backend == "postgres" {
		add(pgURLs, cfg.Journal.DatabaseURL, "journal")
	}
	if cfg.Identity.Keys.Backend == "postgres" {
		add(pgURLs, cfg.Identity.Keys.DatabaseURL, "keys")
	}

	up := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "rempart_dependency_up",
		Help: "1 while the dependency answered the last /readyz check, 0 after it failed."}, []string{"dependency"})
	if s.metrics != nil {
		s.metrics.Registry.MustRegister(up)
	}
	var deps []gateway.Dependency
	named := func(kind string, m map[string][]string, url string) string {
		if len(m) == 1 {
			return kind
		}
		roles := m[url]
		return kind + ":" + strings.Join(roles, "+")
	}
	for _, url := range sortedKeys(redisURLs) {
		rc, err := newRedis(url, scrubRedisTimeout)
		if err != nil {
			continue // the config check already refused it
		}
		s.closers = append(s.closers, rc.Close)
		deps = append(deps, gateway.Dependency{Name: named("redis", redisURLs, url),
			Check: func(ctx context.Context) error { return rc.Ping(ctx).Err() }})
	}
	for _, url := range sortedKeys(pgURLs) {
		pc := &pgCheck{url: url}
		s.closers = append(s.closers, pc.Close)
		deps = append(deps, gateway.Dependency{Name: named("postgres", pgURLs, url), Check: pc.Check})
	}
	for i, d := range deps {
		check := d.Check
		deps[i].Check = func(ctx context.Context) error {
			err := check(ctx)
			v := 1.0
			if err != nil {
				v = 0
			}
			up.WithLabelValues(d.Name).Set(v)
			return err
		}
	}
	return deps
}

func sortedKeys(m map[string][]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// pgCheck pings a PostgreSQL on a connection it keeps, made again after it
// breaks, so a probe every few seconds costs no new connection.
type pgCheck struct {
	url  string
	mu   sync.Mutex
	conn *pgx.Conn
}

func (p *pgCheck) Check(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn == nil || p.conn.IsClosed() {
		c, err := pgx.Connect(ctx, p.url)
		if err != nil {
			return err
		}
		p.conn = c
	}
	if err := p.conn.Ping(ctx); err != nil {
		p.conn.Close(context.Background())
		p.conn = nil
		return err
	}
	return nil
}

func (p *pgCheck) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conn != nil {
		return p.conn.Close(context.Background())
	}
	return nil
}
