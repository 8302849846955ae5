package tier

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Tier
		wantErr bool
	}{
		{"critical", Critical, false},
		{"important", Important, false},
		{"normal", Normal, false},
		{"sheddable", Sheddable, false},
		{"CRITICAL", Critical, false},
		{"Sheddable", Sheddable, false},
		{"", 0, true},
		{"vital", 0, true},
		{" critical", 0, true},
		{"0", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Parse(%q) err = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "critical, important, normal, sheddable") {
					t.Errorf("error %q does not list the tiers", err)
				}
				return
			}
			if got != tt.want {
				t.Errorf("Parse(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		t    Tier
		want string
	}{
		{Critical, "critical"},
		{Important, "important"},
		{Normal, "normal"},
		{Sheddable, "sheddable"},
		{Tier(-1), "tier(-1)"},
		{Tier(4), "tier(4)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.t.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAllIsOrderedAndRoundTrips(t *testing.T) {
	for i, tr := range All {
		if i > 0 && tr <= All[i-1] {
			t.Errorf("All is not from most to least important: %v", All)
		}
		got, err := Parse(tr.String())
		if err != nil || got != tr {
			t.Errorf("Parse(%q) = %v, %v", tr.String(), got, err)
		}
	}
}

func TestText(t *testing.T) {
	type doc struct {
		Tier Tier `json:"tier"`
	}
	b, err := json.Marshal(doc{Important})
	if err != nil || string(b) != `{"tier":"important"}` {
		t.Fatalf("Marshal = %s, %v", b, err)
	}
	var d doc
	if err := json.Unmarshal([]byte(`{"tier":"Normal"}`), &d); err != nil || d.Tier != Normal {
		t.Fatalf("Unmarshal = %v, %v", d.Tier, err)
	}
	if err := json.Unmarshal([]byte(`{"tier":"vital"}`), &d); err == nil {
		t.Fatal("Unmarshal accepted an unknown tier")
	}
}
