package gateway

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rempart/rempart/internal/request"
	"github.com/rempart/rempart/internal/tier"
)

// fakeVerifier maps an Authorization header to its token.
type fakeVerifier map[string]Token

func (f fakeVerifier) VerifyRequest(r *http.Request) (Token, error) {
	if t, ok := f[r.Header.Get("Authorization")]; ok {
		return t, nil
	}
	return Token{}, errors.New("invalid token")
}

// fakeOwners: customer c owns account "A-"+c.
type fakeOwners struct{}

func (fakeOwners) OwnsCustomer(sub, c string) bool { return sub != "" && sub == c }
func (fakeOwners) OwnsAccount(sub, a string) bool  { return sub != "" && a == "A-"+sub }

var testNow = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

func testTokens() fakeVerifier {
	return fakeVerifier{
		"Bearer alice":        {Subject: "alice", ClientID: "app", Scopes: []string{"accounts", "payments"}, AMR: []string{"pwd", "otp", "mfa"}, AuthTime: testNow.Add(-time.Minute)},
		"Bearer alice-old":    {Subject: "alice", ClientID: "app", Scopes: []string{"accounts", "payments"}, AMR: []string{"pwd", "otp", "mfa"}, AuthTime: testNow.Add(-time.Hour)},
		"Bearer alice-pwd":    {Subject: "alice", ClientID: "app", Scopes: []string{"accounts", "payments"}, AMR: []string{"pwd"}, AuthTime: testNow},
		"Bearer alice-noscop": {Subject: "alice", ClientID: "app", Scopes: []string{"openid"}, AMR: []string{"pwd", "otp"}, AuthTime: testNow},
		"Bearer service":      {Subject: "svc", ClientID: "svc", Scopes: []string{"accounts", "payments"}, Service: true},
		"Bearer scheme-svc":   {Subject: "scheme-app", ClientID: "scheme-app", Service: true},
	}
}

func TestAuthorize(t *testing.T) {
	partners, err := NewPartnerIdentifier(PartnerOptions{Partners: []Partner{{Name: "instant-scheme", Clients: []string{"scheme-app"}}}})
	if err != nil {
		t.Fatal(err)
	}
	a := &Authorizer{Verifier: testTokens(), Owners: fakeOwners{}, Partners: partners, Now: func() time.Time { return testNow }}
	balance := Policy{Mode: AuthRequired, Scope: "accounts", Owner: OwnerAccount}
	transfer := Policy{Mode: AuthRequired, Scope: "payments", Owner: OwnerFrom, SCAMaxAge: 5 * time.Minute, Partners: []string{"instant-scheme"}}
	cards := Policy{Mode: AuthPartner, Partners: []string{"card-schemes"}}
	cases := []struct {
		name     string
		policy   Policy
		path     string
		body     string
		auth     string
		status   int
		session  bool
		priority tier.Tier
	}{
		{"public ignores tokens", Policy{Mode: AuthNone}, "/p", "", "Bearer bad", 200, false, tier.Normal},
		{"optional without token", Policy{Mode: AuthOptional}, "/p", "", "", 200, false, tier.Normal},
		{"optional with session raises normal", Policy{Mode: AuthOptional}, "/p", "", "Bearer alice", 200, true, tier.Important},
		{"optional with bad token", Policy{Mode: AuthOptional}, "/p", "", "Bearer bad", 401, false, 0},
		{"optional with a service token is anonymous", Policy{Mode: AuthOptional}, "/p", "", "Bearer service", 200, false, tier.Normal},
		{"anonymous balance", balance, "/v1/accounts/A-alice/balance", "", "", 401, false, 0},
		{"own balance", balance, "/v1/accounts/A-alice/balance", "", "Bearer alice", 200, true, tier.Important},
		{"someone else's balance", balance, "/v1/accounts/A-bruno/balance", "", "Bearer alice", 403, false, 0},
		{"balance without the scope", balance, "/v1/accounts/A-alice/balance", "", "Bearer alice-noscop", 403, false, 0},
		{"service token reads no customer data", balance, "/v1/accounts/A-alice/balance", "", "Bearer service", 403, false, 0},
		{"own transfer", transfer, "/t", `{"from":"A-alice","to":"A-bruno","amount":100}`, "Bearer alice", 200, true, tier.Important},
		{"transfer from another's account", transfer, "/t", `{"from":"A-bruno","to":"A-alice","amount":100}`, "Bearer alice", 403, false, 0},
		{"transfer naming from twice", transfer, "/t", `{"from":"A-alice","from":"A-bruno","amount":100}`, "Bearer alice", 400, false, 0},
		{"transfer naming From in another case", transfer, "/t", `{"from":"A-alice","FROM":"A-bruno","amount":100}`, "Bearer alice", 400, false, 0},
		{"transfer without from", transfer, "/t", `{"to":"A-bruno","amount":100}`, "Bearer alice", 400, false, 0},
		{"transfer with a password-only login", transfer, "/t", `{"from":"A-alice","to":"A-bruno","amount":100}`, "Bearer alice-pwd", 401, false, 0},
		{"transfer with an hour-old login", transfer, "/t", `{"from":"A-alice","to":"A-bruno","amount":100}`, "Bearer alice-old", 401, false, 0},
		{"transfer by a service token", transfer, "/t", `{"from":"A-alice","to":"A-bruno","amount":100}`, "Bearer service", 403, false, 0},
		{"transfer by the scheme's client", transfer, "/t", `{"from":"A-bruno","to":"A-alice","amount":100}`, "Bearer scheme-svc", 200, false, tier.Normal},
		{"anonymous transfer", transfer, "/t", `{"from":"A-alice","to":"A-bruno","amount":100}`, "", 401, false, 0},
		{"card route without certificate", cards, "/c", "", "", 401, false, 0},
		{"card route with a customer token", cards, "/c", "", "Bearer alice", 403, false, 0},
		{"card route with another partner's client", cards, "/c", "", "Bearer scheme-svc", 403, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var reached *request.Info
			var body string
			mux := http.NewServeMux()
			mux.Handle("/v1/accounts/{account}/balance", a.Middleware(tc.policy)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reached = request.From(r.Context())
			})))
			mux.Handle("/", a.Middleware(tc.policy)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reached = request.From(r.Context())
				b, _ := io.ReadAll(r.Body)
				body = string(b)
			})))
			info := &request.Info{Tier: tier.Normal, Priority: tier.Normal}
			method := "GET"
			if tc.body != "" {
				method = "POST"
			}
			r := httptest.NewRequest(method, tc.path, strings.NewReader(tc.body)).WithContext(request.With(t.Context(), info))
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.status != 200 {
				if reached != nil {
					t.Fatal("a refused request reached the upstream")
				}
				if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
					t.Errorf("refusal content type %q", ct)
				}
				if tc.status == 401 && w.Header().Get("WWW-Authenticate") == "" {
					t.Error("401 must say how to authenticate")
				}
				return
			}
			if info.Session != tc.session || info.Priority != tc.priority {
				t.Errorf("session %v priority %v, want %v %v", info.Session, info.Priority, tc.session, tc.priority)
			}
			if tc.body != "" && body != tc.body {
				t.Errorf("upstream read body %q, want it untouched %q", body, tc.body)
			}
		})
	}
}

func TestStepUpChallenge(t *testing.T) {
	a := &Authorizer{Verifier: testTokens(), Owners: fakeOwners{}, Now: func() time.Time { return testNow }}
	h := a.Middleware(Policy{Mode: AuthRequired, Scope: "payments", Owner: OwnerFrom, SCAMaxAge: 5 * time.Minute})(
		http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	r := httptest.NewRequest("POST", "/t", strings.NewReader(`{"from":"A-alice"}`))
	r.Header.Set("Authorization", "Bearer alice-pwd")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if got := w.Header().Get("WWW-Authenticate"); !strings.Contains(got, `error="insufficient_user_authentication"`) ||
		!strings.Contains(got, "max_age=300") {
		t.Fatalf("WWW-Authenticate %q: want an RFC 9470 step-up challenge", got)
	}
}

func TestFromMember(t *testing.T) {
	for _, tc := range []struct {
		body, want string
		ok         bool
	}{
		{`{"from":"A-1","to":"A-2"}`, "A-1", true},
		{`{"to":"A-2","from":"A-1"}`, "A-1", true},
		{`{"nested":{"from":"A-9"},"from":"A-1"}`, "A-1", true},
		{`{"nested":{"from":"A-9"}}`, "", false},
		{`{"from":"A-1","From":"A-2"}`, "", false},
		{`{"from":1}`, "", false},
		{`[{"from":"A-1"}]`, "", false},
		{`{"from":"A-1"`, "", false},
		{``, "", false},
	} {
		got, err := fromMember([]byte(tc.body))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("fromMember(%s) = %q, %v; want %q ok=%v", tc.body, got, err, tc.want, tc.ok)
		}
	}
}

func FuzzFromMember(f *testing.F) {
	f.Add([]byte(`{"from":"A-1","to":"A-2","amount":5}`))
	f.Add([]byte(`{"fRoM":"A-1"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		from, err := fromMember(body)
		if err != nil {
			return
		}
		// Whatever the spelling, a struct decoder (as the estate uses) must
		// read the same account the check approved.
		var v struct {
			From string `json:"from"`
		}
		if jsonErr := json.Unmarshal(body, &v); jsonErr == nil && v.From != from {
			t.Fatalf("checked %q but a decoder reads %q from %s", from, v.From, body)
		}
	})
}
