package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestAdminEnrolToken(t *testing.T) {
	dir := t.TempDir()
	issue := func() string {
		t.Helper()
		root := newRoot()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs([]string{"admin", "enrol-token", "--data-dir", dir, "--ttl", "10m"})
		if err := root.Execute(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "http://localhost:9090/ops/admin/enrol") {
			t.Fatalf("no console URL in %q", out.String())
		}
		tok := regexp.MustCompile(`(?m)^enrol_[A-Za-z0-9_-]{43}$`).FindString(out.String())
		if tok == "" {
			t.Fatalf("no token in %q", out.String())
		}
		return tok
	}
	first, second := issue(), issue()
	if first == second {
		t.Fatal("the same token twice")
	}
	// Only the newest token is live, and only its hash is on disk.
	ents, err := os.ReadDir(filepath.Join(dir, "admin", "enrol"))
	if err != nil || len(ents) != 1 {
		t.Fatalf("enrol dir: %v %v", ents, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "admin", "enrol", ents[0].Name()))
	if strings.Contains(string(b), second) || strings.Contains(ents[0].Name(), second) {
		t.Fatal("the token is stored in clear")
	}
}
