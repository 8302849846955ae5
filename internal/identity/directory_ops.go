package identity

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/rempart/rempart/internal/identity/users"
	"github.com/rempart/rempart/internal/problem"
)

// DirectoryChange is the body of PUT /ops/identity/users/{id}: what changes
// in the embedded directory, for drills and demos (the bank's own directory
// has its own tools). Absent fields stay as they are.
type DirectoryChange struct {
	Blocked  *bool   `json:"blocked"`
	Password *string `json:"password"`
	Phone    *string `json:"phone"`
}

// Directory is what the ops endpoint changes; users.Memory is one.
type Directory interface {
	Block(id string, blocked bool) error
	SetPassword(id, password string) error
	SetPhone(id, phone string) error
}

// DirectoryHandler serves PUT /ops/identity/users/{id}. Every change ends the
// customer's backup-login snapshots (the directory tells the provider).
func DirectoryHandler(d Directory, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		var c DirectoryChange
		dec := json.NewDecoder(io.LimitReader(r.Body, 4096))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			problem.Write(w, problem.New(http.StatusBadRequest, "malformed-json",
				`body must be {"blocked": bool, "password": string, "phone": string}, any of them: `+err.Error()))
			return
		}
		switch {
		case c.Blocked == nil && c.Password == nil && c.Phone == nil:
			problem.Write(w, problem.New(http.StatusBadRequest, "nothing-to-change", "name at least one of blocked, password, phone"))
			return
		case c.Password != nil && (len(*c.Password) < 8 || len(*c.Password) > 1024):
			problem.Write(w, problem.New(http.StatusBadRequest, "invalid-field", "password must be 8 to 1024 bytes").WithField("password"))
			return
		case c.Phone != nil && (len(*c.Phone) < 4 || len(*c.Phone) > 32):
			problem.Write(w, problem.New(http.StatusBadRequest, "invalid-field", "phone must be 4 to 32 bytes").WithField("phone"))
			return
		}
		// Checked before anything changes, so a bad id changes nothing.
		if err := apply(d, id, c); err != nil {
			if errors.Is(err, users.ErrNotFound) {
				problem.Write(w, problem.New(http.StatusNotFound, "no-such-customer", "no customer "+id))
				return
			}
			problem.Write(w, problem.New(http.StatusInternalServerError, "directory-failed", err.Error()))
			return
		}
		log.Warn("directory changed by ops", slog.String("account", id), slog.Bool("blocked", c.Blocked != nil && *c.Blocked),
			slog.Bool("password", c.Password != nil), slog.Bool("phone", c.Phone != nil))
		w.WriteHeader(http.StatusNoContent)
	})
}

// ActivityReader is what GET /ops/identity/users/{id} reads; users.Memory
// is one.
type ActivityReader interface {
	ActivityOf(ctx context.Context, id string) (users.Activity, error)
}

// DirectoryActivity is the body of GET /ops/identity/users/{id}: what the
// directory has recorded of the customer's logins, the replayed writes of
// the backup path included.
type DirectoryActivity struct {
	Account         string    `json:"account"`
	Logins          int       `json:"logins"`
	FailedPasswords int       `json:"failed_passwords"`
	FailedCodes     int       `json:"failed_codes"`
	LastLogin       time.Time `json:"last_login,omitzero"`
	LastMethod      string    `json:"last_method,omitempty"`
	Devices         []string  `json:"devices"`
}

// DirectoryActivityHandler serves GET /ops/identity/users/{id}. A stuck
// directory answers 503 after a second, as it would a login.
func DirectoryActivityHandler(d ActivityReader) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		a, err := d.ActivityOf(ctx, id)
		switch {
		case errors.Is(err, users.ErrNotFound):
			problem.Write(w, problem.New(http.StatusNotFound, "no-such-customer", "no customer "+id))
			return
		case err != nil:
			w.Header().Set("Retry-After", "2")
			problem.Write(w, problem.New(http.StatusServiceUnavailable, "directory-unavailable", err.Error()))
			return
		}
		writeJSONStatus(w, http.StatusOK, DirectoryActivity{Account: id, Logins: a.Logins, FailedPasswords: a.FailedPasswords,
			FailedCodes: a.FailedCodes, LastLogin: a.LastLogin, LastMethod: a.LastMethod, Devices: append([]string{}, a.Devices...)})
	})
}

func apply(d Directory, id string, c DirectoryChange) error {
	if c.Blocked != nil {
		if err := d.Block(id, *c.Blocked); err != nil {
			return err
		}
	}
	if c.Password != nil {
		if err := d.SetPassword(id, *c.Password); err != nil {
			return err
		}
	}
	if c.Phone != nil {
		return d.SetPhone(id, *c.Phone)
	}
	return nil
}
