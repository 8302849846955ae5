package request

import (
	"context"
	"testing"
	"time"
)

// TestCarrier: a Carrier's Info is found through the contexts derived from
// it, its parent's values and cancellation go through unchanged.
func TestCarrier(t *testing.T) {
	type other struct{}
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), other{}, "v"))
	c := &Carrier{Context: parent, Info: Info{ID: "r-1"}}
	child, stop := context.WithTimeout(c, time.Minute)
	defer stop()
	if got := From(child); got != &c.Info {
		t.Fatalf("From(child) = %v, want the carrier's info", got)
	}
	if got := child.Value(other{}); got != "v" {
		t.Fatalf("parent's value = %v, want v", got)
	}
	cancel()
	select {
	case <-child.Done():
	case <-time.After(time.Second):
		t.Fatal("the child did not end with the carrier's parent")
	}
	if From(context.Background()) != nil {
		t.Fatal("From found an info outside a carrier")
	}
}
