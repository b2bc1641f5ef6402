package fhir

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// BenchmarkTransactionAnswer checks a transaction-response of 100 entries
// that carry their resources, as a server answering with the stored
// representations does (what a backfill batch gets back).
func BenchmarkTransactionAnswer(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"resourceType":"Bundle","id":"r","type":"transaction-response","link":[{"relation":"self","url":"http://fhir/"}],"entry":[`)
	for i := range 100 {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"fullUrl":"http://fhir/Patient/p%d","resource":{"resourceType":"Patient","id":"p%d","meta":{"versionId":"1","lastUpdated":"2026-01-01T00:00:00Z","tag":[{"system":"https://example.org/source","code":"cht"}]},`+
			`"identifier":[{"system":"https://example.org/cht/document-id","value":"doc-%d"},{"system":"https://example.org/cht/patient-id","value":"%d"}],`+
			`"name":[{"use":"official","text":"Achieng Odhiambo","family":"Odhiambo","given":["Achieng"]}],"telecom":[{"system":"phone","value":"+254700000000","use":"mobile"}],`+
			`"gender":"female","birthDate":"1990-01-01","managingOrganization":{"reference":"Organization/o1"}},`+
			`"response":{"status":"201 Created","location":"Patient/p%d/_history/1","etag":"W/\"1\"","lastModified":"2026-01-01T00:00:00Z"}}`, i, i, i, i, i)
	}
	sb.WriteString(`]}`)
	answer := []byte(sb.String())
	b.SetBytes(int64(len(answer)))
	b.ReportAllocs()
	cpu := startCPU(b)
	for b.Loop() {
		if se := checkTransactionAnswer(bytes.NewReader(answer), 100); se != nil {
			b.Fatal(se)
		}
	}
	cpu.report(b)
}
