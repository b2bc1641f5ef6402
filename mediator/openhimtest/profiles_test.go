package openhimtest

import (
	"net/http"
	"strings"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
)

// The tests below pin where the Version7 and Version8 profiles differ from
// Version4, each as jembi/openhim-core-js decides it (file and function
// named per case); the differential e2e test checks Version4 against the
// real 4.0.5.

// TestRouterNoMatchAndWrongMethod: requestMatching.js matchMethod (7.0.1+)
// filters channels on channel.methods, so a wrong method is no match; and
// authorisation.js authorise answers a missing channel 404 since 7.0.1
// (401 with WWW-Authenticate: Basic before). Either way messageStore, which
// runs after authorisation, stores no transaction. On 4.x a wrong method
// reaches router.js isMethodAllowed: 405, and the transaction stays
// Processing.
func TestRouterNoMatchAndWrongMethod(t *testing.T) {
	ok := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }
	tests := []struct {
		name       string
		version    Version
		methods    []string
		method     string
		path       string
		wantStatus int
		wantTx     int
	}{
		{"v4 no channel matches", Version4, []string{"GET"}, http.MethodGet, "/nothing", http.StatusUnauthorized, 0},
		{"v7 no channel matches", Version7, []string{"GET"}, http.MethodGet, "/nothing", http.StatusNotFound, 0},
		{"v8 no channel matches", Version8, []string{"GET"}, http.MethodGet, "/nothing", http.StatusNotFound, 0},
		{"v4 wrong method", Version4, []string{"GET"}, http.MethodPost, "/api/x", http.StatusMethodNotAllowed, 1},
		{"v7 wrong method", Version7, []string{"GET"}, http.MethodPost, "/api/x", http.StatusNotFound, 0},
		{"v8 wrong method", Version8, []string{"GET"}, http.MethodPost, "/api/x", http.StatusNotFound, 0},
		{"v4 channel without methods routes any", Version4, nil, http.MethodDelete, "/api/x", http.StatusOK, 1},
		{"v8 channel without methods routes none", Version8, nil, http.MethodGet, "/api/x", http.StatusNotFound, 0},
		{"v8 listed method", Version8, []string{"GET"}, http.MethodGet, "/api/x", http.StatusOK, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newRouterFixture(t, tt.version, ok, func(c *openhim.Channel) { c.Methods = tt.methods })
			resp, body := f.call(t, tt.method, tt.path, "client-1", "pw", "")
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, body, tt.wantStatus)
			}
			if got := len(f.srv.Transactions()); got != tt.wantTx {
				t.Fatalf("%d transactions stored, want %d", got, tt.wantTx)
			}
			if tt.wantStatus == http.StatusNotFound && resp.Header.Get("WWW-Authenticate") != "" {
				t.Errorf("a 404 carries no challenge, got %q", resp.Header.Get("WWW-Authenticate"))
			}
			if tt.wantStatus == http.StatusMethodNotAllowed && f.srv.Transactions()[0].Status != "Processing" {
				t.Errorf("4.x leaves the 405 transaction Processing, got %q", f.srv.Transactions()[0].Status)
			}
		})
	}
}

// TestAddClientWithoutRoles: api/clients.js addClient (5.x and later) calls
// clientData.roles.includes(clientData.clientID) before the schema
// validation, so a client without roles throws (500 from Koa) and a role
// equal to the clientID is a 400; 4.0.5 has no such check and answers the
// validation error.
func TestAddClientWithoutRoles(t *testing.T) {
	tests := []struct {
		name    string
		version Version
		body    map[string]any
		status  int
		text    string
	}{
		{"v4 without name and roles", Version4, map[string]any{"clientID": "c1"}, http.StatusBadRequest, "Path `name` is required."},
		{"v8 without name and roles", Version8, map[string]any{"clientID": "c1"}, http.StatusInternalServerError, "Internal Server Error"},
		{"v7 without roles", Version7, map[string]any{"clientID": "c1", "name": "C"}, http.StatusInternalServerError, "Internal Server Error"},
		{"v8 without name, with roles", Version8, map[string]any{"clientID": "c1", "roles": []any{"r"}}, http.StatusBadRequest, "Path `name` is required."},
		{"v8 role equal to clientID", Version8, map[string]any{"clientID": "c1", "name": "C", "roles": []any{"c1"}},
			http.StatusBadRequest, "ClientID 'c1' cannot be the same as a role name."},
		{"v8 complete", Version8, map[string]any{"clientID": "c1", "name": "C", "roles": []any{"r"}}, http.StatusCreated, "Client successfully created"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, c := newFake(t, Config{Version: tt.version})
			r := c.do(t, http.MethodPost, "/clients", tt.body)
			if r.Status != tt.status || !strings.Contains(r.Body, tt.text) {
				t.Fatalf("got %d %q, want %d containing %q", r.Status, r.Body, tt.status, tt.text)
			}
		})
	}
}

// TestRouteSchema: model/channels.js RouteDef has no timeout (core drops
// it, so it never comes back) and casts cert to an ObjectId (400 "Cast to
// ObjectId failed" otherwise), on every version.
func TestRouteSchema(t *testing.T) {
	for _, v := range []Version{Version4, Version8} {
		_, c := newFake(t, Config{Version: v})
		route := map[string]any{"name": "r", "host": "h", "port": 8080, "primary": true, "timeout": 5000}
		r := c.do(t, http.MethodPost, "/channels", map[string]any{"name": "t", "urlPattern": "^/t$", "methods": []any{"GET"},
			"routes": []any{route}})
		if r.Status != http.StatusCreated {
			t.Fatalf("v%d: %d %q", v, r.Status, r.Body)
		}
		r = c.do(t, http.MethodGet, "/channels", nil)
		if strings.Contains(r.Body, `"timeout":`) {
			t.Errorf("v%d: the route's timeout was stored: %s", v, r.Body)
		}

		route = map[string]any{"name": "r", "host": "h", "port": 8080, "primary": true, "cert": "my-ca.pem"}
		r = c.do(t, http.MethodPost, "/channels", map[string]any{"name": "cert", "urlPattern": "^/c$", "methods": []any{"GET"},
			"routes": []any{route}})
		if r.Status != http.StatusBadRequest || !strings.Contains(r.Body, `routes.0.cert: Cast to ObjectId failed for value "my-ca.pem"`) {
			t.Errorf("v%d: cert not an ObjectId: %d %q", v, r.Status, r.Body)
		}
		route["cert"] = "5f1b2c3d4e5f60718293a4b5"
		r = c.do(t, http.MethodPost, "/channels", map[string]any{"name": "cert", "urlPattern": "^/c$", "methods": []any{"GET"},
			"routes": []any{route}})
		if r.Status != http.StatusCreated {
			t.Errorf("v%d: an ObjectId cert: %d %q", v, r.Status, r.Body)
		}
	}
}
