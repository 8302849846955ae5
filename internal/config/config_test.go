package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestGood loads every testdata/good/*.yaml and compares the resulting
// configuration, defaults applied, with its .golden file.
func TestGood(t *testing.T) {
	files, err := filepath.Glob("testdata/good/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no good configs: %v", err)
	}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			c, err := Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			got, err := yaml.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, strings.TrimSuffix(path, ".yaml")+".golden", string(got))

			// What Load returns is a config Load accepts and reads back the same.
			roundTrip(t, got)
		})
	}
}

// TestBad loads every testdata/bad/*.yaml and compares the whole error
// message, which must name the file, the line and the field, with its .err
// file.
func TestBad(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad configs: %v", err)
	}
	// A document that does not parse as YAML has no field to name.
	noField := map[string]bool{"syntax": true, "not-a-mapping": true}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			c, err := Load(path)
			if err == nil {
				t.Fatalf("Load accepted it: %+v", c)
			}
			golden(t, strings.TrimSuffix(path, ".yaml")+".err", err.Error()+"\n")

			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error is %T, want *config.Error", err)
			}
			if ce.File != path || ce.Line <= 0 {
				t.Errorf("error locates %s:%d, want %s and a line", ce.File, ce.Line, path)
			}
			if ce.Field == "" && !noField[name] {
				t.Errorf("error names no field: %v", err)
			}
		})
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it)\n got: %s\nwant: %s", path, got, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "absent.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load of a missing file: %v, want os.ErrNotExist", err)
	}
}

func TestDefault(t *testing.T) {
	c := Default()
	if errs := c.validate(); len(errs) > 0 {
		t.Fatalf("Default does not validate: %v", errs[0])
	}
	if !c.EstateEnabled() {
		t.Error("the default config must run the in-process estate")
	}
	if len(c.Upstreams) != 1 || c.Upstreams[0].URL != InProcess {
		t.Errorf("default upstreams = %+v, want one in-process", c.Upstreams)
	}
}

func TestEstateEnabled(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want bool
	}{
		{"default upstream is in-process", "", true},
		{"remote upstreams only", "upstreams: [{name: b, url: 'http://b'}]\nroutes: [{name: r, match: /, tier: normal, upstream: b}]", false},
		{"explicitly on with remote upstreams", "estate: {enabled: true}\nupstreams: [{name: b, url: 'http://b'}]", true},
		{"explicitly off", "estate: {enabled: false}\nupstreams: [{name: b, url: 'http://b'}]\nroutes: [{name: r, match: /, tier: normal, upstream: b}]", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("t.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.EstateEnabled(); got != tt.want {
				t.Errorf("EstateEnabled() = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestErrorLocation covers flow style, where many fields share a line and
// the field is found by the reported value and its Go type.
func TestErrorLocation(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"flow mapping picks the bad value", "estate: {seed: 1, customers: many}",
			`f.yaml:1: field estate.customers: "many" must be an integer`},
		{"flow list of routes", "routes: [{name: a, match: /a, tier: normal, upstream: estate}, {name: b, match: /b, tier: 3x, upstream: estate}]",
			`f.yaml:1: field routes[1].tier: unknown tier "3x" (want one of critical, important, normal, sheddable)`},
		{"long value is matched through yaml's truncation", "drain_timeout: fifteen seconds please",
			`f.yaml:1: field drain_timeout: "fifteen seconds please" must be a duration such as 250ms, 15s or 2m`},
		{"mapping where a string goes", "data_dir: {path: /tmp}",
			`f.yaml:1: field data_dir: must be a string`},
		{"a list where a mapping goes", "estate:\n  core: [1, 2]",
			`f.yaml:2: field estate.core: must be a mapping`},
		{"document that is a scalar", "just words",
			`f.yaml:1: "just words" must be a mapping`},
		{"missing nested field is reported at its parent", "routes:\n  - name: a\n    match: /a\n    upstream: estate",
			`f.yaml:2: field routes[0].tier: unknown tier "" (want one of critical, important, normal, sheddable)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.yaml))
			if err == nil || err.Error() != tt.want {
				t.Errorf("Parse error\n got: %v\nwant: %s", err, tt.want)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{File: "c.yaml", Line: 3, Field: "listen", Msg: "bad"}, "c.yaml:3: field listen: bad"},
		{Error{File: "c.yaml", Field: "listen", Msg: "bad"}, "c.yaml: field listen: bad"},
		{Error{File: "c.yaml", Line: 3, Msg: "bad"}, "c.yaml:3: bad"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTypeAt(t *testing.T) {
	tests := []struct {
		path string
		want string
	}{
		{"", "config.Config"},
		{"listen", "string"},
		{"estate.core.lock_timeout", "time.Duration"},
		{"estate.enabled", "*bool"},
		{"routes", "[]config.Route"},
		{"routes[12]", "config.Route"},
		{"routes[0].tier", "string"},
		{"routes[0].nope", "<nil>"},
		{"listen.x", "<nil>"},
		{"listen[0]", "<nil>"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got := "<nil>"
			if ty := typeAt(tt.path); ty != nil {
				got = ty.String()
			}
			if got != tt.want {
				t.Errorf("typeAt(%q) = %s, want %s", tt.path, got, tt.want)
			}
		})
	}
}

// FuzzParse checks that Parse never panics, that every error it returns is a
// located *Error, and that a config it returns validates and survives a
// marshal and parse round trip unchanged.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/good", "testdata/bad"} {
		files, _ := filepath.Glob(dir + "/*.yaml")
		for _, path := range files {
			b, err := os.ReadFile(path)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte("estate: &a {seed: 2}\nupstreams: [{name: x, url: in-process}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.File != "fuzz.yaml" {
				t.Fatalf("error %v (%T) is not a located *config.Error", err, err)
			}
			return
		}
		if errs := c.validate(); len(errs) > 0 {
			t.Fatalf("Parse returned a config that does not validate: %v", errs[0])
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		roundTrip(t, out)
	})
}

// roundTrip checks that a marshalled config parses and marshals back to the
// same bytes (comparing bytes, not structs, so nil and empty lists are equal).
func roundTrip(t *testing.T, marshalled []byte) {
	t.Helper()
	again, err := Parse("again.yaml", marshalled)
	if err != nil {
		t.Fatalf("the marshalled config does not parse: %v\n%s", err, marshalled)
	}
	out, err := yaml.Marshal(again)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(marshalled) {
		t.Fatalf("round trip changed the config:\n got %s\nwant %s", out, marshalled)
	}
}
