package identity

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"

	"github.com/rempart/rempart/internal/problem"
)

// Faults are the identity faults a drill injects.
type Faults struct {
	// UserStoreStuck makes the store behind the provider hang like the
	// deadlocked database on the day.
	UserStoreStuck bool `json:"user_store_stuck"`
}

// FaultsHandler serves GET and PUT /ops/identity/faults: stuck reads the
// switch, setStuck flips it. Which stores hang is the wiring's choice.
func FaultsHandler(stuck func() bool, setStuck func(bool), log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			var f Faults
			dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&f); err != nil {
				problem.Write(w, problem.New(http.StatusBadRequest, "malformed-json",
					"body must be {\"user_store_stuck\": true|false}: "+err.Error()).WithField("user_store_stuck"))
				return
			}
			setStuck(f.UserStoreStuck)
			if log != nil {
				log.Warn("identity faults changed", "user_store_stuck", f.UserStoreStuck)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(Faults{UserStoreStuck: stuck()})
	})
}
