package estate

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"
)

// acs is the 3-D Secure access control server: it issues SMS OTP challenges
// and verifies them. Like a real ACS it runs beside the banking core, not in
// it, which is why SMS 3-D Secure kept working on the day.
//
// It answers a challenge for a card no account holds exactly as for a card
// one does: a challenge id of the same shape, a masked phone number, the
// same limits, and verifications that fail as wrong codes do. Only no SMS is
// sent. Otherwise the route would tell anyone which card numbers exist.
type acs struct {
	ttl time.Duration
	// capacity bounds both the open challenges and the cards remembered
	// (those with an open challenge or one in the window), so that no
	// stream of challenges, for real cards or made-up ones, fills memory.
	capacity int
	sms      *Outbox
	// Per-card limits; newACS sets them from the constants below.
	livePerCard int
	perWindow   int
	window      time.Duration
	// decoyKey keys the masked phone number shown for an unknown card, so
	// that asking twice shows the same one.
	decoyKey []byte

	mu         sync.Mutex
	challenges map[string]*challenge      // by challenge id
	byKey      map[string]idempotentReply // by Idempotency-Key, for replays
	order      []string                   // challenge ids, oldest first, for pruning
	cards      map[string]*cardRecord     // by card number
	issued     []issue                    // challenges of the window, oldest first
}

type challenge struct {
	otp      string
	card     string
	amount   int64
	merchant string
	expires  time.Time
	attempts int
	decoy    bool // for an unknown card: no code can verify it
}

// cardRecord is what the ACS remembers of one card to enforce its limits.
type cardRecord struct {
	live   []string    // ids of its open challenges, oldest first
	issued []time.Time // its challenges of the window, oldest first
}

type issue struct {
	card string
	at   time.Time
}

type idempotentReply struct {
	fingerprint string
	reply       any
	expires     time.Time
}

const (
	// maxOTPAttempts is the number of codes a challenge accepts before it
	// dies: with six digits a guesser has 3 chances in a million per
	// challenge, and the per-card limits bound how many challenges it gets.
	maxOTPAttempts = 3
	// livePerCard is the number of open challenges a card may have: one
	// payment's code and two "send me a new code", the resend allowance
	// 3-D Secure ACSs commonly give. More is someone else sending SMS to the
	// cardholder.
	livePerCard = 3
	// challengesPerWindow challenges per challengeWindow let a customer try a
	// failed payment again a couple of times with a resend each, and cap
	// what an abuser gets from one card at 30 SMS an hour to its holder and
	// 15 code guesses per 10 minutes.
	challengesPerWindow = 5
	challengeWindow     = 10 * time.Minute
)

var (
	errChallengeUnknown = errors.New("unknown or expired challenge")
	errKeyReused        = errors.New("idempotency key reused with a different request")
	errACSFull          = errors.New("too many open challenges")
	errCardLimited      = errors.New("too many challenges for this card")
)

// refusal is a challenge refused for a while: errCardLimited or errACSFull,
// and how long until asking again can succeed.
type refusal struct {
	err  error
	wait time.Duration
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

func newACS(ttl time.Duration, capacity int, sms *Outbox) *acs {
	key := make([]byte, 32)
	rand.Read(key)
	return &acs{ttl: ttl, capacity: capacity, sms: sms,
		livePerCard: livePerCard, perWindow: challengesPerWindow, window: challengeWindow, decoyKey: key,
		challenges: map[string]*challenge{}, byKey: map[string]idempotentReply{}, cards: map[string]*cardRecord{}}
}

// prune drops expired challenges, replies and card records; called with
// a.mu held.
func (a *acs) prune(now time.Time) {
	i := 0
	for ; i < len(a.order); i++ {
		c, ok := a.challenges[a.order[i]]
		if ok && now.Before(c.expires) {
			break
		}
		if ok {
			a.drop(a.order[i], c)
		}
	}
	a.order = a.order[i:]
	i = 0
	for ; i < len(a.issued) && !now.Before(a.issued[i].at.Add(a.window)); i++ {
		if r := a.cards[a.issued[i].card]; r != nil {
			r.issued = r.issued[1:]
			a.forgetIdle(a.issued[i].card, r)
		}
	}
	a.issued = a.issued[i:]
	if len(a.byKey) > 2*a.capacity {
		for k, r := range a.byKey {
			if !now.Before(r.expires) {
				delete(a.byKey, k)
			}
		}
	}
}

// drop ends a challenge: expired, verified or out of attempts.
func (a *acs) drop(id string, c *challenge) {
	delete(a.challenges, id)
	r := a.cards[c.card]
	if r == nil {
		return
	}
	for j, l := range r.live {
		if l == id {
			r.live = append(r.live[:j], r.live[j+1:]...)
			break
		}
	}
	a.forgetIdle(c.card, r)
}

func (a *acs) forgetIdle(card string, r *cardRecord) {
	if len(r.live) == 0 && len(r.issued) == 0 {
		delete(a.cards, card)
	}
}

// replay returns the stored reply for a key, or errKeyReused.
func (a *acs) replay(key, fp string, now time.Time) (any, bool, error) {
	r, ok := a.byKey[key]
	if !ok || !now.Before(r.expires) {
		return nil, false, nil
	}
	if r.fingerprint != fp {
		return nil, false, errKeyReused
	}
	return r.reply, true, nil
}

// admit checks the card's limits and the store's room for one more
// challenge; called with a.mu held, after prune.
func (a *acs) admit(card string, now time.Time) error {
	r := a.cards[card]
	if r != nil {
		var wait time.Duration
		if len(r.live) >= a.livePerCard {
			wait = a.challenges[r.live[len(r.live)-a.livePerCard]].expires.Sub(now)
		}
		if len(r.issued) >= a.perWindow {
			wait = max(wait, r.issued[len(r.issued)-a.perWindow].Add(a.window).Sub(now))
		}
		if wait > 0 {
			return &refusal{errCardLimited, wait}
		}
	}
	// After prune, the oldest open challenge and the oldest issue of the
	// window are at the front of their queues: room comes back when they go.
	var wait time.Duration
	if len(a.challenges) >= a.capacity && len(a.order) > 0 {
		wait = a.challenges[a.order[0]].expires.Sub(now)
	}
	if r == nil && len(a.cards) >= a.capacity && len(a.issued) > 0 {
		wait = max(wait, a.issued[0].at.Add(a.window).Sub(now))
	}
	if wait > 0 {
		return &refusal{errACSFull, wait}
	}
	return nil
}

// Challenge sends a fresh OTP to the card holder's phone. known says whether
// an account holds the card: for an unknown card it does the same work and
// gives the same answer, without sending anything.
func (a *acs) Challenge(key string, req ThreeDSChallenge, phone string, known bool, now time.Time) (ThreeDSChallengeResult, bool, error) {
	fp := fmt.Sprintf("c|%s|%d|%s", req.Card, req.Amount, req.Merchant)
	// Both kinds of card pay for the decoy's number, the code and the text.
	if decoy := a.decoyPhone(req.Card); !known {
		phone = decoy
	}
	id := randomHex(16)
	otp := randomDigits(6)
	text := threeDSText(otp, req.Amount, req.Merchant)
	sentTo := maskPhone(phone)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.prune(now)
	if r, ok, err := a.replay(key, fp, now); err != nil || ok {
		res, _ := r.(ThreeDSChallengeResult)
		return res, ok, err
	}
	if err := a.admit(req.Card, now); err != nil {
		return ThreeDSChallengeResult{}, false, err
	}
	c := &challenge{otp: otp, card: req.Card, amount: req.Amount, merchant: merchantName(req.Merchant),
		expires: now.Add(a.ttl), decoy: !known}
	a.challenges[id] = c
	a.order = append(a.order, id)
	r := a.cards[req.Card]
	if r == nil {
		r = &cardRecord{}
		a.cards[req.Card] = r
	}
	r.live = append(r.live, id)
	r.issued = append(r.issued, now)
	a.issued = append(a.issued, issue{req.Card, now})
	if known {
		a.sms.Send(phone, text, now)
	}
	res := ThreeDSChallengeResult{ChallengeID: id, SentTo: sentTo, ExpiresAt: c.expires.UTC().Truncate(time.Second)}
	a.byKey[key] = idempotentReply{fingerprint: fp, reply: res, expires: c.expires}
	return res, false, nil
}

// decoyPhone is a phone number of the population's shape for a card no
// account holds, the same for the same card while the ACS runs.
func (a *acs) decoyPhone(card string) string {
	m := hmac.New(sha256.New, a.decoyKey)
	m.Write([]byte(card))
	v := binary.BigEndian.Uint32(m.Sum(nil)) % 100_000_000
	return fmt.Sprintf("+33 6 %02d %02d %02d %02d", v/1_000_000, v/10_000%100, v/100%100, v%100)
}

// Verify checks an OTP; after maxOTPAttempts wrong codes the challenge is dead.
func (a *acs) Verify(key string, req ThreeDSVerify, now time.Time) (ThreeDSVerifyResult, bool, error) {
	fp := "v|" + req.ChallengeID + "|" + req.OTP
	a.mu.Lock()
	defer a.mu.Unlock()
	a.prune(now)
	if r, ok, err := a.replay(key, fp, now); err != nil || ok {
		res, _ := r.(ThreeDSVerifyResult)
		return res, ok, err
	}
	c, ok := a.challenges[req.ChallengeID]
	if !ok || !now.Before(c.expires) {
		return ThreeDSVerifyResult{}, false, errChallengeUnknown
	}
	c.attempts++
	res := ThreeDSVerifyResult{AttemptsRemaining: maxOTPAttempts - c.attempts}
	// A decoy compares too, so that it takes as long; it never matches.
	if subtle.ConstantTimeCompare([]byte(c.otp), []byte(req.OTP)) == 1 && !c.decoy {
		res.Verified = true
		res.AttemptsRemaining = 0
	}
	if res.Verified || c.attempts >= maxOTPAttempts {
		a.drop(req.ChallengeID, c)
	}
	a.byKey[key] = idempotentReply{fingerprint: fp, reply: res, expires: c.expires}
	return res, false, nil
}

// Open returns the number of challenges awaiting verification.
func (a *acs) Open() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.challenges)
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func randomDigits(n int) string {
	b := make([]byte, n)
	ten := big.NewInt(10)
	for i := range b {
		d, _ := rand.Int(rand.Reader, ten)
		b[i] = byte('0' + d.Int64())
	}
	return string(b)
}

// maskPhone keeps the last two digits, as banks do in "code sent to ...".
func maskPhone(p string) string {
	digits := 0
	out := []byte(p)
	for i := len(out) - 1; i >= 0; i-- {
		if out[i] >= '0' && out[i] <= '9' {
			digits++
			if digits > 2 && i > 3 {
				out[i] = '*'
			}
		}
	}
	return string(out)
}
