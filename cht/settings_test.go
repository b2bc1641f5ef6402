package cht_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht"
	"github.com/cht-interop/openhim-mediator-go/cht/chttest"
)

// GET /api/v1/settings answers the settings document's settings to any
// logged-in user, offline users included: api/src/controllers/settings.js
// get only calls auth.getUserCtx, and api/src/routing.js registers the
// route before the offline users' firewall.
func TestClientAppSettings(t *testing.T) {
	outbound := map[string]any{"live": map[string]any{"relevant_to": "true"}, "nightly": map[string]any{"cron": "0 2 * * *"}}
	srv := chttest.NewServer(chttest.Config{Settings: map[string]any{"outbound": outbound, "locale": "en"},
		Users: []chttest.User{
			{Name: chttest.AdminUsername, Password: chttest.AdminPassword, Roles: []string{chttest.RoleDBAdmin}},
			{Name: "chw", Password: "chw-pass", Roles: []string{"chw"}, Facility: "hc1"},
		}})
	t.Cleanup(srv.Close)
	tests := []struct {
		name, user, password string
		wantErr              error
	}{
		{"admin", chttest.AdminUsername, chttest.AdminPassword, nil},
		{"offline user", "chw", "chw-pass", nil},
		{"wrong password", "chw", "nope", cht.ErrUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := cht.New(cht.Config{URL: srv.URL, Username: tt.user, Password: tt.password, MaxRetries: -1})
			if err != nil {
				t.Fatal(err)
			}
			raw, err := c.AppSettings(context.Background())
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Outbound map[string]any `json:"outbound"`
				Locale   string         `json:"locale"`
			}
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Outbound, outbound) || got.Locale != "en" {
				t.Errorf("settings = %s, want outbound %v and locale en", raw, outbound)
			}
		})
	}
}

// An answer that is not a JSON object (a proxy's page, say) is a
// DecodeError, not settings.
func TestClientAppSettingsNotAnObject(t *testing.T) {
	for _, body := range []string{`<html>maintenance</html>`, `[]`, `{"outbound":`, ``} {
		t.Run(body, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(body))
			}))
			t.Cleanup(srv.Close)
			c, err := cht.New(cht.Config{URL: srv.URL, Username: "u", Password: "p", MaxRetries: -1})
			if err != nil {
				t.Fatal(err)
			}
			raw, err := c.AppSettings(context.Background())
			var de *cht.DecodeError
			if !errors.As(err, &de) || raw != nil {
				t.Fatalf("AppSettings = %q, %v; want a DecodeError", raw, err)
			}
		})
	}
}
