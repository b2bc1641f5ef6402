package chttest

// Offline users read the medic database through CHT's replication
// filters (api/src/routing.js sends their _changes, _all_docs and doc
// requests to controllers/changes.js, all-docs.js and db-doc.js, which ask
// services/authorization.js what they may see). The fake models the core
// of those rules: a user assigned to a facility sees the contacts whose
// lineage includes it, and the reports about such a contact (its uuid or
// shortcode in patient_id, patient_uuid or place_id) or, when a report
// has no subject, submitted by one. Other documents are not replicated.
// That scope applies to _all_docs and doc reads, and to _changes only
// before cht-core 4.3: from 4.3 to 5.2 changes.js processRequest returns
// only the default docs (_design/medic-client, service-worker-meta,
// settings, org.couchdb.user:<name>; authorization getDefaultDocs), see
// couch.go offlineChanges, and offline users get the other ids from
// /api/v1/replication/get-ids, which the fake does not serve.

// sees reports whether user u may read the stored doc raw.
func (s *Server) sees(u *User, raw []byte) bool {
	if u.online() {
		return true
	}
	if u.Facility == "" {
		return false
	}
	d, err := decodeDoc(raw)
	if err != nil {
		return false
	}
	return s.inSubtree(u.Facility, d, 0)
}

// inSubtree reports whether doc belongs to the facility's subtree.
func (s *Server) inSubtree(facility string, d map[string]any, depth int) bool {
	if depth > 2 {
		return false
	}
	if s.isContactMeta(extractMeta(d)) {
		if str(d["_id"]) == facility {
			return true
		}
		for _, id := range lineageIDs(d["parent"]) {
			if id == facility {
				return true
			}
		}
		return false
	}
	if str(d["type"]) != "data_record" {
		return false
	}
	fields, _ := d["fields"].(map[string]any)
	if ref := firstTruthy(d["patient_id"], fields["patient_id"], fields["patient_uuid"], d["place_id"], fields["place_id"]); ref != "" {
		subject, ok := s.store.get(s.resolveRef(ref))
		return ok && s.inSubtree(facility, subject, depth+1)
	}
	if id := refID(d["contact"]); id != "" {
		submitter, ok := s.store.get(id)
		return ok && s.inSubtree(facility, submitter, depth+1)
	}
	return false
}
