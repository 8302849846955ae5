package telemetry

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNewLogger(t *testing.T) {
	tests := []struct {
		name, format, level string
		wantErr             string // substring; empty means no error
		check               func(t *testing.T, out string)
	}{
		{name: "json", format: "json", level: "info", check: func(t *testing.T, out string) {
			var m map[string]any
			if err := json.Unmarshal([]byte(out), &m); err != nil {
				t.Fatalf("not one JSON object: %q", out)
			}
			if m["msg"] != "hello" || m["k"] != "v" || m["level"] != "INFO" {
				t.Errorf("record = %v", m)
			}
		}},
		{name: "text", format: "text", level: "info", check: func(t *testing.T, out string) {
			if !strings.Contains(out, "level=INFO msg=hello k=v") {
				t.Errorf("record = %q", out)
			}
		}},
		{name: "empty format is text", format: "", level: "info", check: func(t *testing.T, out string) {
			if !strings.Contains(out, "msg=hello") {
				t.Errorf("record = %q", out)
			}
		}},
		{name: "level filters", format: "text", level: "warn", check: func(t *testing.T, out string) {
			if out != "" {
				t.Errorf("info logged at level warn: %q", out)
			}
		}},
		{name: "level is case-insensitive", format: "text", level: "DEBUG", check: func(t *testing.T, out string) {
			if !strings.Contains(out, "msg=hello") {
				t.Errorf("record = %q", out)
			}
		}},
		{name: "bad format", format: "xml", level: "info", wantErr: `log format "xml": want text or json`},
		{name: "bad level", format: "text", level: "loud", wantErr: `log level "loud"`},
		{name: "empty level", format: "text", level: "", wantErr: `log level ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := NewLogger(&buf, tt.format, tt.level)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			log.Info("hello", "k", "v")
			tt.check(t, buf.String())
		})
	}
}
