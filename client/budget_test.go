package client_test

import (
	"sync"
	"testing"
	"time"

	"github.com/rempart/rempart/client"
)

// manualTime is a time source the test moves by hand.
type manualTime struct {
	mu sync.Mutex
	t  time.Time
}

func (m *manualTime) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.t
}

func (m *manualTime) Advance(d time.Duration) {
	m.mu.Lock()
	m.t = m.t.Add(d)
	m.mu.Unlock()
}

func TestRetryBudget(t *testing.T) {
	tests := []struct {
		name        string
		cfg         client.BudgetConfig
		calls       int
		wantAllowed int
	}{
		{"ten percent of many calls", client.BudgetConfig{}, 10_000, 1000},
		{"floor for few calls", client.BudgetConfig{}, 20, 10},
		{"no calls yet: the floor", client.BudgetConfig{}, 0, 10},
		{"own ratio and floor", client.BudgetConfig{Ratio: 0.2, MinRetries: 1}, 1000, 200},
		{"floor above the ratio", client.BudgetConfig{MinRetries: 500}, 1000, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &manualTime{t: time.Unix(1766395800, 0)}
			tt.cfg.Now = clock.Now
			b := client.NewRetryBudget(tt.cfg)
			for range tt.calls {
				b.Deposit()
			}
			allowed := 0
			for range tt.calls + 100 {
				if b.TryWithdraw() {
					allowed++
				}
			}
			if allowed != tt.wantAllowed {
				t.Errorf("%d calls allowed %d retries, want %d", tt.calls, allowed, tt.wantAllowed)
			}
		})
	}
}

// TestRetryBudgetInterleaved is the budget as clients use it: every call
// fails and asks for a retry at once. Over the run retries stay within 10 %
// of calls (plus the floor), whatever the order.
func TestRetryBudgetInterleaved(t *testing.T) {
	clock := &manualTime{t: time.Unix(1766395800, 0)}
	b := client.NewRetryBudget(client.BudgetConfig{Now: clock.Now})
	const calls = 100_000
	retries := 0
	for i := range calls {
		b.Deposit()
		if b.TryWithdraw() {
			retries++
		}
		if i%100 == 0 {
			clock.Advance(10 * time.Millisecond) // 10,000 calls a second
		}
	}
	// Per 10 s window, max(10 % of calls, 10): 10 % overall here.
	if limit := calls / 10; retries > limit || retries < limit*95/100 {
		t.Errorf("%d calls got %d retries, want just under %d", calls, retries, limit)
	}
}

func TestRetryBudgetWindowSlides(t *testing.T) {
	clock := &manualTime{t: time.Unix(1766395800, 0)}
	b := client.NewRetryBudget(client.BudgetConfig{Now: clock.Now, Window: 10 * time.Second, MinRetries: 1})
	for range 1000 {
		b.Deposit()
	}
	spend := func() (n int) {
		for b.TryWithdraw() {
			n++
		}
		return n
	}
	if n := spend(); n != 100 {
		t.Fatalf("first window: %d retries, want 100", n)
	}
	clock.Advance(5 * time.Second)
	if n := spend(); n != 0 {
		t.Fatalf("same window: %d more retries, want 0", n)
	}
	// Past the window the calls that paid for those retries are forgotten,
	// and so are the retries: only the floor is left.
	clock.Advance(10 * time.Second)
	if n := spend(); n != 1 {
		t.Fatalf("after the window: %d retries, want the floor of 1", n)
	}
}

func TestRetryBudgetConcurrent(t *testing.T) {
	b := client.NewRetryBudget(client.BudgetConfig{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	retries := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for range 5000 {
				b.Deposit()
				if b.TryWithdraw() {
					n++
				}
			}
			mu.Lock()
			retries += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if retries > 40_000/10 {
		t.Errorf("40000 calls got %d retries, want at most 4000", retries)
	}
}
