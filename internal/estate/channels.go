package estate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rempart/rempart/internal/estate/core"
	"github.com/rempart/rempart/internal/estate/ledger"
	"github.com/rempart/rempart/internal/problem"
	"github.com/rempart/rempart/internal/tier"
)

// Channel is one of the bank's HTTP channels and the tier the bank gives it.
type Channel struct {
	Name    string    // route name used in metrics and logs
	Pattern string    // http.ServeMux pattern
	Tier    tier.Tier // criticality
	About   string    // one line for humans
}

// Channels lists every channel of the estate, critical first. The gateway's
// default routing table is built from it.
func Channels() []Channel {
	return []Channel{
		{"card-authorize", "POST " + PathCardAuthorize, tier.Critical, "card payment authorisation, in shops and online"},
		{"3ds-challenge", "POST " + PathThreeDSChallenge, tier.Critical, "3-D Secure: send an SMS one-time code"},
		{"3ds-verify", "POST " + PathThreeDSVerify, tier.Critical, "3-D Secure: check the one-time code"},
		{"atm-withdraw", "POST " + PathATMWithdraw, tier.Critical, "cash withdrawal at an ATM"},
		{"instant-transfer", "POST " + PathInstantTransfer, tier.Critical, "instant transfer between accounts (WERO-style)"},
		{"accounts", "GET " + PathAccounts, tier.Normal, "a customer's accounts and balances"},
		{"balance", "GET " + PathBalance, tier.Normal, "one account's balance"},
		{"transactions", "GET " + PathTransactions, tier.Normal, "one account's transaction history"},
		{"documents", "GET " + PathDocuments, tier.Sheddable, "document vault (Digiposte-style)"},
		{"parcel", "GET " + PathParcel, tier.Sheddable, "parcel tracking"},
	}
}

// Handler serves the channels.
func (e *Estate) Handler() http.Handler {
	mux := http.NewServeMux()
	h := map[string]http.HandlerFunc{
		"card-authorize":   e.cardAuthorize,
		"3ds-challenge":    e.threeDSChallenge,
		"3ds-verify":       e.threeDSVerify,
		"atm-withdraw":     e.atmWithdraw,
		"instant-transfer": e.instantTransfer,
		"accounts":         e.accounts,
		"balance":          e.balance,
		"transactions":     e.transactions,
		"documents":        e.documents,
		"parcel":           e.parcel,
	}
	for _, c := range Channels() {
		mux.Handle(c.Pattern, h[c.Name])
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem.Error(w, http.StatusNotFound, "not-found", "no channel at "+r.Method+" "+r.URL.Path)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		problem.Error(w, http.StatusInternalServerError, "internal", "could not encode the response")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// fail turns an error from the core or the ledger into a problem. The core's
// failures are 5xx: they are the bank's fault, not the caller's.
func fail(w http.ResponseWriter, err error) {
	var pd *problem.Details
	switch {
	case errors.As(err, &pd):
		problem.Write(w, pd)
	case errors.Is(err, core.ErrDown):
		problem.Error(w, http.StatusServiceUnavailable, "core-down", "the banking core is unavailable")
	case errors.Is(err, core.ErrQueueFull):
		problem.Error(w, http.StatusServiceUnavailable, "core-overloaded", "the banking core is overloaded")
	case errors.Is(err, core.ErrLockTimeout):
		problem.Error(w, http.StatusServiceUnavailable, "core-lock-timeout", "the banking core timed out waiting for a database lock")
	case errors.Is(err, core.ErrInjected):
		problem.Error(w, http.StatusInternalServerError, "core-error", "the banking core failed")
	case errors.Is(err, context.DeadlineExceeded):
		problem.Error(w, http.StatusGatewayTimeout, "core-timeout", "the banking core did not answer in time")
	case errors.Is(err, context.Canceled):
		d := problem.New(499, "client-closed", "the caller went away")
		d.Title = "Client Closed Request"
		problem.Write(w, d)
	case errors.Is(err, ledger.ErrKeyReused):
		problem.Write(w, problem.New(http.StatusUnprocessableEntity, "idempotency-key-reused",
			"this Idempotency-Key was already used for a different request").WithField("Idempotency-Key"))
	case errors.Is(err, ledger.ErrUnknownAccount):
		problem.Error(w, http.StatusNotFound, "unknown-account", "no such account")
	case errors.Is(err, ledger.ErrInvalid):
		problem.Error(w, http.StatusBadRequest, "invalid-request", err.Error())
	case errors.Is(err, errKeyReused):
		problem.Write(w, problem.New(http.StatusUnprocessableEntity, "idempotency-key-reused",
			"this Idempotency-Key was already used for a different request").WithField("Idempotency-Key"))
	case errors.Is(err, errChallengeUnknown):
		problem.Write(w, problem.New(http.StatusNotFound, "unknown-challenge",
			"no open 3-D Secure challenge with this id (expired, already used or too many attempts)").WithField("challenge_id"))
	case errors.Is(err, errCardLimited):
		problem.Write(w, retryAfter(w, err, problem.New(http.StatusTooManyRequests, "too-many-challenges",
			"too many 3-D Secure challenges for this card").WithField("card")))
	case errors.Is(err, errACSFull):
		problem.Write(w, retryAfter(w, err, problem.New(http.StatusServiceUnavailable, "acs-full",
			"the 3-D Secure server holds as many challenges as it can")))
	default:
		problem.Error(w, http.StatusInternalServerError, "internal", "internal error")
	}
}

// retryAfter sets the Retry-After header and member from a refusal, in whole
// seconds rounded up.
func retryAfter(w http.ResponseWriter, err error, p *problem.Details) *problem.Details {
	secs := 1
	var r *refusal
	if errors.As(err, &r) {
		secs = max(1, int((r.wait+time.Second-1)/time.Second))
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return p.With("retry_after", secs)
}

// readWrite decodes and validates a write: its Idempotency-Key, then a strict
// JSON body of type T.
func readWrite[T any, P interface {
	*T
	Validate() *problem.Details
}](r *http.Request) (string, T, *problem.Details) {
	var v T
	key, p := idempotencyKey(r)
	if p != nil {
		return "", v, p
	}
	if p := decodeJSON(r, &v); p != nil {
		return "", v, p
	}
	if p := P(&v).Validate(); p != nil {
		return "", v, p
	}
	return key, v, nil
}

var errUnknownCard = problem.New(http.StatusNotFound, "unknown-card", "no account holds this card").WithField("card")

func (e *Estate) cardAuthorize(w http.ResponseWriter, r *http.Request) {
	key, req, p := readWrite[CardAuthorization](r)
	if p != nil {
		problem.Write(w, p)
		return
	}
	c, ok := e.pop.ByCard(req.Card)
	if !ok {
		problem.Write(w, errUnknownCard)
		return
	}
	res, err := e.transfer(r.Context(), ledger.Transfer{Key: key, From: c.Account, To: ledger.SysMerchants,
		Amount: req.Amount, Kind: ledger.KindCard, Reference: req.Channel + ":" + req.Merchant})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, decision(res))
}

func (e *Estate) atmWithdraw(w http.ResponseWriter, r *http.Request) {
	key, req, p := readWrite[ATMWithdrawal](r)
	if p != nil {
		problem.Write(w, p)
		return
	}
	c, ok := e.pop.ByCard(req.Card)
	if !ok {
		problem.Write(w, errUnknownCard)
		return
	}
	res, err := e.transfer(r.Context(), ledger.Transfer{Key: key, From: c.Account, To: ledger.SysATMCash,
		Amount: req.Amount, Kind: ledger.KindATM, Reference: req.ATM})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, decision(res))
}

// transfer moves money through the core: one write call holding a worker,
// the ledger's idempotent Apply inside it.
func (e *Estate) transfer(ctx context.Context, t ledger.Transfer) (res ledger.Result, err error) {
	err = e.core.Do(ctx, core.Write, func(ctx context.Context) (err error) {
		res, err = e.ledger.Apply(ctx, t)
		return err
	})
	return res, err
}

// balanceOf reads a balance through the core: one read call.
func (e *Estate) balanceOf(ctx context.Context, account string) (bal int64, err error) {
	err = e.core.Do(ctx, core.Read, func(ctx context.Context) (err error) {
		bal, err = e.ledger.Balance(ctx, account)
		return err
	})
	return bal, err
}

func decision(res ledger.Result) Decision {
	return Decision{ID: res.ID, Approved: res.Executed, Reason: res.Reason, Amount: res.Amount,
		Balance: res.FromBalance, At: res.At, Replayed: res.Replayed}
}

func (e *Estate) instantTransfer(w http.ResponseWriter, r *http.Request) {
	key, req, p := readWrite[InstantTransfer](r)
	if p != nil {
		problem.Write(w, p)
		return
	}
	for _, f := range []struct{ name, acct string }{{"from", req.From}, {"to", req.To}} {
		if _, ok := e.pop.ByAccount(f.acct); !ok {
			problem.Write(w, problem.New(http.StatusNotFound, "unknown-account", "no such account: "+f.acct).WithField(f.name))
			return
		}
	}
	res, err := e.transfer(r.Context(), ledger.Transfer{Key: key, From: req.From, To: req.To,
		Amount: req.Amount, Kind: ledger.KindInstant, Reference: req.Reference})
	if err != nil {
		fail(w, err)
		return
	}
	status := "executed"
	if !res.Executed {
		status = "declined"
	}
	writeJSON(w, http.StatusOK, TransferResult{ID: res.ID, Status: status, Reason: res.Reason,
		Amount: res.Amount, At: res.At, Replayed: res.Replayed})
}

func (e *Estate) threeDSChallenge(w http.ResponseWriter, r *http.Request) {
	key, req, p := readWrite[ThreeDSChallenge](r)
	if p != nil {
		problem.Write(w, p)
		return
	}
	// An unknown card gets the answer a known one does (see acs), so that
	// this route tells no one which card numbers exist.
	c, known := e.pop.ByCard(req.Card)
	if !known && e.pop.Size() > 0 {
		// Derive a customer, as finding a card's holder does (about 0.6 µs,
		// ten times what refusing a number costs), so that an unknown card
		// is not answered measurably faster.
		e.pop.Nth(int(hash32(req.Card) % uint32(e.pop.Size())))
	}
	res, replayed, err := e.acs.Challenge(key, req, c.Phone, known, time.Now())
	if err != nil {
		fail(w, err)
		return
	}
	status := http.StatusCreated
	if replayed {
		status = http.StatusOK
	}
	writeJSON(w, status, res)
}

func (e *Estate) threeDSVerify(w http.ResponseWriter, r *http.Request) {
	key, req, p := readWrite[ThreeDSVerify](r)
	if p != nil {
		problem.Write(w, p)
		return
	}
	res, _, err := e.acs.Verify(key, req, time.Now())
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// AccountView is an account as the NORMAL-tier channels show it.
type AccountView struct {
	Account  string    `json:"account"`
	Customer string    `json:"customer"`
	Balance  int64     `json:"balance"`
	Currency string    `json:"currency"`
	AsOf     time.Time `json:"as_of"`
}

func (e *Estate) accounts(w http.ResponseWriter, r *http.Request) {
	c, ok := e.pop.Get(r.PathValue("customer"))
	if !ok {
		problem.Error(w, http.StatusNotFound, "unknown-customer", "no such customer")
		return
	}
	bal, err := e.balanceOf(r.Context(), c.Account)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"customer": c.ID, "name": c.Name,
		"accounts": []AccountView{{Account: c.Account, Customer: c.ID, Balance: bal, Currency: "EUR", AsOf: time.Now().UTC()}}})
}

func (e *Estate) balance(w http.ResponseWriter, r *http.Request) {
	c, ok := e.pop.ByAccount(r.PathValue("account"))
	if !ok {
		problem.Error(w, http.StatusNotFound, "unknown-account", "no such account")
		return
	}
	bal, err := e.balanceOf(r.Context(), c.Account)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, AccountView{Account: c.Account, Customer: c.ID, Balance: bal, Currency: "EUR", AsOf: time.Now().UTC()})
}

func (e *Estate) transactions(w http.ResponseWriter, r *http.Request) {
	c, ok := e.pop.ByAccount(r.PathValue("account"))
	if !ok {
		problem.Error(w, http.StatusNotFound, "unknown-account", "no such account")
		return
	}
	limit := 50
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 500 {
			problem.Write(w, invalid("limit", "limit must be a whole number between 1 and 500"))
			return
		}
		limit = n
	}
	var entries []ledger.Entry
	err := e.core.Do(r.Context(), core.Read, func(ctx context.Context) (err error) {
		entries, err = e.ledger.History(ctx, c.Account, limit)
		return err
	})
	if err != nil {
		fail(w, err)
		return
	}
	if entries == nil {
		entries = []ledger.Entry{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"account": c.Account, "transactions": entries})
}

// Document is an entry of the document vault.
type Document struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Month string `json:"month"`
	Bytes int    `json:"bytes"`
}

func (e *Estate) documents(w http.ResponseWriter, r *http.Request) {
	c, ok := e.pop.Get(r.PathValue("customer"))
	if !ok {
		problem.Error(w, http.StatusNotFound, "unknown-customer", "no such customer")
		return
	}
	var docs []Document
	err := e.services.Do(r.Context(), core.Read, func(context.Context) error {
		// Twelve monthly statements, derived: the vault's content does not
		// matter to the drill, its capacity does.
		now := time.Now().UTC()
		for i := 1; i <= 12; i++ {
			m := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -i, 0)
			docs = append(docs, Document{ID: fmt.Sprintf("%s-%s", c.ID, m.Format("2006-01")),
				Title: "Relevé de compte " + m.Format("01/2006"), Month: m.Format("2006-01"),
				Bytes: 40_000 + int(hash32(c.ID, m.Format("2006-01"))%60_000)})
		}
		return nil
	})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"customer": c.ID, "documents": docs})
}

var parcelStates = []string{"announced", "in_transit", "at_sorting_centre", "out_for_delivery", "delivered", "awaiting_pickup"}

// Parcel is a tracking answer.
type Parcel struct {
	Tracking string `json:"tracking"`
	Status   string `json:"status"`
}

func (e *Estate) parcel(w http.ResponseWriter, r *http.Request) {
	t := r.PathValue("tracking")
	if !validTracking(t) {
		problem.Write(w, invalid("tracking", "tracking must be 2 letters, 9 digits and 2 letters, e.g. LP123456789FR"))
		return
	}
	var p Parcel
	err := e.services.Do(r.Context(), core.Read, func(context.Context) error {
		p = Parcel{Tracking: t, Status: parcelStates[hash32(t)%uint32(len(parcelStates))]}
		return nil
	})
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// validTracking accepts the UPU S10 shape: AA123456789FR.
func validTracking(t string) bool {
	if len(t) != 13 {
		return false
	}
	for i := 0; i < 13; i++ {
		c := t[i]
		letter := 'A' <= c && c <= 'Z'
		digit := '0' <= c && c <= '9'
		if (i < 2 || i > 10) && !letter || (i >= 2 && i <= 10) && !digit {
			return false
		}
	}
	return true
}

func hash32(parts ...string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(strings.Join(parts, "\x00")))
	return h.Sum32()
}
