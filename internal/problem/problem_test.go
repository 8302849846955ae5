package problem

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

func TestWrite(t *testing.T) {
	tests := []struct {
		name       string
		d          *Details
		wantStatus int
		want       map[string]any // the whole decoded document
	}{
		{
			name:       "new",
			d:          New(http.StatusNotFound, "no-route", "no route matches GET /x"),
			wantStatus: 404,
			want: map[string]any{"type": TypeBase + "no-route", "title": "Not Found", "status": 404.0,
				"detail": "no route matches GET /x"},
		},
		{
			name:       "with field",
			d:          New(http.StatusBadRequest, "invalid-request", "amount must be positive").WithField("amount"),
			wantStatus: 400,
			want: map[string]any{"type": TypeBase + "invalid-request", "title": "Bad Request", "status": 400.0,
				"detail": "amount must be positive", "field": "amount"},
		},
		{
			name: "extra is flattened",
			d: New(http.StatusTooManyRequests, "shed", "try later").
				With("retry_after", 3).With("tier", "sheddable"),
			wantStatus: 429,
			want: map[string]any{"type": TypeBase + "shed", "title": "Too Many Requests", "status": 429.0,
				"detail": "try later", "retry_after": 3.0, "tier": "sheddable"},
		},
		{
			name: "extra never overrides a standard member",
			d: New(http.StatusServiceUnavailable, "core-down", "the core is down").
				With("status", 200).With("title", "OK").With("type", "x").With("detail", "fine").With("note", "kept"),
			wantStatus: 503,
			want: map[string]any{"type": TypeBase + "core-down", "title": "Service Unavailable", "status": 503.0,
				"detail": "the core is down", "note": "kept"},
		},
		{
			name: "extra cannot fill an empty standard member",
			d: (&Details{Title: "Conflict", Status: 409}).
				With("detail", "injected").With("instance", "/x").With("field", "f").With("type", "t"),
			wantStatus: 409,
			want:       map[string]any{"title": "Conflict", "status": 409.0},
		},
		{
			name:       "missing status is sent as 500",
			d:          &Details{Title: "Oops", Detail: "no status"},
			wantStatus: 500,
			want:       map[string]any{"title": "Internal Server Error", "status": 500.0, "detail": "no status"},
		},
		{
			name:       "informational status is sent as 500",
			d:          New(http.StatusContinue, "x", "1xx is not an answer"),
			wantStatus: 500,
			want:       map[string]any{"type": TypeBase + "x", "title": "Internal Server Error", "status": 500.0, "detail": "1xx is not an answer"},
		},
		{
			name:       "unencodable extra falls back to a plain 500",
			d:          New(http.StatusBadRequest, "x", "y").With("bad", func() {}),
			wantStatus: 500,
			want:       map[string]any{"title": "Internal Server Error", "status": 500.0},
		},
		{
			name:       "client closed request",
			d:          New(499, "client-closed", "gone"),
			wantStatus: 499,
			want:       map[string]any{"type": TypeBase + "client-closed", "title": "", "status": 499.0, "detail": "gone"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Write(rec, tt.d)
			res := rec.Result()
			if res.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if ct := res.Header.Get("Content-Type"); ct != ContentType {
				t.Errorf("Content-Type %q, want %q", ct, ContentType)
			}
			if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q, want nosniff", got)
			}
			body := rec.Body.Bytes()
			if cl := res.Header.Get("Content-Length"); cl != strconv.Itoa(len(body)) {
				t.Errorf("Content-Length %s, body is %d bytes", cl, len(body))
			}
			if len(body) == 0 || body[len(body)-1] != '\n' {
				t.Errorf("body does not end in a newline: %q", body)
			}
			var got map[string]any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("body is not JSON: %v: %s", err, body)
			}
			if len(got) != len(tt.want) {
				t.Errorf("document %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("member %s = %#v, want %#v", k, got[k], v)
				}
			}
		})
	}
}

func TestError(t *testing.T) {
	rec := httptest.NewRecorder()
	Error(rec, http.StatusGatewayTimeout, "upstream-timeout", "too slow")
	var d Details
	if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	want := Details{Type: TypeBase + "upstream-timeout", Title: "Gateway Timeout", Status: 504, Detail: "too slow"}
	if rec.Code != 504 || d.Type != want.Type || d.Title != want.Title || d.Status != want.Status || d.Detail != want.Detail {
		t.Errorf("got %d %+v, want %+v", rec.Code, d, want)
	}
}

func TestDetailsError(t *testing.T) {
	tests := []struct {
		d    *Details
		want string
	}{
		{New(400, "x", "must be positive"), "must be positive"},
		{New(400, "x", "must be positive").WithField("amount"), "amount: must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			var err error = tt.d
			if got := err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}
