package estate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/rempart/rempart/internal/problem"
)

// Limits on what a channel accepts. A request outside them is refused with a
// 4xx problem before it reaches the core.
const (
	// MaxBodyBytes bounds a channel request body; every valid body is far
	// smaller, so anything larger is garbage or an attack.
	MaxBodyBytes = 8 << 10
	// MaxCardAmount is the largest card authorisation, in cents (20,000 EUR).
	MaxCardAmount = 20_000_00
	// MaxATMAmount is the largest single withdrawal, in cents (1,000 EUR).
	MaxATMAmount = 1_000_00
	// MaxTransferAmount is the largest instant transfer, in cents (100,000 EUR).
	MaxTransferAmount = 100_000_00
	// MaxKeyLen bounds an Idempotency-Key.
	MaxKeyLen = 100
)

// decodeJSON reads one strict JSON object into dst: the right content type,
// a bounded body, no unknown fields, nothing after the object.
func decodeJSON(r *http.Request, dst any) *problem.Details {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return problem.New(http.StatusUnsupportedMediaType, "unsupported-media-type",
			fmt.Sprintf("Content-Type must be application/json, got %q", ct)).WithField("Content-Type")
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return problem.New(http.StatusRequestEntityTooLarge, "body-too-large",
				fmt.Sprintf("request body exceeds %d bytes", mbe.Limit))
		}
		return problem.New(http.StatusBadRequest, "unreadable-body", "the request body could not be read")
	}
	if len(body) > MaxBodyBytes {
		return problem.New(http.StatusRequestEntityTooLarge, "body-too-large",
			fmt.Sprintf("request body exceeds %d bytes", MaxBodyBytes))
	}
	return decodeBody(body, dst)
}

// decodeBody is the part of decodeJSON that parses untrusted bytes; it is
// what the fuzz targets exercise.
func decodeBody(body []byte, dst any) *problem.Details {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonProblem(err)
	}
	if dec.More() {
		return problem.New(http.StatusBadRequest, "malformed-json", "unexpected data after the JSON object")
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return problem.New(http.StatusBadRequest, "malformed-json", "unexpected data after the JSON object")
	}
	return nil
}

func jsonProblem(err error) *problem.Details {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return problem.New(http.StatusBadRequest, "malformed-json", "the request body is empty")
	case errors.As(err, &se):
		return problem.New(http.StatusBadRequest, "malformed-json",
			fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se))
	case errors.As(err, &te):
		return problem.New(http.StatusBadRequest, "invalid-field",
			fmt.Sprintf("%s must be a %s", te.Field, jsonKind(te.Type.Kind().String()))).WithField(te.Field)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return problem.New(http.StatusBadRequest, "unknown-field", fmt.Sprintf("unknown field %q", f)).WithField(f)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return problem.New(http.StatusBadRequest, "malformed-json", "the JSON object is truncated")
	default:
		return problem.New(http.StatusBadRequest, "malformed-json", "malformed JSON: "+err.Error())
	}
}

func jsonKind(k string) string {
	switch k {
	case "int64", "int", "int32":
		return "whole number"
	case "bool":
		return "boolean"
	}
	return k
}

// idempotencyKey reads the mandatory Idempotency-Key header of a write.
func idempotencyKey(r *http.Request) (string, *problem.Details) {
	k := r.Header.Get("Idempotency-Key")
	if k == "" {
		return "", problem.New(http.StatusBadRequest, "missing-idempotency-key",
			"every write needs an Idempotency-Key header, so a retry is never applied twice").WithField("Idempotency-Key")
	}
	if len(k) > MaxKeyLen {
		return "", problem.New(http.StatusBadRequest, "invalid-idempotency-key",
			fmt.Sprintf("Idempotency-Key is longer than %d characters", MaxKeyLen)).WithField("Idempotency-Key")
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return "", problem.New(http.StatusBadRequest, "invalid-idempotency-key",
				"Idempotency-Key must be printable ASCII without spaces").WithField("Idempotency-Key")
		}
	}
	return k, nil
}

func invalid(field, format string, args ...any) *problem.Details {
	return problem.New(http.StatusBadRequest, "invalid-field", fmt.Sprintf(format, args...)).WithField(field)
}

func checkAmount(field string, v, max int64) *problem.Details {
	switch {
	case v <= 0:
		return invalid(field, "%s must be a positive number of cents, got %d", field, v)
	case v > max:
		return invalid(field, "%s must be at most %d cents, got %d", field, max, v)
	}
	return nil
}

func checkText(field, v string, required bool, max int) *problem.Details {
	if v == "" {
		if required {
			return invalid(field, "%s is required", field)
		}
		return nil
	}
	if len(v) > max {
		return invalid(field, "%s must be at most %d bytes", field, max)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return invalid(field, "%s contains control or invalid characters", field)
		}
	}
	return nil
}

func checkPAN(field, v string) *problem.Details {
	if len(v) != 16 {
		return invalid(field, "%s must be 16 digits", field)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return invalid(field, "%s must be 16 digits", field)
		}
	}
	return nil
}

// Validate checks a card authorisation's fields.
func (a *CardAuthorization) Validate() *problem.Details {
	if p := checkPAN("card", a.Card); p != nil {
		return p
	}
	if p := checkAmount("amount", a.Amount, MaxCardAmount); p != nil {
		return p
	}
	if p := checkText("merchant", a.Merchant, true, 64); p != nil {
		return p
	}
	if a.Channel != "shop" && a.Channel != "online" {
		return invalid("channel", `channel must be "shop" or "online", got %q`, a.Channel)
	}
	return nil
}

// Validate checks a 3-D Secure challenge request.
func (c *ThreeDSChallenge) Validate() *problem.Details {
	if p := checkPAN("card", c.Card); p != nil {
		return p
	}
	if p := checkAmount("amount", c.Amount, MaxCardAmount); p != nil {
		return p
	}
	return checkText("merchant", c.Merchant, true, 64)
}

// Validate checks an OTP submission.
func (v *ThreeDSVerify) Validate() *problem.Details {
	if p := checkText("challenge_id", v.ChallengeID, true, 64); p != nil {
		return p
	}
	if len(v.OTP) != 6 {
		return invalid("otp", "otp must be 6 digits")
	}
	for i := 0; i < len(v.OTP); i++ {
		if v.OTP[i] < '0' || v.OTP[i] > '9' {
			return invalid("otp", "otp must be 6 digits")
		}
	}
	return nil
}

// Validate checks an ATM withdrawal.
func (w *ATMWithdrawal) Validate() *problem.Details {
	if p := checkPAN("card", w.Card); p != nil {
		return p
	}
	if p := checkAmount("amount", w.Amount, MaxATMAmount); p != nil {
		return p
	}
	if w.Amount%1000 != 0 {
		return invalid("amount", "amount must be a multiple of 1000 cents (ATMs dispense 10 EUR notes)")
	}
	return checkText("atm", w.ATM, true, 32)
}

// Validate checks an instant transfer.
func (t *InstantTransfer) Validate() *problem.Details {
	if p := checkText("from", t.From, true, 32); p != nil {
		return p
	}
	if p := checkText("to", t.To, true, 32); p != nil {
		return p
	}
	if t.From == t.To {
		return invalid("to", "to must differ from from")
	}
	if p := checkAmount("amount", t.Amount, MaxTransferAmount); p != nil {
		return p
	}
	return checkText("reference", t.Reference, false, 140)
}

// parse decodes and validates one channel body, as the channel itself does.
func parse[T any, P interface {
	*T
	Validate() *problem.Details
}](body []byte) (T, *problem.Details) {
	var v T
	if p := decodeBody(body, &v); p != nil {
		return v, p
	}
	return v, P(&v).Validate()
}

// ParseCardAuthorization decodes and validates a card authorisation body
// exactly as the channel does, for components that answer in the core's
// place (stand-in processing).
func ParseCardAuthorization(body []byte) (CardAuthorization, *problem.Details) {
	return parse[CardAuthorization](body)
}

// ParseATMWithdrawal decodes and validates an ATM withdrawal body.
func ParseATMWithdrawal(body []byte) (ATMWithdrawal, *problem.Details) {
	return parse[ATMWithdrawal](body)
}

// ParseInstantTransfer decodes and validates an instant transfer body.
func ParseInstantTransfer(body []byte) (InstantTransfer, *problem.Details) {
	return parse[InstantTransfer](body)
}
