package main

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/rempart/rempart/internal/config"
)

func TestOpenKeysRefusesSharedStoreWithoutKEK(t *testing.T) {
	cfg := config.Default()
	cfg.Identity.Keys.Backend = "postgres"
	cfg.Identity.Keys.DatabaseURL = "postgres://postgres@127.0.0.1:1/none?sslmode=disable"
	cfg.Identity.Keys.KEKEnv = "REMPART_TEST_KEYS_KEK"
	t.Setenv("REMPART_TEST_KEYS_KEK", "")
	_, _, err := (&stack{cfg: cfg}).openKeys(t.Context())
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "REMPART_TEST_KEYS_KEK") {
		t.Fatalf("err = %v, want one line naming the variable", err)
	}
	t.Setenv("REMPART_TEST_KEYS_KEK", base64.StdEncoding.EncodeToString([]byte("short")))
	if _, _, err := (&stack{cfg: cfg}).openKeys(t.Context()); err == nil || !strings.Contains(err.Error(), "want 32") {
		t.Fatalf("short KEK: err = %v", err)
	}
}
