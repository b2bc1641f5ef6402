package mediator_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/cht-interop/openhim-mediator-go/mediator"
	"github.com/cht-interop/openhim-mediator-go/mediator/openhim"
)

// exampleDefinition is a minimal valid definition.
func exampleDefinition() openhim.Definition {
	return openhim.Definition{
		URN: "urn:mediator:example", Version: "1.0.0", Name: "Example",
		Endpoints: []openhim.Route{{Name: "Example", Host: "127.0.0.1", Port: 8080, Primary: true, Type: "http"}},
	}
}

// A handler that makes two outbound calls; the mediator answers with an
// envelope holding both as orchestrations.
func ExampleHandlerFunc() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", r.URL.Path)
	}))
	defer upstream.Close()
	client := &http.Client{Transport: mediator.Transport(nil)}

	h := mediator.HandlerFunc(func(r *mediator.Request) (*mediator.Result, error) {
		var parts []string
		for _, name := range []string{"cht", "fhir"} {
			req, err := http.NewRequestWithContext(mediator.WithOrchestration(r.Context(), name+" call"), http.MethodGet, upstream.URL+"/"+name, nil)
			if err != nil {
				return nil, err
			}
			resp, err := client.Do(req)
			if err != nil {
				return nil, err
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return nil, err
			}
			parts = append(parts, string(b))
		}
		return &mediator.Result{Body: []byte(strings.Join(parts, "; ")), Properties: map[string]any{"tx": r.TransactionID}}, nil
	})
	m, err := mediator.New(mediator.Config{Auth: mediator.InboundAuth{Open: true}, Definition: exampleDefinition(), Handler: h})
	if err != nil {
		fmt.Println(err)
		return
	}
	req := httptest.NewRequest(http.MethodGet, "/patients", nil)
	req.Header.Set(mediator.HeaderTransactionID, "tx-1")
	w := httptest.NewRecorder()
	m.ServeHTTP(w, req)

	env, err := mediator.ParseEnvelope(w.Body.Bytes())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(w.Header().Get("Content-Type"))
	fmt.Println(env.MediatorURN, env.Status, env.Response.Status, env.Response.Body)
	for _, o := range env.Orchestrations {
		fmt.Println(o.Name, o.Request.Method, o.Request.Path, o.Response.Status, o.Response.Body)
	}
	fmt.Println(env.Properties["tx"])
	// Output:
	// application/json+openhim
	// urn:mediator:example Successful 200 hello from /cht; hello from /fhir
	// cht call GET /cht 200 hello from /cht
	// fhir call GET /fhir 200 hello from /fhir
	// tx-1
}

// A handler error becomes a Failed transaction with the error message.
func ExampleHandlerFunc_error() {
	h := mediator.HandlerFunc(func(r *mediator.Request) (*mediator.Result, error) {
		if r.URL.Query().Get("id") == "" {
			return nil, mediator.Errorf(http.StatusBadRequest, "query parameter %q is required", "id")
		}
		return nil, errors.New("CHT is unreachable")
	})
	for _, target := range []string{"/lookup", "/lookup?id=1"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
		env, _ := mediator.ParseEnvelope(w.Body.Bytes())
		fmt.Println(env.Status, env.Response.Status, env.Response.Body, env.Error != nil)
	}
	// Output:
	// Completed 400 {"error":"query parameter \"id\" is required"} false
	// Failed 500 {"error":"CHT is unreachable"} true
}

// Transport records calls made with a context carrying a recorder, with
// secrets redacted; the caller gets the full response.
func ExampleTransport() {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":"p1"}`)
	}))
	defer upstream.Close()

	ctx, recorded := mediator.RecordOrchestrations(context.Background(), mediator.CaptureConfig{})
	req, _ := http.NewRequestWithContext(mediator.WithOrchestrationGroup(ctx, "create patient", "fhir"),
		http.MethodPost, upstream.URL+"/fhir/Patient?_format=json", strings.NewReader(`{"resourceType":"Patient"}`))
	req.Header.Set("Authorization", "Bearer s3cret")
	resp, err := (&http.Client{Transport: mediator.Transport(nil)}).Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body))

	o := recorded()[0]
	fmt.Println(o.Name, o.Group, o.Request.Method, o.Request.Path, o.Request.Querystring)
	fmt.Println(o.Request.Headers["Authorization"], o.Request.Body)
	fmt.Println(o.Response.Status, o.Response.Body)
	// Output:
	// {"id":"p1"}
	// create patient fhir POST /fhir/Patient _format=json
	// [REDACTED] {"resourceType":"Patient"}
	// 201 {"id":"p1"}
}

// Normalize sets the status core's rule gives a transaction without one.
func ExampleEnvelope_Normalize() {
	failedCall := mediator.Orchestration{Name: "fhir", Response: &mediator.Response{Status: 503}}
	for _, env := range []mediator.Envelope{
		{Response: mediator.Response{Status: 200}},
		{Response: mediator.Response{Status: 200}, Orchestrations: []mediator.Orchestration{failedCall}},
		{Response: mediator.Response{Status: 404}},
		{Response: mediator.Response{Status: 500}},
	} {
		if err := env.Normalize("urn:mediator:example", time.Now()); err != nil {
			fmt.Println(err)
		}
		fmt.Println(env.Status)
	}
	// Output:
	// Successful
	// Completed with error(s)
	// Completed
	// Failed
}

// ListenAndServe and Shutdown, as with http.Server. Run(ctx) does both.
func ExampleMediator_Shutdown() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	m, err := mediator.New(mediator.Config{
		Auth:       mediator.InboundAuth{Open: true},
		Definition: exampleDefinition(),
		Listener:   ln, // or Listen: ":8080"
		Handler:    http.NotFoundHandler(),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background()) // e.g. signal.NotifyContext
	done := make(chan error, 1)
	go func() {
		<-ctx.Done()
		sctx, stop := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer stop()
		done <- m.Shutdown(sctx)
	}()
	go func() {
		for _, path := range []string{"/healthz", "/readyz"} {
			resp, err := http.Get("http://" + ln.Addr().String() + path)
			if err != nil {
				fmt.Println(err)
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			fmt.Println(path, resp.StatusCode, string(b))
		}
		cancel()
	}()
	if err := m.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		fmt.Println(err)
	}
	fmt.Println("shutdown:", <-done)
	// Output:
	// /healthz 200 {"status":"ok"}
	// /readyz 200 {"status":"ready"}
	// shutdown: <nil>
}
