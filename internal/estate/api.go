package estate

import "time"

// The wire types of the estate's channels. Amounts are integer euro cents;
// every write carries an Idempotency-Key header.

// Paths of the channels, as served by the estate and routed by the gateway.
const (
	PathCardAuthorize    = "/v1/cards/authorize"                 // POST, CRITICAL
	PathThreeDSChallenge = "/v1/3ds/challenge"                   // POST, CRITICAL
	PathThreeDSVerify    = "/v1/3ds/verify"                      // POST, CRITICAL
	PathATMWithdraw      = "/v1/atm/withdraw"                    // POST, CRITICAL
	PathInstantTransfer  = "/v1/transfers/instant"               // POST, CRITICAL
	PathAccounts         = "/v1/customers/{customer}/accounts"   // GET, NORMAL
	PathBalance          = "/v1/accounts/{account}/balance"      // GET, NORMAL
	PathTransactions     = "/v1/accounts/{account}/transactions" // GET, NORMAL
	PathDocuments        = "/v1/customers/{customer}/documents"  // GET, SHEDDABLE
	PathParcel           = "/v1/parcels/{tracking}"              // GET, SHEDDABLE
)

// CardAuthorization asks to debit a card for a purchase, in a shop or online.
type CardAuthorization struct {
	Card     string `json:"card"`     // 16-digit PAN
	Amount   int64  `json:"amount"`   // cents, 1..MaxAmount
	Merchant string `json:"merchant"` // merchant id or name
	Channel  string `json:"channel"`  // "shop" or "online"
}

// Decision answers a card authorisation or an ATM withdrawal.
type Decision struct {
	ID       int64     `json:"id,omitempty"`
	Approved bool      `json:"approved"`
	Reason   string    `json:"reason,omitempty"` // e.g. insufficient_funds
	Amount   int64     `json:"amount"`
	Balance  int64     `json:"balance"`
	At       time.Time `json:"at"`
	Replayed bool      `json:"replayed,omitempty"` // answered from an earlier attempt with the same key
}

// ThreeDSChallenge starts a 3-D Secure SMS OTP challenge for an online payment.
type ThreeDSChallenge struct {
	Card     string `json:"card"`
	Amount   int64  `json:"amount"`
	Merchant string `json:"merchant"`
}

// ThreeDSChallengeResult says where the OTP went.
type ThreeDSChallengeResult struct {
	ChallengeID string    `json:"challenge_id"`
	SentTo      string    `json:"sent_to"` // masked phone number
	ExpiresAt   time.Time `json:"expires_at"`
}

// ThreeDSVerify submits the OTP the customer received.
type ThreeDSVerify struct {
	ChallengeID string `json:"challenge_id"`
	OTP         string `json:"otp"`
}

// ThreeDSVerifyResult is the outcome of a verification.
type ThreeDSVerifyResult struct {
	Verified          bool `json:"verified"`
	AttemptsRemaining int  `json:"attempts_remaining"`
}

// ATMWithdrawal asks to dispense cash from an account through its card.
type ATMWithdrawal struct {
	Card   string `json:"card"`
	Amount int64  `json:"amount"`
	ATM    string `json:"atm"`
}

// InstantTransfer moves money between two accounts at once (WERO-style).
type InstantTransfer struct {
	From      string `json:"from"`
	To        string `json:"to"`
	Amount    int64  `json:"amount"`
	Reference string `json:"reference,omitempty"`
}

// TransferResult answers an instant transfer.
type TransferResult struct {
	ID       int64     `json:"id,omitempty"`
	Status   string    `json:"status"` // "executed" or "declined"
	Reason   string    `json:"reason,omitempty"`
	Amount   int64     `json:"amount"`
	At       time.Time `json:"at"`
	Replayed bool      `json:"replayed,omitempty"`
}
