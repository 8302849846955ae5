package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	"github.com/rempart/rempart/client"
)

func Example() {
	// A bank whose core fails the first attempt of every payment.
	var n atomic.Int32
	bank := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"type":"https://rempart.dev/problems/core-overloaded","title":"Service Unavailable","status":503}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"approved":true,"amount":3000}`)
	}))
	defer bank.Close()

	c := client.New(bank.URL, client.WithBackoff(time.Millisecond, 10*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	var decision struct {
		Approved bool  `json:"approved"`
		Amount   int64 `json:"amount"`
	}
	err := c.PostJSON(ctx, "/v1/cards/authorize", map[string]any{
		"card": "4971111111111110", "amount": 3000, "merchant": "Boulangerie", "channel": "shop",
	}, &decision)
	if err != nil {
		fmt.Println("payment failed:", err)
		return
	}
	fmt.Printf("approved=%v amount=%d retries=%d\n", decision.Approved, decision.Amount, c.Stats().Retries)
	// Output: approved=true amount=3000 retries=1
}
