package fhirtest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
)

func TestFailNextWrites(t *testing.T) {
	tests := []struct {
		name       string
		n, status  int
		wantStatus int
	}{
		{"explicit status", 2, 500, 500},
		{"default status", 1, 0, 503},
		{"429", 3, 429, 429},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := newClient(t, fhirtest.Config{})
			srv.FailNextWrites(tt.n, tt.status)
			for i := range tt.n {
				if r := mustDo(t, c, http.MethodGet, "/Patient", nil); r.status != 200 {
					t.Fatalf("read %d failed with %d; reads are not faulted by default", i, r.status)
				}
				r := mustDo(t, c, http.MethodPost, "/Patient", patient("urn:f", "x"))
				if r.status != tt.wantStatus || str(r.body, "resourceType") != "OperationOutcome" {
					t.Fatalf("write %d: %d %s, want %d", i, r.status, r.raw, tt.wantStatus)
				}
			}
			if n := srv.Count("Patient"); n != 0 {
				t.Fatalf("failed writes stored %d resources", n)
			}
			if r := mustDo(t, c, http.MethodPost, "/Patient", patient("urn:f", "x")); r.status != 201 {
				t.Fatalf("write after the faults: %d", r.status)
			}
			var faults []string
			for _, r := range srv.Requests() {
				if r.Method == http.MethodPost {
					faults = append(faults, fmt.Sprintf("%d:%s", r.Status, r.Fault))
				}
			}
			want := strings.Repeat(fmt.Sprintf("%d:fail ", tt.wantStatus), tt.n) + "201:"
			if got := strings.Join(faults, " "); got != want {
				t.Errorf("logged %q, want %q", got, want)
			}
		})
	}
}

func TestTimeoutNextWrites(t *testing.T) {
	t.Run("client gives up", func(t *testing.T) {
		srv, c := newClient(t, fhirtest.Config{})
		srv.TimeoutNextWrites(1)
		// The client gives up only once the server holds the write: a client that gave up
		// before its write arrived would leave the timeout to the next write.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() {
			_, err := c.do(ctx, http.MethodPost, "/Patient", patient("urn:f", "t"))
			done <- err
		}()
		waitHeld(t, srv)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want the client's cancellation", err)
		}
		if r := mustDo(t, c, http.MethodPost, "/Patient", patient("urn:f", "t")); r.status != 201 {
			t.Fatalf("next write %d", r.status)
		}
		if n := srv.Count("Patient"); n != 1 {
			t.Errorf("count %d, want 1: the timed-out write must not be applied", n)
		}
	})
	t.Run("hang bound answers 504", func(t *testing.T) {
		srv, c := newClient(t, fhirtest.Config{})
		if err := srv.SetFaults(fhirtest.Faults{Hang: time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		srv.TimeoutNextWrites(1)
		if r := mustDo(t, c, http.MethodPost, "/Patient", patient("urn:f", "t")); r.status != http.StatusGatewayTimeout {
			t.Fatalf("status %d, want 504", r.status)
		}
		if srv.Count("Patient") != 0 {
			t.Error("timed-out write applied")
		}
	})
	t.Run("close releases held requests", func(t *testing.T) {
		srv := fhirtest.NewServer(fhirtest.Config{})
		c := &fhirClient{base: srv.URL, hc: &http.Client{}} // no client timeout
		srv.TimeoutNextWrites(1)
		done := make(chan error, 1)
		go func() {
			_, err := c.do(context.Background(), http.MethodPost, "/Patient", patient("urn:f", "t"))
			done <- err
		}()
		waitHeld(t, srv)
		closed := make(chan struct{})
		go func() { srv.Close(); close(closed) }()
		select {
		case <-closed:
		case <-time.After(waitLimit):
			t.Fatal("Close blocked on a held request")
		}
		<-done
	})
}

// waitHeld waits until srv holds a request.
func waitHeld(t *testing.T, srv *fhirtest.Server) {
	t.Helper()
	for deadline := time.Now().Add(waitLimit); srv.Held() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no request held after %v", waitLimit)
		}
	}
}

func TestRandomFaults(t *testing.T) {
	run := func(f fhirtest.Faults) (statuses string, stored, failed int) {
		srv, c := newClient(t, fhirtest.Config{})
		if err := srv.SetFaults(f); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for i := range 200 {
			r := mustDo(t, c, http.MethodPost, "/Patient", patient("urn:f", fmt.Sprint(i)))
			fmt.Fprintf(&b, "%d ", r.status)
			if r.status != 201 {
				failed++
			}
		}
		return b.String(), srv.Count("Patient"), failed
	}
	f := fhirtest.Faults{FailRate: 0.3, FailStatus: 502, Seed: 42}
	s1, stored, failed := run(f)
	s2, _, _ := run(f)
	if s1 != s2 {
		t.Errorf("the same seed gave different fault sequences:\n%s\n%s", s1, s2)
	}
	if s3, _, _ := run(fhirtest.Faults{FailRate: 0.3, FailStatus: 502, Seed: 7}); s3 == s1 {
		t.Error("different seeds gave the same sequence")
	}
	if stored+failed != 200 || failed < 40 || failed > 80 {
		t.Errorf("stored %d failed %d: want about 30%% of 200 failed and the rest stored", stored, failed)
	}
	if !strings.Contains(s1, "502") || strings.Contains(s1, "503") {
		t.Errorf("statuses %s: want FailStatus 502", s1)
	}
}

func TestLostResponse(t *testing.T) {
	srv, c := newClient(t, fhirtest.Config{})
	if err := srv.SetFaults(fhirtest.Faults{LostResponseRate: 1, Hang: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	cond := "identifier=urn:f|lost"
	if r := mustDo(t, c, http.MethodPost, "/Patient", patient("urn:f", "lost"), "If-None-Exist", cond); r.status != 504 {
		t.Fatalf("status %d, want 504", r.status)
	}
	if srv.Count("Patient") != 1 {
		t.Fatalf("lost-response write not applied: count %d", srv.Count("Patient"))
	}
	if err := srv.SetFaults(fhirtest.Faults{}); err != nil {
		t.Fatal(err)
	}
	if r := mustDo(t, c, http.MethodPost, "/Patient", patient("urn:f", "lost"), "If-None-Exist", cond); r.status != 200 {
		t.Fatalf("idempotent retry: %d, want 200", r.status)
	}
	if srv.Count("Patient") != 1 {
		t.Errorf("retry duplicated: count %d", srv.Count("Patient"))
	}
	reqs := srv.Requests()
	if reqs[0].Fault != fhirtest.FaultLostResponse || reqs[1].Fault != "" {
		t.Errorf("faults logged %q %q", reqs[0].Fault, reqs[1].Fault)
	}
}

func TestFaultsOnReadsAndLatency(t *testing.T) {
	srv, c := newClient(t, fhirtest.Config{})
	if err := srv.SetFaults(fhirtest.Faults{FailRate: 1, Latency: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if r := mustDo(t, c, http.MethodGet, "/Patient", nil); r.status != 200 {
		t.Errorf("read faulted without IncludeReads: %d", r.status)
	}
	if err := srv.SetFaults(fhirtest.Faults{FailRate: 1, IncludeReads: true}); err != nil {
		t.Fatal(err)
	}
	if r := mustDo(t, c, http.MethodGet, "/Patient", nil); r.status != 503 {
		t.Errorf("read with IncludeReads: %d, want 503", r.status)
	}
	// Bundles count as one write.
	if r := mustDo(t, c, http.MethodPost, "", bundleOf("batch", withResource(req("POST", "Patient"), "", patient("urn:f", "b")))); r.status != 503 {
		t.Errorf("bundle: %d, want 503", r.status)
	}
}

func TestFaultsValidation(t *testing.T) {
	srv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(srv.Close)
	for _, f := range []fhirtest.Faults{
		{FailRate: 1.5}, {FailRate: -0.1}, {TimeoutRate: 2}, {FailRate: 0.6, TimeoutRate: 0.6},
		{FailStatus: 200}, {FailStatus: 700}, {Hang: -1}, {Latency: -1},
	} {
		if err := srv.SetFaults(f); err == nil || !strings.HasPrefix(err.Error(), "fhirtest: Faults.") {
			t.Errorf("SetFaults(%+v) = %v, want an error naming the field", f, err)
		}
	}
}

func TestRequestsAndReset(t *testing.T) {
	srv, c := newClient(t, fhirtest.Config{RequestLog: 3})
	for i := range 5 {
		mustDo(t, c, http.MethodPut, fmt.Sprintf("/Patient/p%d", i), []byte(fmt.Sprintf(`{"resourceType":"Patient","id":"p%d"}`, i)))
	}
	reqs := srv.Requests()
	var got []string
	for _, r := range reqs {
		got = append(got, fmt.Sprintf("%s %s %d %s", r.Method, r.Path, r.Status, r.Body))
	}
	want := []string{
		`PUT /fhir/R4/Patient/p2 200 {"resourceType":"Patient","id":"p2"}`,
		`PUT /fhir/R4/Patient/p3 200 {"resourceType":"Patient","id":"p3"}`,
		`PUT /fhir/R4/Patient/p4 200 {"resourceType":"Patient","id":"p4"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if reqs[0].Header.Get("Content-Type") != "application/fhir+json" || reqs[0].Time.IsZero() {
		t.Errorf("request header/time not recorded: %+v", reqs[0])
	}
	if raw, ok := srv.Resource("Patient", "p0"); !ok {
		t.Fatal("p0 missing")
	} else {
		raw[0] = 'X' // the caller owns the copy
		if again, _ := srv.Resource("Patient", "p0"); again[0] != '{' {
			t.Error("Resource returned the stored bytes, not a copy")
		}
	}
	srv.FailNextWrites(5, 0)
	srv.Reset()
	if srv.Count("Patient") != 0 || len(srv.Requests()) != 0 || len(srv.Resources("Patient")) != 0 {
		t.Error("Reset kept state")
	}
	if r := mustDo(t, c, http.MethodPost, "/Patient", patient("urn:r", "1")); r.status != 201 {
		t.Errorf("Reset kept the scripted faults: %d", r.status)
	}

	quiet, qc := newClient(t, fhirtest.Config{RequestLog: -1})
	mustDo(t, qc, http.MethodGet, "/Patient", nil)
	if n := len(quiet.Requests()); n != 0 {
		t.Errorf("RequestLog -1 kept %d requests", n)
	}
}

func TestLoad(t *testing.T) {
	srv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(srv.Close)
	for _, bad := range [][]byte{
		[]byte(`{"resourceType":"Patient"}`),
		[]byte(`{"resourceType":"Observation","id":"o"}`),
		[]byte(`[]`),
	} {
		err := srv.Load([]byte(`{"resourceType":"Patient","id":"ok"}`), bad)
		if err == nil || !strings.HasPrefix(err.Error(), "fhirtest: load resource 1") {
			t.Errorf("Load(%s) = %v, want an error for resource 1", bad, err)
		}
	}
	if srv.Count("Patient") != 0 {
		t.Error("a failed Load stored resources")
	}
	if err := srv.Load([]byte(`{"resourceType":"Patient","id":"ok"}`)); err != nil {
		t.Fatal(err)
	}
	raw, _ := srv.Resource("Patient", "ok")
	if !strings.Contains(string(raw), `"versionId":"1"`) {
		t.Errorf("loaded resource %s", raw)
	}
}

// TestConcurrentWrites hammers the server from many goroutines; run with -race.
func TestConcurrentWrites(t *testing.T) {
	srv, c := newClient(t, fhirtest.Config{})
	tx, err := os.ReadFile("testdata/transaction-encounter-20obs.json")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				r, err := c.do(context.Background(), http.MethodPost, "/Patient", patient("urn:c", fmt.Sprint(i%10)), "If-None-Exist", fmt.Sprintf("identifier=urn:c|%d", i%10))
				if err != nil || (r.status != 201 && r.status != 200) {
					errs <- fmt.Errorf("goroutine %d conditional create: %v %v", g, err, r)
					return
				}
				if _, err := c.do(context.Background(), http.MethodGet, "/Patient?identifier=urn:c|1", nil); err != nil {
					errs <- err
					return
				}
			}
			r, err := c.do(context.Background(), http.MethodPost, "", tx)
			if err != nil || r.status != 200 {
				errs <- fmt.Errorf("goroutine %d transaction: %v %v", g, err, r)
			}
			_ = srv.Resources("Observation")
			_ = srv.Requests()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := fmt.Sprint(srv.Counts()); got != "map[Encounter:1 Observation:20 Patient:11]" {
		t.Errorf("counts %s, want 10 conditional Patients + 1 from the transaction, 1 Encounter, 20 Observations", got)
	}
}

func TestDropAndDown(t *testing.T) {
	srv, c := newClient(t, fhirtest.Config{})
	if err := srv.SetFaults(fhirtest.Faults{DropRate: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.do(context.Background(), http.MethodPost, "/Patient", patient("urn:d", "1")); err == nil {
		t.Fatal("dropped write got an answer")
	}
	if r := mustDo(t, c, http.MethodGet, "/Patient", nil); r.status != 200 {
		t.Fatalf("read with DropRate: %d", r.status)
	}
	if err := srv.SetFaults(fhirtest.Faults{Down: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.do(context.Background(), http.MethodGet, "/Patient", nil); err == nil {
		t.Fatal("read answered while Down")
	}
	if err := srv.SetFaults(fhirtest.Faults{}); err != nil {
		t.Fatal(err)
	}
	if r := mustDo(t, c, http.MethodPost, "/Patient", patient("urn:d", "1")); r.status != 201 {
		t.Fatalf("write after recovery: %d", r.status)
	}
	if n := srv.Count("Patient"); n != 1 {
		t.Errorf("count %d, want 1: dropped writes must not be applied", n)
	}
	var faults []string
	for _, r := range srv.Requests() {
		f := fmt.Sprintf("%s:%d:%s", r.Method, r.Status, r.Fault)
		if len(faults) > 0 && faults[len(faults)-1] == f {
			continue // net/http retries an idempotent request once on a dropped connection
		}
		faults = append(faults, f)
	}
	if got := strings.Join(faults, " "); got != "POST:0:drop GET:200: GET:0:drop POST:201:" {
		t.Errorf("logged %s", got)
	}
	// Without a network connection (ServeHTTP on a recorder) a drop answers 503.
	if err := srv.SetFaults(fhirtest.Faults{Down: true}); err != nil {
		t.Fatal(err)
	}
	if w := serve(srv.Handler, http.MethodGet, "/fhir/R4/Patient", nil); w.Code != 503 {
		t.Errorf("recorder drop: %d", w.Code)
	}
}
