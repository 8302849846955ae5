package breaker

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// newTestRedisCounter opens a RedisCounter under a prefix of the test's own,
// whose keys are deleted when it ends; it skips without REDIS_URL.
func newTestRedisCounter(t *testing.T) (*RedisCounter, string) {
	t.Helper()
	url := os.Getenv("REDIS_URL")
	if url == "" {
		t.Skip("REDIS_URL not set: skipping Redis stand-in limit tests")
	}
	prefix := "rempart-test:standin:" + rand.Text()[:12] + ":"
	c, err := OpenRedisCounter(url, RedisOptions{Prefix: prefix, CardKey: []byte("test card key")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		opts, _ := redis.ParseURL(url)
		rc := redis.NewClient(opts)
		defer rc.Close()
		ctx := context.Background()
		keys, _ := rc.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			rc.Del(ctx, keys...)
		}
	})
	return c, prefix
}

// TestCounters runs every Counter through the same cases.
func TestCounters(t *testing.T) {
	for _, c := range []struct {
		name string
		new  func(t *testing.T) Counter
	}{
		{"local", func(*testing.T) Counter { return newLimiter(time.UTC) }},
		{"redis", func(t *testing.T) Counter { c, _ := newTestRedisCounter(t); return c }},
	} {
		t.Run(c.name, func(t *testing.T) { testCounter(t, c.new) })
	}
}

var (
	counterLimits = Limits{PerTransaction: 100_00, PerCardPerDay: 150_00, Exposure: 250_00}
	// monday is today: Redis lets a card's day expire once it is over.
	monday = time.Now().UTC().Truncate(24 * time.Hour)
)

// step is one call on a counter and what it must answer.
type step struct {
	op     string // reserve, release, settle
	key    string
	card   string
	amount int64
	day    time.Time
	want   string // reserve: the decline reason, "" to approve
}

func testCounter(t *testing.T, newCounter func(t *testing.T) Counter) {
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"within the card's day", []step{
			{"reserve", "a", "c1", 100_00, monday, ""},
			{"reserve", "b", "c1", 50_00, monday, ""},
			{"reserve", "c", "c1", 1, monday, ReasonDailyLimit},
		}},
		{"a declined reservation counts nothing", []step{
			{"reserve", "a", "c1", 100_00, monday, ""},
			{"reserve", "b", "c1", 60_00, monday, ReasonDailyLimit},
			{"reserve", "c", "c1", 50_00, monday, ""},
		}},
		{"another card's day is its own", []step{
			{"reserve", "a", "c1", 150_00, monday, ""},
			{"reserve", "b", "c2", 100_00, monday, ""},
		}},
		{"the next day starts afresh", []step{
			{"reserve", "a", "c1", 150_00, monday, ""},
			{"reserve", "b", "c1", 100_00, monday.AddDate(0, 0, 1), ""},
		}},
		{"the exposure cap spans cards and days", []step{
			{"reserve", "a", "c1", 100_00, monday, ""},
			{"reserve", "b", "c2", 100_00, monday, ""},
			{"reserve", "c", "c3", 50_01, monday.AddDate(0, 0, 1), ReasonExposureCap},
			{"reserve", "d", "c3", 50_00, monday.AddDate(0, 0, 1), ""},
		}},
		{"release gives back the day and the exposure", []step{
			{"reserve", "a", "c1", 150_00, monday, ""},
			{"release", "a", "c1", 150_00, monday, ""},
			{"reserve", "b", "c1", 150_00, monday, ""},
		}},
		{"release of one of two holds of a key", []step{
			{"reserve", "a", "c1", 100_00, monday, ""},
			{"reserve", "a", "c2", 100_00, monday, ""},
			{"release", "a", "c2", 100_00, monday, ""},
			{"settle", "a", "", 0, monday, ""},
			{"reserve", "b", "c3", 100_00, monday, ""},
			{"reserve", "c", "c4", 100_00, monday, ""},
			{"reserve", "d", "c5", 50_01, monday, ReasonExposureCap},
		}},
		{"settle ends the exposure, not the day", []step{
			{"reserve", "a", "c1", 100_00, monday, ""},
			{"reserve", "b", "c2", 100_00, monday, ""},
			{"settle", "a", "", 0, monday, ""},
			{"reserve", "c", "c3", 100_00, monday, ""},
			{"reserve", "d", "c1", 50_01, monday, ReasonDailyLimit},
		}},
		{"settling twice or an unknown key changes nothing", []step{
			{"reserve", "a", "c1", 100_00, monday, ""},
			{"reserve", "b", "c2", 100_00, monday, ""},
			{"settle", "a", "", 0, monday, ""},
			{"settle", "a", "", 0, monday, ""},
			{"settle", "nobody", "", 0, monday, ""},
			{"reserve", "c", "c3", 100_00, monday, ""},
			{"reserve", "d", "c4", 50_01, monday, ReasonExposureCap},
		}},
		{"releasing a settled key changes nothing", []step{
			{"reserve", "a", "c1", 100_00, monday, ""},
			{"settle", "a", "", 0, monday, ""},
			{"release", "a", "c1", 100_00, monday, ""},
			{"reserve", "b", "c2", 100_00, monday, ""},
			{"reserve", "c", "c3", 100_00, monday, ""},
			{"reserve", "d", "c4", 50_01, monday, ReasonExposureCap},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCounter(t)
			for i, s := range tc.steps {
				h := Hold{Key: s.key, Card: s.card, Amount: s.amount, Day: s.day}
				var (
					got string
					err error
				)
				switch s.op {
				case "reserve":
					got, err = c.Reserve(t.Context(), h, counterLimits)
				case "release":
					err = c.Release(t.Context(), h)
				case "settle":
					err = c.Settle(t.Context(), s.key)
				}
				if err != nil || got != s.want {
					t.Fatalf("step %d %+v: got %q, %v; want %q", i, s, got, err, s.want)
				}
			}
		})
	}
	t.Run("concurrent reservations stay within the limit", func(t *testing.T) {
		c := newCounter(t)
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			approved int64
		)
		for i := range 40 {
			wg.Go(func() {
				h := Hold{Key: fmt.Sprint("k", i), Card: "c1", Amount: 10_00, Day: monday}
				reason, err := c.Reserve(context.Background(), h, counterLimits)
				if err != nil {
					t.Error(err)
				}
				if reason == "" {
					mu.Lock()
					approved += h.Amount
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if approved != counterLimits.PerCardPerDay {
			t.Fatalf("approved %d together, want the card's day %d exactly", approved, counterLimits.PerCardPerDay)
		}
	})
}
