package main

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/rempart/rempart/internal/config"
	"github.com/rempart/rempart/internal/estate"
)

// TestServeRemoteEstate: serve in front of a `rempart estate` over HTTP
// (estate.ops_url), as every node of a cluster would be: the default
// routes are the estate's channels, a login's code goes out through the
// estate's SMS gateway and is read back through serve's /ops/estate/, and
// the customer's balance and a card payment are the remote bank's.
func TestServeRemoteEstate(t *testing.T) {
	ecfg := config.Default()
	ecfg.Estate.Customers = 1000
	ecfg.DataDir = t.TempDir()
	est, err := estate.New(t.Context(), estateConfig(ecfg, slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { est.Close() })
	channels := httptest.NewServer(est.Handler())
	t.Cleanup(channels.Close)
	ops := httptest.NewServer(est.OpsHandler())
	t.Cleanup(ops.Close)

	path := filepath.Join(t.TempDir(), "rempart.yaml")
	yaml := `estate: {enabled: false, ops_url: ` + ops.URL + `, customers: 1000}
upstreams:
  - {name: bank, url: ` + channels.URL + `}
ops_token_sms: true
`
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(newServeCmd(), serveFlags{config: path})
	if err != nil {
		t.Fatal(err)
	}
	s := startServe(t, cfg)
	tok := s.login(t, "alice", "alice-demo-2025", "+33 6 12 34 56 78")
	if got := est.SMS().Latest("+33 6 12 34 56 78", 1); len(got) != 1 || !smsCodeRe.MatchString(got[0].Text) {
		t.Fatalf("the remote estate's outbox has %+v, want the login code", got)
	}
	res, b := s.do(t, "GET", s.public+"/v1/accounts/A-alice/balance", "", map[string]string{"Authorization": "Bearer " + tok})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("balance through serve: %d %s", res.StatusCode, b)
	}
	scheme := s.as(t, "card-schemes")
	if res, b := scheme.do(t, "POST", scheme.public+"/v1/cards/authorize",
		`{"card":"4971111111111110","amount":3000,"merchant":"Boulangerie","channel":"shop"}`,
		map[string]string{"Content-Type": "application/json", "Idempotency-Key": "remote-1"}); res.StatusCode != http.StatusOK {
		t.Fatalf("card payment through serve: %d %s", res.StatusCode, b)
	}
	// serve's /ops/estate/check is the remote bank's: one transfer in its ledger.
	res, b = s.do(t, "GET", s.ops+"/ops/estate/check", "", nil)
	var rep struct {
		OK        bool `json:"ok"`
		Transfers int  `json:"transfers"`
	}
	if err := json.Unmarshal(b, &rep); err != nil || res.StatusCode != http.StatusOK || !rep.OK || rep.Transfers != 1 {
		t.Fatalf("ledger check through serve: %d %s", res.StatusCode, b)
	}
}
