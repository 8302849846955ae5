package redis

import (
	"context"
	"fmt"
	"strings"
)

// Persistence is what the Redis server keeps of acknowledged writes across
// its own restart. The store cannot make Redis durable; it can tell, at
// start, whether a restart would lose every session and revocation.
type Persistence struct {
	// AOF is appendonly: every write logged. Fsync is appendfsync
	// ("always": nothing acknowledged is lost; "everysec": up to a second;
	// "no": what the kernel had not written).
	AOF   bool
	Fsync string
	// Snapshots is the save schedule ("" for none): a snapshot keeps what
	// was written up to its last run, minutes old.
	Snapshots string
}

// Persistence asks the server (CONFIG GET). A managed Redis that disables
// CONFIG answers an error: the caller cannot tell, and says so.
func (s *Store) Persistence(ctx context.Context) (Persistence, error) {
	m, err := s.c.ConfigGet(ctx, "*").Result()
	if err != nil {
		return Persistence{}, fmt.Errorf("redis CONFIG GET: %w", err)
	}
	return persistenceOf(m), nil
}

func persistenceOf(m map[string]string) Persistence {
	return Persistence{AOF: m["appendonly"] == "yes", Fsync: m["appendfsync"], Snapshots: strings.TrimSpace(m["save"])}
}

// Loss says in words what a Redis restart loses; "" when nothing
// acknowledged is lost (appendonly with appendfsync always).
func (p Persistence) Loss() string {
	switch {
	case p.AOF && p.Fsync == "always":
		return ""
	case p.AOF && p.Fsync == "everysec":
		return "up to the last second of sessions and revocations (appendfsync everysec; always loses none)"
	case p.AOF:
		return "what the kernel had not yet written (appendfsync " + p.Fsync + ")"
	case p.Snapshots != "":
		return "every session and revocation since the last snapshot (no appendonly; save " + p.Snapshots + ")"
	}
	return "every session and revocation (no appendonly, no snapshots): a restarted Redis logs every customer out and forgets every revoked grant"
}
