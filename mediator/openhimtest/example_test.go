package openhimtest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhimtest"
)

// post sends JSON with basic auth (Version7 and Version8 accept it) and
// returns "status body" (an empty body is shown as "").
func post(c *http.Client, method, url string, body any) string {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(openhimtest.RootUser, openhimtest.RootPassword)
	resp, err := c.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if len(out) == 0 {
		return strconv.Itoa(resp.StatusCode) + ` ""`
	}
	return strconv.Itoa(resp.StatusCode) + " " + string(out)
}

var registration = map[string]any{
	"urn": "urn:mediator:example", "version": "1.0.0", "name": "Example",
	"endpoints":  []any{map[string]any{"name": "Route", "host": "127.0.0.1", "port": 8080}},
	"configDefs": []any{map[string]any{"param": "apiKey", "type": "password"}},
	"config":     map[string]any{"apiKey": "s3cret"},
}

// Register a mediator and fetch its config with a heartbeat, as a mediator
// does at start-up.
func Example() {
	srv := openhimtest.NewServer(openhimtest.Config{Version: openhimtest.Version8})
	defer srv.Close()
	c := srv.Client()

	// Core 8 answers a registration with 201 and, after basic auth, the
	// body its authentication step left: do not read it.
	fmt.Println(post(c, http.MethodPost, srv.URL+"/mediators", registration))
	fmt.Println(post(c, http.MethodPost, srv.URL+"/mediators/urn:mediator:example/heartbeat",
		map[string]any{"uptime": 1.5, "config": true}))
	fmt.Println(post(c, http.MethodPost, srv.URL+"/mediators/urn:mediator:example/heartbeat",
		map[string]any{"uptime": 11.5}))

	bad := map[string]any{"urn": "urn:mediator:bad", "version": "1.0"}
	fmt.Println(post(c, http.MethodPost, srv.URL+"/mediators", bad))
	// Output:
	// 201 User Authenticated Successfully
	// 200 {"apiKey":"s3cret"}
	// 200 ""
	// 400 Could not add Mediator via the API: ValidationError: Version is required. Must be in SemVer form x.y.z
}

// Core pushes a config change once: to the first heartbeat after the
// change, whoever sends it.
func ExampleServer_SetConfig() {
	srv := openhimtest.NewServer(openhimtest.Config{})
	defer srv.Close()
	c := srv.Client()
	hb := srv.URL + "/mediators/urn:mediator:example/heartbeat"

	if err := srv.Register(registration); err != nil {
		fmt.Println(err)
	}
	post(c, http.MethodPost, hb, map[string]any{"uptime": 1})
	time.Sleep(2 * time.Millisecond) // _configModifiedTS must be later than the last heartbeat

	if err := srv.SetConfig("urn:mediator:example", map[string]any{"apiKey": "rotated"}); err != nil {
		fmt.Println(err)
	}
	fmt.Println(post(c, http.MethodPost, hb, map[string]any{"uptime": 2})) // replica A
	fmt.Println(post(c, http.MethodPost, hb, map[string]any{"uptime": 2})) // replica B misses it
	for _, p := range srv.ConfigPushes("urn:mediator:example") {
		fmt.Println("pushed on heartbeat", p.Heartbeat, p.Config)
	}
	err := srv.SetConfig("urn:mediator:example", map[string]any{"apiKey": 42})
	fmt.Println(err)
	// Output:
	// 200 {"apiKey":"rotated"}
	// 200 ""
	// pushed on heartbeat 1 map[apiKey:rotated]
	// openhimtest: 400 Bad Request: Expected config param apiKey to be a string representing a password.
}

// Route a request through the fake router to a mediator that answers
// application/json+openhim, then read the transaction core stored.
func ExampleServer_Transactions() {
	srv := openhimtest.NewServer(openhimtest.Config{})
	defer srv.Close()

	med := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := time.Now().UTC().Format(time.RFC3339Nano)
		w.Header().Set("Content-Type", "application/json+openhim")
		json.NewEncoder(w).Encode(map[string]any{
			"x-mediator-urn": "urn:mediator:example",
			"status":         "Successful",
			"response":       map[string]any{"status": 200, "headers": map[string]any{}, "body": "hello", "timestamp": now},
			"orchestrations": []any{map[string]any{"name": "upstream",
				"request": map[string]any{"method": "GET", "timestamp": now}}},
			"properties": map[string]any{"seen": r.Header.Get("X-OpenHIM-ClientID")},
		})
	}))
	defer med.Close()
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(med.URL, "http://"))
	p, _ := strconv.Atoi(port)

	srv.AddClient("emr", "emr-password", "emr-role")
	if _, err := srv.AddChannel(openhim.Channel{
		Name: "Example", URLPattern: "^/example$", Allow: []string{"emr-role"}, Methods: []string{"GET"},
		Routes: []openhim.Route{{Name: "Example route", Host: host, Port: p, Primary: true}},
	}); err != nil {
		fmt.Println(err)
	}

	req, _ := http.NewRequest(http.MethodGet, srv.RouterURL+"/example", nil)
	req.SetBasicAuth("emr", "emr-password")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(body))

	for _, tx := range srv.Transactions() {
		fmt.Println(tx.Status, tx.Response.Status, tx.Properties["seen"])
		for _, o := range tx.Orchestrations {
			fmt.Println(" -", o.Name)
		}
	}
	// Output:
	// 200 hello
	// Successful 200 emr
	//  - upstream
	//  - Example route
}

// Simulate core being down when the mediator starts, then coming back on
// the same address.
func ExampleServer_Stop() {
	srv := openhimtest.NewServer(openhimtest.Config{})
	defer srv.Close()
	srv.Stop()

	_, err := srv.Client().Get(srv.URL + "/heartbeat")
	fmt.Println("down:", err != nil)

	if err := srv.Start(); err != nil {
		fmt.Println(err)
	}
	resp, err := srv.Client().Get(srv.URL + "/heartbeat")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println("up:", resp.StatusCode)
	// Output:
	// down: true
	// up: 200
}
