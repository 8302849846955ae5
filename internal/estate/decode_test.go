package estate

import (
	"encoding/json"
	"net/http"

	"github.com/rempart/rempart/internal/problem"
	"testing"
)

// FuzzDecode feeds untrusted bytes to every channel's decoder and validator:
// they must never panic, must answer with a 4xx problem or a value that
// validates, and a value that validates must survive a JSON round trip.
func FuzzDecode(f *testing.F) {
	seeds := []string{
		`{"card":"4971111111111110","amount":3000,"merchant":"B","channel":"shop"}`,
		`{"card":"4971111111111110","amount":5000,"atm":"PARIS-01"}`,
		`{"from":"A-alice","to":"A-bruno","amount":100,"reference":"r"}`,
		`{"challenge_id":"abc","otp":"123456"}`,
		`{"card":"4971111111111110","amount":1,"merchant":"m"}`,
		`{`, `[]`, `null`, `{"amount":1e400}`, `{"amount":-0}`, "{\"merchant\":\"\xff\"}",
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		var v interface {
			Validate() *problem.Details
		}
		switch which % 5 {
		case 0:
			v = &CardAuthorization{}
		case 1:
			v = &ATMWithdrawal{}
		case 2:
			v = &InstantTransfer{}
		case 3:
			v = &ThreeDSVerify{}
		default:
			v = &ThreeDSChallenge{}
		}
		if p := decodeBody(body, v); p != nil {
			if p.Status < 400 || p.Status > 499 || p.Detail == "" {
				t.Fatalf("decode problem %+v", p)
			}
			return
		}
		if p := v.Validate(); p != nil {
			if p.Status != http.StatusBadRequest || p.Field == "" {
				t.Fatalf("validate problem without a field: %+v", p)
			}
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if p := decodeBody(b, v); p != nil {
			t.Fatalf("a valid request does not round-trip: %s: %+v", b, p)
		}
		if p := v.Validate(); p != nil {
			t.Fatalf("a valid request no longer validates after a round trip: %s: %+v", b, p)
		}
	})
}
