package estate

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

const unknownCard = "4971111111111128" // 16 digits no account holds

// challengeAt asks acs for a challenge at now with a fresh key.
func challengeAt(a *acs, card string, known bool, now time.Time) (ThreeDSChallengeResult, error) {
	key := fmt.Sprintf("k-%s-%d-%d", card, now.UnixNano(), len(a.byKey))
	res, _, err := a.Challenge(key, ThreeDSChallenge{Card: card, Amount: 4200, Merchant: "Librairie"}, "+33 6 12 34 56 78", known, now)
	return res, err
}

// kill spends a challenge's attempts, as a customer who mistypes would.
func kill(t *testing.T, a *acs, id string, now time.Time) {
	t.Helper()
	for i := range maxOTPAttempts {
		if _, _, err := a.Verify(fmt.Sprintf("v-%s-%d", id, i), ThreeDSVerify{ChallengeID: id, OTP: "abcdef"}, now); err != nil {
			t.Fatalf("verify %d: %v", i, err)
		}
	}
}

func TestChallengeLimits(t *testing.T) {
	t0 := time.Date(2025, 12, 22, 10, 0, 0, 0, time.UTC)
	ttl := 5 * time.Minute
	type step struct {
		at      time.Duration // after t0
		card    string
		kill    bool          // spend the new challenge's attempts at once
		want    error         // nil, errCardLimited or errACSFull
		wait    time.Duration // the refusal's wait, when want is not nil
		wantLen int           // challenges open after the step
	}
	cases := []struct {
		name     string
		capacity int
		known    bool
		steps    []step
	}{
		{"live per card", 100, true, []step{
			{0, aliceCard, false, nil, 0, 1},
			{time.Minute, aliceCard, false, nil, 0, 2},
			{2 * time.Minute, aliceCard, false, nil, 0, 3},
			{3 * time.Minute, aliceCard, false, errCardLimited, 2 * time.Minute, 3},
			{3 * time.Minute, brunoCard, false, nil, 0, 4}, // another card is not affected
			{ttl, aliceCard, false, nil, 0, 4},             // her first expired
		}},
		{"per card per window", 100, true, []step{
			{0, aliceCard, true, nil, 0, 0},
			{time.Minute, aliceCard, true, nil, 0, 0},
			{2 * time.Minute, aliceCard, true, nil, 0, 0},
			{3 * time.Minute, aliceCard, true, nil, 0, 0},
			{4 * time.Minute, aliceCard, true, nil, 0, 0},
			{5 * time.Minute, aliceCard, true, errCardLimited, 5 * time.Minute, 0},
			{challengeWindow - time.Second, aliceCard, true, errCardLimited, time.Second, 0},
			{challengeWindow, aliceCard, false, nil, 0, 1},
		}},
		{"unknown cards have the same limits", 100, false, []step{
			{0, unknownCard, false, nil, 0, 1},
			{0, unknownCard, false, nil, 0, 2},
			{0, unknownCard, false, nil, 0, 3},
			{0, unknownCard, false, errCardLimited, ttl, 3},
		}},
		{"store full", 2, true, []step{
			{0, aliceCard, false, nil, 0, 1},
			{time.Minute, brunoCard, false, nil, 0, 2},
			// A new card waits for alice's record to leave the window,
			// alice for her challenge to expire.
			{2 * time.Minute, unknownCard, false, errACSFull, 8 * time.Minute, 2},
			{2 * time.Minute, aliceCard, false, errACSFull, 3 * time.Minute, 2},
			{ttl, aliceCard, false, nil, 0, 2},
			// Every challenge expired, but both cards are in their window.
			{challengeWindow, unknownCard, false, errACSFull, time.Minute, 0},
			{challengeWindow + time.Minute, unknownCard, false, nil, 0, 1},
		}},
		{"a full store of card records", 1, true, []step{
			{0, aliceCard, true, nil, 0, 0},
			{time.Minute, brunoCard, false, errACSFull, challengeWindow - time.Minute, 0},
			{challengeWindow, brunoCard, false, nil, 0, 1},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sms := NewOutbox(100)
			a := newACS(ttl, c.capacity, sms)
			for i, s := range c.steps {
				now := t0.Add(s.at)
				sent := len(sms.Latest("", 100))
				res, err := challengeAt(a, s.card, c.known, now)
				var r *refusal
				switch {
				case s.want == nil && err != nil:
					t.Fatalf("step %d: %v", i, err)
				case s.want != nil && (!errors.Is(err, s.want) || !errors.As(err, &r) || r.wait != s.wait):
					t.Fatalf("step %d: err %v (%+v), want %v waiting %s", i, err, r, s.want, s.wait)
				case s.want != nil && len(sms.Latest("", 100)) != sent:
					t.Fatalf("step %d: a refused challenge sent an SMS", i)
				}
				if s.kill && err == nil {
					kill(t, a, res.ChallengeID, now)
				}
				if n := a.Open(); n != s.wantLen {
					t.Fatalf("step %d: %d open challenges, want %d", i, n, s.wantLen)
				}
			}
		})
	}
}

// A refused challenge stores nothing: the same key asked again once there is
// room gets a new challenge, not the refusal.
func TestRefusedChallengeIsNotRemembered(t *testing.T) {
	t0 := time.Now()
	a := newACS(time.Minute, 1, NewOutbox(10))
	if _, err := challengeAt(a, brunoCard, true, t0); err != nil {
		t.Fatal(err)
	}
	req := ThreeDSChallenge{Card: aliceCard, Amount: 100, Merchant: "m"}
	if _, _, err := a.Challenge("same", req, "+33 6 12 34 56 78", true, t0); !errors.Is(err, errACSFull) {
		t.Fatalf("full store: %v", err)
	}
	res, replayed, err := a.Challenge("same", req, "+33 6 12 34 56 78", true, t0.Add(challengeWindow))
	if err != nil || replayed || res.ChallengeID == "" {
		t.Fatalf("after the expiry: %+v replayed=%v %v", res, replayed, err)
	}
}

// A challenge takes maxOTPAttempts codes and then none, not even the right
// one; its id is 128 random bits, so guessing another is no way round.
func TestVerifyAttemptLimit(t *testing.T) {
	sms := NewOutbox(10)
	a := newACS(time.Minute, 10, sms)
	now := time.Now()
	res, err := challengeAt(a, aliceCard, true, now)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(res.ChallengeID) {
		t.Errorf("challenge id %q is not 128 bits of hex", res.ChallengeID)
	}
	otp := sms.Latest("", 1)[0].Text[len("Code 3-D Secure "):][:6]
	wrong := "000000"
	if otp == wrong {
		wrong = "111111"
	}
	for i := range maxOTPAttempts {
		v, _, err := a.Verify(fmt.Sprint("w", i), ThreeDSVerify{ChallengeID: res.ChallengeID, OTP: wrong}, now)
		if err != nil || v.Verified || v.AttemptsRemaining != maxOTPAttempts-1-i {
			t.Fatalf("wrong code %d: %+v %v", i, v, err)
		}
	}
	if v, _, err := a.Verify("right", ThreeDSVerify{ChallengeID: res.ChallengeID, OTP: otp}, now); !errors.Is(err, errChallengeUnknown) || v.Verified {
		t.Fatalf("the right code after %d wrong ones: %+v %v", maxOTPAttempts, v, err)
	}
	if n := a.Open(); n != 0 {
		t.Errorf("%d challenges open after the last attempt, want 0", n)
	}
}

// shape is what an observer of an answer sees besides its values.
type shape struct {
	Status  int
	Headers []string
	Fields  []string
	Type    string
}

func shapeOf(t *testing.T, r reply) shape {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	typ, _ := m["type"].(string)
	return shape{Status: r.status, Headers: slices.Sorted(func(yield func(string) bool) {
		for k := range r.header {
			if !yield(k) {
				return
			}
		}
	}), Fields: slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}), Type: typ}
}

// TestUnknownCardLooksKnown performs the card-number enumeration: each answer
// for a card no account holds must look like the answer for a real card.
func TestUnknownCardLooksKnown(t *testing.T) {
	e, pub, _ := newTestEstate(t, nil)
	challenge := func(card, key string) reply {
		return do(t, "POST", pub.URL+PathThreeDSChallenge, write(key), `{"card":"`+card+`","amount":4200,"merchant":"Librairie"}`)
	}
	verify := func(id, key string) reply {
		return do(t, "POST", pub.URL+PathThreeDSVerify, write(key), `{"challenge_id":"`+id+`","otp":"abcdef"}`)
	}
	type run struct {
		challenges []reply
		verifies   []reply
		replay     reply
	}
	attack := func(card string) run {
		var r run
		for i := range livePerCard + 1 {
			r.challenges = append(r.challenges, challenge(card, fmt.Sprint(card, "-c", i)))
		}
		r.replay = challenge(card, card+"-c0")
		var ch ThreeDSChallengeResult
		json.Unmarshal(r.challenges[0].body, &ch)
		for i := range maxOTPAttempts + 1 {
			r.verifies = append(r.verifies, verify(ch.ChallengeID, fmt.Sprint(card, "-v", i)))
		}
		return r
	}
	known, unknown := attack(aliceCard), attack(unknownCard)
	compare := func(what string, k, u reply) {
		t.Helper()
		if ks, us := shapeOf(t, k), shapeOf(t, u); !slices.Equal(ks.Headers, us.Headers) || !slices.Equal(ks.Fields, us.Fields) ||
			ks.Status != us.Status || ks.Type != us.Type {
			t.Errorf("%s: known card %+v, unknown card %+v", what, ks, us)
		}
	}
	for i := range known.challenges {
		compare(fmt.Sprint("challenge ", i), known.challenges[i], unknown.challenges[i])
	}
	compare("replayed challenge", known.replay, unknown.replay)
	for i := range known.verifies {
		compare(fmt.Sprint("verify ", i), known.verifies[i], unknown.verifies[i])
		if string(known.verifies[i].body) != string(unknown.verifies[i].body) {
			t.Errorf("verify %d: known card %s, unknown card %s", i, known.verifies[i].body, unknown.verifies[i].body)
		}
	}
	if s := known.challenges[0].status; s != http.StatusCreated {
		t.Errorf("first challenge: %d %s", s, known.challenges[0].body)
	}
	last := known.challenges[livePerCard]
	if last.status != http.StatusTooManyRequests || last.header.Get("Retry-After") == "" || last.problem(t).Field != "card" {
		t.Errorf("challenge over the limit: %d %v %s", last.status, last.header, last.body)
	}
	// Only the real cardholder got messages, one per challenge.
	if n := len(e.SMS().Latest("", 100)); n != livePerCard {
		t.Errorf("%d SMS sent, want %d (none for the unknown card)", n, livePerCard)
	}
	// The masked number shown for an unknown card has the shape of a real
	// one and stays the same when asked again.
	var a, b ThreeDSChallengeResult
	json.Unmarshal(unknown.challenges[0].body, &a)
	json.Unmarshal(unknown.challenges[1].body, &b)
	if !regexp.MustCompile(`^\+33 \* \*\* \*\* \*\* \d\d$`).MatchString(a.SentTo) || a.SentTo != b.SentTo {
		t.Errorf("sent_to for an unknown card: %q then %q", a.SentTo, b.SentTo)
	}
}

// TestFullACSAnswers503 fills a small store: the next challenge, whatever
// its card, gets a 503 problem with Retry-After, and no SMS is sent.
func TestFullACSAnswers503(t *testing.T) {
	e, err := New(t.Context(), Config{DataDir: t.TempDir(), Seed: 7, Customers: 1000})
	if err != nil {
		t.Fatal(err)
	}
	e.acs = newACS(time.Minute, 2, e.sms)
	pub := httptest.NewServer(e.Handler())
	t.Cleanup(func() { pub.Close(); e.Close() })
	// A new card waits for the oldest card's window (10 minutes), a card
	// already known to the ACS for the oldest challenge to expire.
	cards := []struct {
		card, retryAfter string
	}{{aliceCard, ""}, {brunoCard, ""}, {unknownCard, "600"}, {aliceCard, "60"}}
	for i, c := range cards {
		card := c.card
		r := do(t, "POST", pub.URL+PathThreeDSChallenge, write(fmt.Sprint("k", i)), `{"card":"`+card+`","amount":100,"merchant":"m"}`)
		want := http.StatusCreated
		if i >= 2 {
			want = http.StatusServiceUnavailable
		}
		if r.status != want {
			t.Fatalf("challenge %d: %d %s, want %d", i, r.status, r.body, want)
		}
		if want == http.StatusServiceUnavailable {
			if p := r.problem(t); !strings.HasSuffix(p.Type, "/acs-full") || r.header.Get("Retry-After") != c.retryAfter {
				t.Errorf("challenge %d: %v %s", i, r.header, r.body)
			}
		}
	}
	if n, m := e.acs.Open(), len(e.SMS().Latest("", 10)); n != 2 || m != 2 {
		t.Errorf("%d challenges and %d SMS after a refusal, want 2 and 2", n, m)
	}
}

// A challenge for an unknown card cannot be verified, not even with the code
// the ACS drew for it, and spends its attempts like any other.
func TestDecoyNeverVerifies(t *testing.T) {
	a := newACS(time.Minute, 10, NewOutbox(10))
	now := time.Now()
	res, err := challengeAt(a, unknownCard, false, now)
	if err != nil {
		t.Fatal(err)
	}
	otp := a.challenges[res.ChallengeID].otp
	for i := range maxOTPAttempts {
		v, _, err := a.Verify(fmt.Sprint("v", i), ThreeDSVerify{ChallengeID: res.ChallengeID, OTP: otp}, now)
		if err != nil || v.Verified || v.AttemptsRemaining != maxOTPAttempts-1-i {
			t.Fatalf("attempt %d with the drawn code: %+v %v", i, v, err)
		}
	}
	if _, _, err := a.Verify("last", ThreeDSVerify{ChallengeID: res.ChallengeID, OTP: otp}, now); !errors.Is(err, errChallengeUnknown) {
		t.Fatalf("after the attempts: %v", err)
	}
}
