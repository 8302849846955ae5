package estate

import (
	"crypto/rand"
	"crypto/subtle"
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
type acs struct {
	ttl      time.Duration
	capacity int
	sms      *Outbox

	mu         sync.Mutex
	challenges map[string]*challenge      // by challenge id
	byKey      map[string]idempotentReply // by Idempotency-Key, for replays
	order      []string                   // challenge ids, oldest first, for pruning
}

type challenge struct {
	otp      string
	card     string
	amount   int64
	merchant string
	expires  time.Time
	attempts int
	verified bool
}

type idempotentReply struct {
	fingerprint string
	reply       any
	expires     time.Time
}

const maxOTPAttempts = 3

var (
	errChallengeUnknown = errors.New("unknown or expired challenge")
	errKeyReused        = errors.New("idempotency key reused with a different request")
	errACSFull          = errors.New("too many open challenges")
)

func newACS(ttl time.Duration, capacity int, sms *Outbox) *acs {
	return &acs{ttl: ttl, capacity: capacity, sms: sms,
		challenges: map[string]*challenge{}, byKey: map[string]idempotentReply{}}
}

// prune drops expired challenges and replies; called with a.mu held.
func (a *acs) prune(now time.Time) {
	i := 0
	for ; i < len(a.order); i++ {
		c, ok := a.challenges[a.order[i]]
		if ok && now.Before(c.expires) {
			break
		}
		delete(a.challenges, a.order[i])
	}
	a.order = a.order[i:]
	if len(a.byKey) > 2*a.capacity {
		for k, r := range a.byKey {
			if !now.Before(r.expires) {
				delete(a.byKey, k)
			}
		}
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

// Challenge sends a fresh OTP to the card holder's phone.
func (a *acs) Challenge(key string, req ThreeDSChallenge, phone string, now time.Time) (ThreeDSChallengeResult, bool, error) {
	fp := fmt.Sprintf("c|%s|%d|%s", req.Card, req.Amount, req.Merchant)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.prune(now)
	if r, ok, err := a.replay(key, fp, now); err != nil || ok {
		res, _ := r.(ThreeDSChallengeResult)
		return res, ok, err
	}
	if len(a.challenges) >= a.capacity {
		return ThreeDSChallengeResult{}, false, errACSFull
	}
	id := randomHex(16)
	otp := randomDigits(6)
	c := &challenge{otp: otp, card: req.Card, amount: req.Amount, merchant: req.Merchant, expires: now.Add(a.ttl)}
	a.challenges[id] = c
	a.order = append(a.order, id)
	a.sms.Send(phone, threeDSText(otp, req.Amount, req.Merchant), now)
	res := ThreeDSChallengeResult{ChallengeID: id, SentTo: maskPhone(phone), ExpiresAt: c.expires}
	a.byKey[key] = idempotentReply{fingerprint: fp, reply: res, expires: c.expires}
	return res, false, nil
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
	if !ok || !now.Before(c.expires) || c.verified || c.attempts >= maxOTPAttempts {
		return ThreeDSVerifyResult{}, false, errChallengeUnknown
	}
	c.attempts++
	res := ThreeDSVerifyResult{AttemptsRemaining: maxOTPAttempts - c.attempts}
	if subtle.ConstantTimeCompare([]byte(c.otp), []byte(req.OTP)) == 1 {
		c.verified = true
		res.Verified = true
		res.AttemptsRemaining = 0
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
