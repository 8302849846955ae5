package redis

import (
	"context"
	"strings"
	"testing"
)

func TestPersistenceLoss(t *testing.T) {
	for _, tc := range []struct {
		name string
		conf map[string]string
		want string // in Loss, "" for none
	}{
		{"aof always", map[string]string{"appendonly": "yes", "appendfsync": "always", "save": ""}, ""},
		{"aof every second", map[string]string{"appendonly": "yes", "appendfsync": "everysec"}, "up to the last second"},
		{"aof by the kernel", map[string]string{"appendonly": "yes", "appendfsync": "no"}, "kernel"},
		{"snapshots only", map[string]string{"appendonly": "no", "save": "3600 1 300 100"}, "since the last snapshot"},
		{"nothing", map[string]string{"appendonly": "no", "save": ""}, "logs every customer out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := persistenceOf(tc.conf).Loss()
			if tc.want == "" && got != "" || tc.want != "" && !strings.Contains(got, tc.want) {
				t.Errorf("Loss() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestPersistenceAsked: the store reads the real server's settings.
func TestPersistenceAsked(t *testing.T) {
	url := redisURL(t)
	s := newTestStore(t, url, Options{})
	p, err := s.Persistence(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.c.ConfigGet(context.Background(), "appendonly").Result()
	if err != nil {
		t.Fatal(err)
	}
	if p.AOF != (m["appendonly"] == "yes") {
		t.Errorf("Persistence %+v, server says appendonly %q", p, m["appendonly"])
	}
}
