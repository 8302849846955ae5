package breaker_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/breaker"
	"github.com/rempart/rempart/internal/estate"
	"github.com/rempart/rempart/internal/estate/core"
	"github.com/rempart/rempart/internal/problem"
)

// The adapters the lead's wiring supplies in cmd/rempart, written here
// against the estate's wire types.

func estateDecode(r *http.Request, body []byte) (breaker.StandInRequest, error) {
	strict := func(v any) error {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			return problem.New(http.StatusBadRequest, "malformed-json", err.Error())
		}
		return nil
	}
	switch r.URL.Path {
	case estate.PathCardAuthorize:
		var v estate.CardAuthorization
		if err := strict(&v); err != nil {
			return breaker.StandInRequest{}, err
		}
		return breaker.StandInRequest{Card: v.Card, Amount: v.Amount, Kind: "card"}, nil
	case estate.PathATMWithdraw:
		var v estate.ATMWithdrawal
		if err := strict(&v); err != nil {
			return breaker.StandInRequest{}, err
		}
		return breaker.StandInRequest{Card: v.Card, Amount: v.Amount, Kind: "atm"}, nil
	}
	return breaker.StandInRequest{}, fmt.Errorf("no stand-in for %s", r.URL.Path)
}

// standInDecision is estate.Decision with the stand-in marker.
type standInDecision struct {
	estate.Decision
	StandIn bool `json:"stand_in"`
}

func estateEncode(d breaker.StandInDecision) (int, []byte) {
	b, _ := json.Marshal(standInDecision{estate.Decision{Approved: d.Approved, Reason: d.Reason,
		Amount: d.Amount, At: d.At, Replayed: d.Replayed}, true})
	return http.StatusOK, b
}

func newEstate(t *testing.T) *estate.Estate {
	t.Helper()
	e, err := estate.New(t.Context(), estate.Config{DataDir: t.TempDir(), Seed: 1, Customers: 100000,
		Core: core.Config{Workers: 8, MedianService: time.Millisecond, LockTimeout: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// alice is the demo customer with 2,500 EUR.
const alice = "4971111111111110"

func pay(h http.Handler, path, key string, card string, amount int64) *httptest.ResponseRecorder {
	body := fmt.Sprintf(`{"card":%q,"amount":%d,"merchant":"Boulangerie","channel":"shop"}`, card, amount)
	if path == estate.PathATMWithdraw {
		body = fmt.Sprintf(`{"card":%q,"amount":%d,"atm":"ATM-PARIS-01"}`, card, amount)
	}
	r := httptest.NewRequest("POST", path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Idempotency-Key", key)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func readDecision(t *testing.T, w *httptest.ResponseRecorder) standInDecision {
	t.Helper()
	if w.Code != http.StatusOK {
		t.Fatalf("answer %d %s", w.Code, w.Body)
	}
	var d standInDecision
	if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil {
		t.Fatalf("%v in %s", err, w.Body)
	}
	return d
}
