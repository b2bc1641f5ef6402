// Package cht is a client for the Community Health Toolkit (CHT) API, the
// CHT document types, and a receiver for CHT's outbound push.
//
// # Documents
//
// [Contact] (with the aliases [Person] and [Place]) and [Report] decode
// every shape CHT produces: minified and hydrated lineage ([Lineage]),
// "parent": "" on top-level places, reported_date in milliseconds or ISO
// 8601 ([Millis]). Members without a Go field are kept in Extra, so a
// document decoded and re-encoded loses nothing. Decoding never panics;
// failures are *[DecodeError] values that name the JSON path:
//
//	var r cht.Report
//	if err := json.Unmarshal(b, &r); err != nil {
//		var de *cht.DecodeError
//		if errors.As(err, &de) { log.Print(de.Path) } // e.g. "contact.parent._id"
//	}
//	fever, _ := r.FieldString("danger_signs.fever")
//	subject, from, ok := r.Subject()
package cht
