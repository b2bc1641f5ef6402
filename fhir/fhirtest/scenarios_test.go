package fhirtest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cht-interop/openhim-mediator-go/fhir/fhirtest"
)

// The scenarios in this file run unchanged against fhirtest and, in e2e_differential_test.go, against
// the real FHIR server. Each one returns a transcript of observable outcomes (statuses, counts,
// whether ids match, how references were rewritten) that must be identical on both servers and equal
// to the expected transcript.

// fhirClient is a minimal FHIR JSON client for the scenarios.
type fhirClient struct {
	base string
	hc   *http.Client
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func (c *fhirClient) do(ctx context.Context, method, path string, body any, hdr ...string) (*response, error) {
	var rd io.Reader
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				return nil, err
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	req.Header.Set("Accept", "application/fhir+json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	r := &response{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &r.body); err != nil {
			return nil, fmt.Errorf("%s %s: decoding %d answer %q: %w", method, path, resp.StatusCode, raw, err)
		}
	}
	return r, nil
}

// recorder collects a scenario's transcript and stops at the first transport error.
type recorder struct {
	ctx   context.Context
	c     *fhirClient
	lines []string
	err   error
}

func (r *recorder) logf(format string, args ...any) {
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
}

func (r *recorder) do(method, path string, body any, hdr ...string) *response {
	if r.err != nil {
		return &response{header: http.Header{}}
	}
	resp, err := r.c.do(r.ctx, method, path, body, hdr...)
	if err != nil {
		r.err = err
		return &response{header: http.Header{}}
	}
	return resp
}

// count returns the searchset total of a search, or -1 on a non-200 answer.
func (r *recorder) count(path string) int {
	resp := r.do(http.MethodGet, path, nil)
	if resp.status != http.StatusOK {
		return -1
	}
	total, _ := resp.body["total"].(float64)
	return int(total)
}

func str(m map[string]any, path ...string) string {
	var v any = m
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i >= len(x) {
				return ""
			}
			v = x[i]
		default:
			return ""
		}
	}
	s, _ := v.(string)
	return s
}

// entryStatuses returns the leading status codes of a Bundle response's entries ("201 Created" and
// "201" both give 201).
func entryStatuses(b map[string]any) []int {
	entries, _ := b["entry"].([]any)
	out := make([]int, len(entries))
	for i, e := range entries {
		s := str(e.(map[string]any), "response", "status")
		out[i], _ = strconv.Atoi(strings.Fields(s + " x")[0])
	}
	return out
}

// entryIDs returns the resource ids of a Bundle response's entries.
func entryIDs(b map[string]any) []string {
	entries, _ := b["entry"].([]any)
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = str(e.(map[string]any), "resource", "id")
	}
	return out
}

func uniq() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func patient(system, value string) map[string]any {
	return map[string]any{"resourceType": "Patient", "identifier": []any{map[string]any{"system": system, "value": value}}}
}

type scenario struct {
	name string
	run  func(r *recorder, sys string)
	want []string
}

var scenarios = []scenario{
	{
		name: "create and read",
		run: func(r *recorder, sys string) {
			resp := r.do(http.MethodPost, "/Patient", patient(sys, "p1"))
			id := str(resp.body, "id")
			loc := resp.header.Get("Location")
			r.logf("create status=%d", resp.status)
			r.logf("location names the id and version: %v", strings.Contains(loc, "/Patient/"+id+"/_history/"+str(resp.body, "meta", "versionId")))
			r.logf("etag names the version: %v", resp.header.Get("ETag") == `W/"`+str(resp.body, "meta", "versionId")+`"`)
			_, terr := time.Parse(time.RFC3339, str(resp.body, "meta", "lastUpdated"))
			r.logf("lastUpdated is an instant: %v", terr == nil)
			got := r.do(http.MethodGet, "/Patient/"+id, nil)
			r.logf("read status=%d same id=%v same version=%v", got.status, str(got.body, "id") == id,
				str(got.body, "meta", "versionId") == str(resp.body, "meta", "versionId"))
			r.logf("read missing status=%d", r.do(http.MethodGet, "/Patient/missing-"+uniq(), nil).status)
		},
		want: []string{
			"create status=201",
			"location names the id and version: true",
			"etag names the version: true",
			"lastUpdated is an instant: true",
			"read status=200 same id=true same version=true",
			"read missing status=404",
		},
	},
	{
		name: "POST keeps a client id",
		run: func(r *recorder, sys string) {
			p := patient(sys, "cid")
			id := "cid-" + uniq()
			p["id"] = id
			resp := r.do(http.MethodPost, "/Patient", p)
			r.logf("create status=%d kept id=%v", resp.status, str(resp.body, "id") == id)
			r.logf("again status=%d", r.do(http.MethodPost, "/Patient", p).status)
		},
		want: []string{"create status=201 kept id=true", "again status=400"},
	},
	{
		name: "conditional create",
		run: func(r *recorder, sys string) {
			cond := "identifier=" + sys + "|cc"
			first := r.do(http.MethodPost, "/Patient", patient(sys, "cc"), "If-None-Exist", cond)
			second := r.do(http.MethodPost, "/Patient", patient(sys, "cc"), "If-None-Exist", cond)
			r.logf("first=%d second=%d same id=%v", first.status, second.status, str(first.body, "id") == str(second.body, "id"))
			r.logf("count=%d", r.count("/Patient?identifier="+url.QueryEscape(sys+"|cc")))
			r.do(http.MethodPost, "/Patient", patient(sys, "cc")) // a duplicate made without the condition
			r.logf("with two matches=%d", r.do(http.MethodPost, "/Patient", patient(sys, "cc"), "If-None-Exist", cond).status)
			r.logf("count=%d", r.count("/Patient?identifier="+url.QueryEscape(sys+"|cc")))
		},
		want: []string{"first=201 second=200 same id=true", "count=1", "with two matches=412", "count=2"},
	},
	{
		name: "update",
		run: func(r *recorder, sys string) {
			created := r.do(http.MethodPost, "/Patient", patient(sys, "up"))
			id := str(created.body, "id")
			p := patient(sys, "up")
			p["id"], p["active"] = id, true
			upd := r.do(http.MethodPut, "/Patient/"+id, p)
			r.logf("update status=%d active=%v new version=%v", upd.status, upd.body["active"],
				str(upd.body, "meta", "versionId") != str(created.body, "meta", "versionId"))
			newID := "put-" + uniq()
			p2 := patient(sys, "up2")
			p2["id"] = newID
			put := r.do(http.MethodPut, "/Patient/"+newID, p2)
			r.logf("PUT to a new id status=%d id=%v", put.status, str(put.body, "id") == newID)
			p3 := patient(sys, "up3")
			p3["id"] = "other"
			r.logf("id mismatch status=%d", r.do(http.MethodPut, "/Patient/"+newID, p3).status)
			r.logf("missing body id status=%d", r.do(http.MethodPut, "/Patient/"+newID, patient(sys, "up3")).status)
		},
		want: []string{
			"update status=200 active=true new version=true",
			"PUT to a new id status=200 id=true",
			"id mismatch status=400",
			"missing body id status=400",
		},
	},
	{
		name: "version-aware update",
		run: func(r *recorder, sys string) {
			created := r.do(http.MethodPost, "/Patient", patient(sys, "vu"))
			id, etag := str(created.body, "id"), created.header.Get("ETag")
			p := patient(sys, "vu")
			p["id"] = id
			first := r.do(http.MethodPut, "/Patient/"+id, p, "If-Match", etag)
			r.logf("matching If-Match=%d new etag=%v", first.status, first.header.Get("ETag") != etag)
			r.logf("stale If-Match=%d", r.do(http.MethodPut, "/Patient/"+id, p, "If-Match", etag).status)
			r.logf("json content type=%d", r.do(http.MethodPost, "/Patient", patient(sys, "vu2"), "Content-Type", "application/json").status)
		},
		want: []string{"matching If-Match=200 new etag=true", "stale If-Match=412", "json content type=201"},
	},
	{
		name: "conditional update",
		run: func(r *recorder, sys string) {
			path := "/Patient?identifier=" + url.QueryEscape(sys+"|cu")
			first := r.do(http.MethodPut, path, patient(sys, "cu"))
			p := patient(sys, "cu")
			p["active"] = true
			second := r.do(http.MethodPut, path, p)
			r.logf("first=%d second=%d same id=%v active=%v", first.status, second.status,
				str(first.body, "id") == str(second.body, "id"), second.body["active"])
			r.logf("count=%d", r.count(path))
			p["id"] = "not-the-match"
			r.logf("wrong body id=%d", r.do(http.MethodPut, path, p).status)
			p4 := patient(sys, "cu-new")
			p4["id"] = "client-" + uniq()
			r.logf("create with client id=%d", r.do(http.MethodPut, "/Patient?identifier="+url.QueryEscape(sys+"|cu-new"), p4).status)
			r.do(http.MethodPost, "/Patient", patient(sys, "cu"))
			r.logf("two matches=%d", r.do(http.MethodPut, path, patient(sys, "cu")).status)
		},
		want: []string{"first=201 second=200 same id=true active=true", "count=1", "wrong body id=400",
			"create with client id=400", "two matches=412"},
	},
	{
		name: "transaction posted twice",
		run: func(r *recorder, sys string) {
			tx := transaction(sys, "tx")
			first := r.do(http.MethodPost, "", tx)
			r.logf("first status=%d type=%s entries=%v", first.status, str(first.body, "type"), entryStatuses(first.body))
			ids := entryIDs(first.body)
			if len(ids) != 3 {
				r.logf("entries: %d", len(ids))
				return
			}
			pid, eid := ids[0], ids[1]
			obs := r.do(http.MethodGet, "/Observation/"+ids[2], nil).body
			enc := r.do(http.MethodGet, "/Encounter/"+eid, nil).body
			r.logf("subject rewritten=%v encounter rewritten=%v", str(obs, "subject", "reference") == "Patient/"+pid,
				str(obs, "encounter", "reference") == "Encounter/"+eid)
			r.logf("nested rewritten: performer=%v extension=%v in text=%v", str(obs, "performer", "0", "reference") == "Patient/"+pid,
				str(obs, "extension", "0", "valueReference", "reference") == "Encounter/"+eid,
				str(obs, "component", "0", "valueString") == "see Patient/"+pid)
			r.logf("encounter subject rewritten=%v", str(enc, "subject", "reference") == "Patient/"+pid)
			second := r.do(http.MethodPost, "", transaction(sys, "tx"))
			r.logf("second status=%d entries=%v same ids=%v", second.status, entryStatuses(second.body),
				fmt.Sprint(entryIDs(second.body)) == fmt.Sprint(ids))
			r.logf("counts patient=%d encounter=%d observation=%d",
				r.count("/Patient?identifier="+url.QueryEscape(sys+"|tx-p")),
				r.count("/Encounter?identifier="+url.QueryEscape(sys+"|tx-e")),
				r.count("/Observation?identifier="+url.QueryEscape(sys+"|tx-o")))
		},
		want: []string{
			"first status=200 type=transaction-response entries=[201 201 201]",
			"subject rewritten=true encounter rewritten=true",
			"nested rewritten: performer=true extension=true in text=true",
			"encounter subject rewritten=true",
			"second status=200 entries=[200 200 200] same ids=true",
			"counts patient=1 encounter=1 observation=1",
		},
	},
	{
		name: "transaction is atomic",
		run: func(r *recorder, sys string) {
			invalid := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
				map[string]any{"fullUrl": "urn:uuid:" + uuid(), "resource": patient(sys, "at1"), "request": map[string]any{"method": "POST", "url": "Patient"}},
				map[string]any{"resource": map[string]any{"resourceType": "Observation", "status": "final"}, "request": map[string]any{"method": "POST", "url": "Observation"}},
			}}
			resp := r.do(http.MethodPost, "", invalid)
			r.logf("invalid entry status=%d outcome=%s count=%d", resp.status, str(resp.body, "resourceType"),
				r.count("/Patient?identifier="+url.QueryEscape(sys+"|at1")))
			missing := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
				map[string]any{"fullUrl": "urn:uuid:" + uuid(), "resource": patient(sys, "at2"), "request": map[string]any{"method": "POST", "url": "Patient"}},
				map[string]any{"request": map[string]any{"method": "GET", "url": "Patient/missing-" + uniq()}},
			}}
			resp = r.do(http.MethodPost, "", missing)
			r.logf("failing entry status=%d outcome=%s count=%d", resp.status, str(resp.body, "resourceType"),
				r.count("/Patient?identifier="+url.QueryEscape(sys+"|at2")))
		},
		want: []string{
			"invalid entry status=400 outcome=OperationOutcome count=0",
			"failing entry status=404 outcome=OperationOutcome count=0",
		},
	},
	{
		name: "batch is not atomic",
		run: func(r *recorder, sys string) {
			b := map[string]any{"resourceType": "Bundle", "type": "batch", "entry": []any{
				map[string]any{"resource": patient(sys, "b1"), "request": map[string]any{"method": "POST", "url": "Patient"}},
				map[string]any{"request": map[string]any{"method": "GET", "url": "Patient/missing-" + uniq()}},
			}}
			resp := r.do(http.MethodPost, "", b)
			r.logf("status=%d type=%s entries=%v count=%d", resp.status, str(resp.body, "type"), entryStatuses(resp.body),
				r.count("/Patient?identifier="+url.QueryEscape(sys+"|b1")))
		},
		want: []string{"status=200 type=batch-response entries=[201 404] count=1"},
	},
	{
		name: "version-aware writes",
		run: func(r *recorder, sys string) {
			created := r.do(http.MethodPost, "/Patient", patient(sys, "vw"))
			id, stale := str(created.body, "id"), created.header.Get("ETag")
			p := patient(sys, "vw")
			p["id"] = id
			cur := r.do(http.MethodPut, "/Patient/"+id, p).header.Get("ETag") // stale is one version behind now
			put := func(ifMatch string) map[string]any {
				return map[string]any{"resource": p, "request": map[string]any{"method": "PUT", "url": "Patient/" + id, "ifMatch": ifMatch}}
			}
			version := func() string { return r.do(http.MethodGet, "/Patient/"+id, nil).header.Get("ETag") }
			tx := r.do(http.MethodPost, "", bundleOf("transaction", put(stale)))
			batch := r.do(http.MethodPost, "", bundleOf("batch", put(stale)))
			r.logf("stale ifMatch: transaction=%d %s batch entries=%v unchanged=%v", tx.status, str(tx.body, "resourceType"),
				entryStatuses(batch.body), version() == cur)
			tx = r.do(http.MethodPost, "", bundleOf("transaction", put(cur)))
			r.logf("current ifMatch: transaction=%d entries=%v", tx.status, entryStatuses(tx.body))
			// The version without quotes is no entity tag: the condition is ignored.
			bare := strings.Trim(strings.TrimPrefix(stale, "W/"), `"`)
			r.logf("unquoted stale If-Match: update=%d transaction=%d", r.do(http.MethodPut, "/Patient/"+id, p, "If-Match", bare).status,
				r.do(http.MethodPost, "", bundleOf("transaction", put(bare))).status)
			cond := patient(sys, "vw")
			r.logf("conditional update with stale If-Match=%d", r.do(http.MethodPut, "/Patient?identifier="+url.QueryEscape(sys+"|vw"), cond, "If-Match", stale).status)
			r.logf("delete with stale If-Match=%d read=%d", r.do(http.MethodDelete, "/Patient/"+id, nil, "If-Match", stale).status,
				r.do(http.MethodGet, "/Patient/"+id, nil).status)
			// The specification's 412 (fhirtest); the e2e server answers 404.
			missing := "missing-" + uniq()
			p["id"] = missing
			r.logf("If-Match on a missing resource refused=%v", r.do(http.MethodPut, "/Patient/"+missing, p, "If-Match", `W/"1"`).status >= 400)
		},
		want: []string{
			"stale ifMatch: transaction=412 OperationOutcome batch entries=[412] unchanged=true",
			"current ifMatch: transaction=200 entries=[200]",
			"unquoted stale If-Match: update=200 transaction=200",
			"conditional update with stale If-Match=412",
			"delete with stale If-Match=412 read=200",
			"If-Match on a missing resource refused=true",
		},
	},
	{
		name: "duplicate conditional updates in a Bundle",
		run: func(r *recorder, sys string) {
			path := "Patient?identifier=" + url.QueryEscape(sys+"|dcu")
			put := func(active bool) map[string]any {
				p := patient(sys, "dcu")
				p["active"] = active
				return map[string]any{"fullUrl": "urn:uuid:" + uuid(), "resource": p, "request": map[string]any{"method": "PUT", "url": path}}
			}
			tx := r.do(http.MethodPost, "", bundleOf("transaction", put(true), put(false)))
			r.logf("none exists: transaction=%d count=%d", tx.status, r.count("/"+path))
			b := r.do(http.MethodPost, "", bundleOf("batch", put(true), put(false)))
			r.logf("none exists: batch entries=%v count=%d", entryStatuses(b.body), r.count("/"+path))
			// One exists: the specification refuses the transaction (fhirtest: 400), the e2e server applies
			// both entries in turn; neither makes a second resource.
			r.do(http.MethodPost, "", bundleOf("transaction", put(true), put(false)))
			r.logf("one exists: count=%d", r.count("/"+path))
		},
		want: []string{"none exists: transaction=400 count=0", "none exists: batch entries=[201 400] count=1", "one exists: count=1"},
	},
	{
		name: "duplicate conditional creates in a Bundle",
		run: func(r *recorder, sys string) {
			first, second := "urn:uuid:"+uuid(), "urn:uuid:"+uuid()
			post := func(fullURL string) map[string]any {
				return map[string]any{"fullUrl": fullURL, "resource": patient(sys, "dcc"),
					"request": map[string]any{"method": "POST", "url": "Patient", "ifNoneExist": "identifier=" + sys + "|dcc"}}
			}
			obs := map[string]any{"resource": map[string]any{"resourceType": "Observation", "status": "final", "code": map[string]any{"text": "dcc"},
				"identifier": []any{map[string]any{"system": sys, "value": "dcc-o"}}, "subject": map[string]any{"reference": second}},
				"request": map[string]any{"method": "POST", "url": "Observation"}}
			tx := r.do(http.MethodPost, "", bundleOf("transaction", post(first), post(second), obs))
			ids := entryIDs(tx.body)
			if len(ids) != 3 {
				r.logf("status=%d entries=%d", tx.status, len(ids))
				return
			}
			// The second entry answers with the resource the first created, but its fullUrl was given an
			// id of its own, which no resource has: references to it point nowhere.
			subject := str(r.do(http.MethodGet, "/Observation/"+ids[2], nil).body, "subject", "reference")
			r.logf("none exists: transaction=%d entries=%v same id=%v count=%d reference to the second resolves=%v", tx.status,
				entryStatuses(tx.body)[:2], ids[0] == ids[1], r.count("/Patient?identifier="+url.QueryEscape(sys+"|dcc")),
				r.do(http.MethodGet, "/"+subject, nil).status == http.StatusOK)
			tx = r.do(http.MethodPost, "", bundleOf("transaction", post("urn:uuid:"+uuid()), post("urn:uuid:"+uuid())))
			again := entryIDs(tx.body)
			r.logf("one exists: transaction=%d entries=%v same id=%v", tx.status, entryStatuses(tx.body),
				len(again) == 2 && again[0] == ids[0] && again[1] == ids[0])
		},
		want: []string{
			"none exists: transaction=200 entries=[201 200] same id=true count=1 reference to the second resolves=false",
			"one exists: transaction=200 entries=[200 200] same id=true",
		},
	},
	{
		name: "conditional writes matching two resources in a Bundle",
		run: func(r *recorder, sys string) {
			r.do(http.MethodPost, "/Patient", patient(sys, "two"))
			r.do(http.MethodPost, "/Patient", patient(sys, "two"))
			put := map[string]any{"resource": patient(sys, "two"), "request": map[string]any{"method": "PUT", "url": "Patient?identifier=" + url.QueryEscape(sys+"|two")}}
			post := map[string]any{"resource": patient(sys, "two"), "request": map[string]any{"method": "POST", "url": "Patient", "ifNoneExist": "identifier=" + sys + "|two"}}
			// A conditional update: the specification's (and HAPI's) 412 in fhirtest, 400 on the e2e server.
			tx := r.do(http.MethodPost, "", bundleOf("transaction", put))
			b := r.do(http.MethodPost, "", bundleOf("batch", put))
			st := entryStatuses(b.body)
			r.logf("conditional update: transaction refused=%v batch entry refused=%v", tx.status >= 400, len(st) == 1 && st[0] >= 400)
			r.logf("conditional create: transaction=%d count=%d", r.do(http.MethodPost, "", bundleOf("transaction", post)).status,
				r.count("/Patient?identifier="+url.QueryEscape(sys+"|two")))
		},
		want: []string{"conditional update: transaction refused=true batch entry refused=true", "conditional create: transaction=412 count=2"},
	},
	{
		name: "search",
		run: func(r *recorder, sys string) {
			p := r.do(http.MethodPost, "/Patient", map[string]any{"resourceType": "Patient",
				"identifier": []any{map[string]any{"system": sys, "value": "s1"}, map[string]any{"value": sys + "-nosys"}}})
			pid := str(p.body, "id")
			for i := range 3 {
				r.do(http.MethodPost, "/Observation", map[string]any{"resourceType": "Observation", "status": "final",
					"code": map[string]any{"text": "t" + strconv.Itoa(i)}, "subject": map[string]any{"reference": "Patient/" + pid}})
			}
			q := url.QueryEscape
			r.logf("identifier system|value=%d value=%d |value=%d system|=%d wrong system=%d",
				r.count("/Patient?identifier="+q(sys+"|s1")), r.count("/Patient?identifier="+q(sys+"-nosys")),
				r.count("/Patient?identifier="+q("|"+sys+"-nosys")), r.count("/Patient?identifier="+q(sys+"|")),
				r.count("/Patient?identifier="+q("urn:other|s1")))
			r.logf("subject=%d patient=%d patient bare id=%d", r.count("/Observation?subject=Patient/"+pid),
				r.count("/Observation?patient=Patient/"+pid), r.count("/Observation?patient="+pid))
			r.logf("_id=%d _id two values=%d", r.count("/Patient?_id="+pid), r.count("/Patient?_id="+pid+",nope-"+uniq()))
			r.logf("_lastUpdated ge=%d lt=%d gt future=%d", r.count("/Patient?_id="+pid+"&_lastUpdated=ge2000-01-01"),
				r.count("/Patient?_id="+pid+"&_lastUpdated=lt2000-01-01"), r.count("/Patient?_id="+pid+"&_lastUpdated=gt2999-01-01"))
			page := r.do(http.MethodGet, "/Observation?subject=Patient/"+pid+"&_count=2", nil)
			entries, _ := page.body["entry"].([]any)
			r.logf("_count=2 status=%d total=%v entries=%d type=%s", page.status, page.body["total"], len(entries), str(page.body, "type"))
		},
		want: []string{
			"identifier system|value=1 value=1 |value=1 system|=1 wrong system=0",
			"subject=3 patient=3 patient bare id=3",
			"_id=1 _id two values=1",
			"_lastUpdated ge=1 lt=0 gt future=0",
			"_count=2 status=200 total=3 entries=2 type=searchset",
		},
	},
	{
		name: "delete",
		run: func(r *recorder, sys string) {
			id := str(r.do(http.MethodPost, "/Patient", patient(sys, "del")).body, "id")
			r.logf("delete=%d", r.do(http.MethodDelete, "/Patient/"+id, nil).status)
			r.logf("read after delete=%d", r.do(http.MethodGet, "/Patient/"+id, nil).status)
			r.logf("delete again=%d", r.do(http.MethodDelete, "/Patient/"+id, nil).status)
			r.logf("count=%d", r.count("/Patient?identifier="+url.QueryEscape(sys+"|del")))
		},
		want: []string{"delete=200", "read after delete=404", "delete again=404", "count=0"},
	},
	{
		name: "validation",
		run: func(r *recorder, sys string) {
			r.logf("type mismatch=%d", r.do(http.MethodPost, "/Patient", map[string]any{"resourceType": "Observation"}).status)
			r.logf("not an object=%d", r.do(http.MethodPost, "/Patient", []byte(`[1]`)).status)
			r.logf("invalid JSON=%d", r.do(http.MethodPost, "/Patient", []byte(`{"resourceType":`)).status)
			r.logf("null value=%d", r.do(http.MethodPost, "/Patient", []byte(`{"resourceType":"Patient","active":null}`)).status)
			r.logf("missing required=%d", r.do(http.MethodPost, "/Observation", []byte(`{"resourceType":"Observation","status":"final"}`)).status)
			resp := r.do(http.MethodPost, "/Patient", []byte(`{"resourceType":"Patient","name":[],"gender":""}`))
			_, hasName := resp.body["name"]
			_, hasGender := resp.body["gender"]
			r.logf("empty elements status=%d dropped=%v", resp.status, !hasName && !hasGender)
			r.logf("empty object=%d", r.do(http.MethodPost, "/Patient", []byte(`{"resourceType":"Patient","name":[{}]}`)).status)
			r.logf("object emptied=%d", r.do(http.MethodPost, "/Patient", []byte(`{"resourceType":"Patient","name":[{"text":""}]}`)).status)
			r.logf("not a bundle=%d", r.do(http.MethodPost, "", patient(sys, "x")).status)
		},
		want: []string{"type mismatch=400", "not an object=400", "invalid JSON=400", "null value=400",
			"missing required=400", "empty elements status=201 dropped=true", "empty object=400", "object emptied=201", "not a bundle=400"},
	},
}

func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// transaction is the CHT-style Bundle: a conditionally created Patient, and an Encounter and
// Observation conditionally updated by identifier, linked through urn:uuid references, including
// nested ones.
func transaction(sys, tag string) map[string]any {
	pu, eu, ou := "urn:uuid:"+uuid(), "urn:uuid:"+uuid(), "urn:uuid:"+uuid()
	ident := func(v string) []any { return []any{map[string]any{"system": sys, "value": tag + "-" + v}} }
	cond := func(typ, v string) string { return typ + "?identifier=" + url.QueryEscape(sys+"|"+tag+"-"+v) }
	return map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
		map[string]any{"fullUrl": pu,
			"resource": map[string]any{"resourceType": "Patient", "identifier": ident("p")},
			"request":  map[string]any{"method": "POST", "url": "Patient", "ifNoneExist": "identifier=" + sys + "|" + tag + "-p"}},
		map[string]any{"fullUrl": eu,
			"resource": map[string]any{"resourceType": "Encounter", "identifier": ident("e"), "status": "finished",
				"class":   map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "HH"},
				"subject": map[string]any{"reference": pu}},
			"request": map[string]any{"method": "PUT", "url": cond("Encounter", "e")}},
		map[string]any{"fullUrl": ou,
			"resource": map[string]any{"resourceType": "Observation", "identifier": ident("o"), "status": "final",
				"code":      map[string]any{"text": "weight"},
				"subject":   map[string]any{"reference": pu},
				"encounter": map[string]any{"reference": eu},
				"performer": []any{map[string]any{"reference": pu}},
				"extension": []any{map[string]any{"url": "urn:example:ext", "valueReference": map[string]any{"reference": eu}}},
				"component": []any{map[string]any{"code": map[string]any{"text": "note"}, "valueString": "see " + pu}}},
			"request": map[string]any{"method": "PUT", "url": cond("Observation", "o")}},
	}}
}

// runScenarios runs every scenario against the server at base and returns the transcripts by name.
func runScenarios(t *testing.T, base string, hc *http.Client) map[string][]string {
	t.Helper()
	out := make(map[string][]string)
	for _, sc := range scenarios {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		r := &recorder{ctx: ctx, c: &fhirClient{base: base, hc: hc}}
		sc.run(r, "urn:fhirtest:"+strings.ReplaceAll(t.Name(), "/", "-")+":"+uniq())
		cancel()
		if r.err != nil {
			t.Fatalf("%s against %s: %v", sc.name, base, r.err)
		}
		out[sc.name] = r.lines
	}
	return out
}

func TestScenarios(t *testing.T) {
	srv := fhirtest.NewServer(fhirtest.Config{})
	t.Cleanup(srv.Close)
	got := runScenarios(t, srv.URL, srv.Client())
	for _, sc := range scenarios {
		if g := strings.Join(got[sc.name], "\n"); g != strings.Join(sc.want, "\n") {
			t.Errorf("scenario %q:\n got: %s\nwant: %s", sc.name, g, strings.Join(sc.want, "\n"))
		}
	}
}
