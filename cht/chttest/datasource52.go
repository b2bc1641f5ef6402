package chttest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// The 5.2 listing and summary routes (api/src/routing.js:
// GET /api/v1/contact, GET /api/v1/report, POST /api/v1/contact/summary,
// POST /api/v1/report/summary; api/src/controllers/contact.js and
// report.js getAll and getSummaries).

// kindGetAll serves GET /api/v1/contact (?ids=a,b or ?type=) and GET
// /api/v1/report (?ids= required): a page of documents in the order of
// ids, skipping ids that are missing or of another kind.
func kindGetAll(k kind) func(*Server, *reqCtx, []string) {
	return func(s *Server, c *reqCtx, _ []string) {
		if !c.user.can(k.viewPerm()) {
			s.forbidden(c)
			return
		}
		q := c.r.URL.Query()
		idsParam, typ := q["ids"], q.Get("type")
		switch {
		case k == kindReport && len(idsParam) == 0:
			s.apiError(c, http.StatusBadRequest, "Query param ids is required", nil)
			return
		case len(idsParam) == 0 && typ == "":
			s.apiError(c, http.StatusBadRequest, "Either query param ids or type is required", nil)
			return
		}
		p, ok := s.parsePage(c, 100, false)
		if !ok {
			return
		}
		if len(idsParam) == 0 {
			if _, known := s.types[typ]; !known {
				s.apiError(c, http.StatusBadRequest, fmt.Sprintf("Invalid contact type [%s].", typ), nil)
				return
			}
			ids := s.store.ids(func(_ string, m docMeta) bool { return typeOfMeta(m) == typ })
			ids, cursor := pageOf(ids, p, false)
			data := make([]any, 0, len(ids))
			for _, id := range ids {
				if d, ok := s.store.get(id); ok {
					data = append(data, d)
				}
			}
			writeJSON(c.w, http.StatusOK, map[string]any{"data": data, "cursor": cursor})
			return
		}
		var ids []string
		for _, v := range idsParam {
			for id := range strings.SplitSeq(v, ",") {
				if id != "" {
					ids = append(ids, id)
				}
			}
		}
		if len(ids) == 0 {
			raw, _ := json.Marshal(strings.Join(idsParam, ","))
			s.apiError(c, http.StatusBadRequest, fmt.Sprintf("Invalid ids [%s].", raw), nil)
			return
		}
		// fetchAndFilter: walk the ids from the cursor until the page is
		// full; the cursor is the next position in ids.
		data := []any{}
		i := p.offset
		for ; i < len(ids) && len(data) < p.limit; i++ {
			if d, ok := s.store.get(ids[i]); ok && s.ofKind(k, extractMeta(d)) {
				data = append(data, d)
			}
		}
		var cursor any
		if len(data) == p.limit {
			cursor = fmt.Sprint(i)
		}
		writeJSON(c.w, http.StatusOK, map[string]any{"data": data, "cursor": cursor})
	}
}

func typeOfMeta(m docMeta) string {
	if m.typ == "contact" {
		return m.contactType
	}
	return m.typ
}

// kindSummaries serves POST /api/v1/{contact,report}/summary {"ids": [...]}:
// shared-libs/summaries summariseContact or summariseReport for each id
// that is a contact (or a report with a form), in the order given.
func kindSummaries(k kind) func(*Server, *reqCtx, []string) {
	return func(s *Server, c *reqCtx, _ []string) {
		if !s.bodyParserJSON(c) {
			return
		}
		if !c.user.can(k.viewPerm()) {
			s.forbidden(c)
			return
		}
		body, _ := jsonBody(c)
		list, ok := body["ids"].([]any)
		if !ok || len(list) == 0 {
			raw, _ := json.Marshal(body["ids"])
			s.apiError(c, http.StatusBadRequest, fmt.Sprintf("Invalid ids [%s].", raw), nil)
			return
		}
		out := []any{}
		for _, v := range list {
			d, ok := s.store.get(str(v))
			if !ok {
				continue
			}
			if k == kindReport {
				if form, _ := d["form"].(string); str(d["type"]) == "data_record" && form != "" {
					out = append(out, summariseReport(d))
				}
			} else if s.isContactMeta(extractMeta(d)) {
				out = append(out, summariseContact(d))
			}
		}
		writeJSON(c.w, http.StatusOK, out)
	}
}

// lineageIDs lists the _ids of a parent chain.
func lineageIDs(v any) []any {
	ids := []any{}
	for cur, ok := v.(map[string]any); ok; cur, ok = cur["parent"].(map[string]any) {
		if id := str(cur["_id"]); id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}

// setDefined sets m[k] = v unless v is nil (undefined members are dropped
// by JSON.stringify).
func setDefined(m map[string]any, k string, v any) {
	if v != nil {
		m[k] = v
	}
}

func summariseContact(d map[string]any) map[string]any {
	out := map[string]any{"lineage": lineageIDs(d["parent"])}
	setDefined(out, "_id", d["_id"])
	setDefined(out, "_rev", d["_rev"])
	name := d["name"]
	if name == nil {
		name = d["phone"]
	}
	setDefined(out, "name", name)
	for _, k := range []string{"phone", "type", "contact_type", "date_of_death", "muted"} {
		setDefined(out, k, d[k])
	}
	setDefined(out, "contact", idOfAny(d["contact"]))
	return out
}

func idOfAny(v any) any {
	if m, ok := v.(map[string]any); ok {
		return m["_id"]
	}
	return nil
}

func summariseReport(d map[string]any) map[string]any {
	contact, _ := d["contact"].(map[string]any)
	out := map[string]any{"lineage": lineageIDs(contact["parent"])}
	for _, k := range []string{"_id", "_rev", "form", "read", "verified", "reported_date"} {
		setDefined(out, k, d[k])
	}
	from := d["from"]
	if from == nil {
		from = d["sent_by"]
	}
	setDefined(out, "from", from)
	setDefined(out, "phone", contact["phone"])
	errs, _ := d["errors"].([]any)
	out["valid"] = len(errs) == 0
	setDefined(out, "contact", contact["_id"])
	fields, _ := d["fields"].(map[string]any)
	out["subject"] = reportSubject(d, fields, errs)
	caseID := d["case_id"]
	if caseID == nil {
		caseID = fields["case_id"]
	}
	setDefined(out, "case_id", caseID)
	return out
}

// reportSubject is summaries getSubject.
func reportSubject(d, fields map[string]any, errs []any) map[string]any {
	subject := map[string]any{}
	var ref any
	for _, v := range []any{d["patient_id"], fields["patient_id"], fields["patient_uuid"], d["place_id"], fields["place_id"]} {
		if v != nil {
			ref = v
			break
		}
	}
	name := fields["patient_name"]
	if jsonTruthy(name) {
		subject["name"] = name
	}
	switch {
	case jsonTruthy(ref):
		subject["value"], subject["type"] = ref, "reference"
	case jsonTruthy(name):
		subject["value"], subject["type"] = name, "name"
	default:
		for _, e := range errs {
			em, _ := e.(map[string]any)
			fs, _ := em["fields"].([]any)
			if em["code"] != "sys.missing_fields" {
				continue
			}
			for _, f := range fs {
				switch f {
				case "patient_id", "patient_uuid", "patient_name", "place_id":
					subject["type"] = "unknown"
				}
			}
		}
	}
	return subject
}
