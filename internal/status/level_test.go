package status

import (
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		o    Outcome
		want class
	}{
		{"ok", Outcome{Status: 200}, served},
		{"created", Outcome{Status: 201}, served},
		{"stand-in approval", Outcome{Status: 200, Fallback: true}, fellBack},
		{"outbox accepted", Outcome{Status: 202, Fallback: true}, fellBack},
		{"shed by admission", Outcome{Status: 503, Shed: true}, shed},
		{"rate limited", Outcome{Status: 429}, shed},
		{"core down", Outcome{Status: 503, UpstreamFailure: true}, failed},
		{"gateway time-out", Outcome{Status: 504}, failed},
		{"upstream failure answered 200 by mistake", Outcome{Status: 200, UpstreamFailure: true}, failed},
		{"bad card number", Outcome{Status: 422}, ignored},
		{"not found", Outcome{Status: 404}, ignored},
		{"client gone", Outcome{Status: 499}, ignored},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(tt.o); got != tt.want {
				t.Errorf("classify(%+v) = %v, want %v", tt.o, got, tt.want)
			}
		})
	}
}

func TestJudge(t *testing.T) {
	tests := []struct {
		name        string
		s           signals
		want        Level
		wantReason  reason
		wantPartial bool
	}{
		{"no traffic", signals{}, Up, fine, false},
		{"all good", signals{t: tally{served: 1000}}, Up, fine, false},
		{"1 % failures is still up", signals{t: tally{served: 991, failed: 9}}, Up, fine, false},
		{"2 % failures", signals{t: tally{served: 98, failed: 2}}, Degraded, strained, false},
		{"60 % failures: down, 40 % still served", signals{t: tally{served: 40, failed: 60}}, Down, strained, true},
		{"95 % failures", signals{t: tally{served: 5, failed: 95}}, Down, strained, false},
		{"85 % failures, 15 % still served", signals{t: tally{served: 15, failed: 85}}, Down, strained, true},
		{"core down, stand-in answers all", signals{t: tally{fellBack: 100}}, Degraded, fallbacks, false},
		{"core down, stand-in answers a third", signals{t: tally{fellBack: 30, failed: 70}}, Down, fallbacks, true},
		{"a few fallbacks", signals{t: tally{served: 97, fellBack: 3}}, Up, fine, false},
		{"6 % fallbacks", signals{t: tally{served: 94, fellBack: 6}}, Degraded, fallbacks, false},
		{"6 % shed", signals{t: tally{served: 94, shed: 6}}, Degraded, strained, false},
		{"70 % shed", signals{t: tally{served: 30, shed: 70}}, Down, strained, true},
		{"p95 over the objective", signals{t: tally{served: 100, slow: 6}}, Degraded, strained, false},
		{"p95 within the objective", signals{t: tally{served: 100, slow: 5}}, Up, fine, false},
		{"too few answers to judge", signals{t: tally{served: 1, failed: 3}}, Up, fine, false},
		{"breaker open on a quiet channel", signals{breaker: "open"}, Degraded, strained, false},
		{"breaker half_open", signals{breaker: "HALF_OPEN"}, Degraded, strained, false},
		{"breaker closed", signals{breaker: "closed", t: tally{served: 50}}, Up, fine, false},
		{"admission sheds 10 %", signals{shedRatio: 0.1, t: tally{served: 50}}, Degraded, strained, false},
		{"a waiting line", signals{waiting: 300, wait: 4 * time.Minute, t: tally{served: 50, shed: 1}}, Degraded, line, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := judge(tt.s, 10)
			if v.level != tt.want || v.reason != tt.wantReason || v.partial != tt.wantPartial {
				t.Errorf("judge = %+v, want level %v reason %v partial %v", v, tt.want, tt.wantReason, tt.wantPartial)
			}
		})
	}
}

// TestHysteresis feeds one verdict a second and checks the level shown
// after each: worse after 2 s of at least that bad, better after 30 s of no
// worse.
func TestHysteresis(t *testing.T) {
	const U, D, X = Up, Degraded, Down
	rep := func(l Level, n int) []Level {
		s := make([]Level, n)
		for i := range s {
			s[i] = l
		}
		return s
	}
	cat := func(parts ...[]Level) []Level {
		var s []Level
		for _, p := range parts {
			s = append(s, p...)
		}
		return s
	}
	tests := []struct {
		name     string
		verdicts []Level
		want     []Level // level after each verdict; nil entries are not checked
	}{
		{
			name:     "a one-second blip does not show",
			verdicts: []Level{U, U, U, X, U, U, U},
			want:     []Level{U, U, U, U, U, U, U},
		},
		{
			name:     "two seconds down shows down",
			verdicts: []Level{U, U, U, X, X, X},
			want:     []Level{U, U, U, U, U, X},
		},
		{
			name:     "down then degraded: degraded once held, not down",
			verdicts: []Level{U, U, D, X, D, D},
			want:     []Level{U, U, U, U, D, D},
		},
		{
			name:     "recovery waits 30 s",
			verdicts: cat(rep(U, 3), rep(X, 3), rep(U, 31)),
			want:     cat(rep(U, 5), rep(X, 31), rep(U, 1)),
		},
		{
			name:     "recovery goes through the worst level of the last 30 s",
			verdicts: cat(rep(U, 3), rep(X, 3), rep(D, 10), rep(U, 30)),
			want:     cat(rep(U, 5), rep(X, 31), rep(D, 10)),
		},
		{
			name:     "flapping is shown at its worst",
			verdicts: cat(rep(U, 3), rep(X, 3), []Level{U, X, U, X, U, X, U, X, U, X, U, X}),
			want:     cat(rep(U, 5), rep(X, 13)),
		},
	}
	start := time.Date(2025, 12, 22, 8, 0, 0, 0, time.UTC)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h hysteresis
			for i, v := range tt.verdicts {
				h.update(start.Add(time.Duration(i)*time.Second), verdict{level: v}, 2*time.Second, 30*time.Second)
				if h.level != tt.want[i] {
					t.Fatalf("after verdict %d (%v): level %v, want %v", i, v, h.level, tt.want[i])
				}
			}
		})
	}
}
