package tocht

import (
	"fmt"
	"strings"
	"time"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// unversioned splits a version-specific reference
// ("Patient/p-99/_history/2", relative or absolute) into the reference
// without its version and the version. Any other reference (a urn:uuid, a
// reference without _history) comes back as is, with version "".
//
// FHIR R4 resolves a reference inside a Bundle so: "If the reference is
// version specific (either relative or absolute), then remove the version
// from the URL before matching fullUrl, and then match the version based
// on Resource.meta.versionId"
// (http://hl7.org/fhir/R4/bundle.html#references).
func unversioned(ref string) (key, version string) {
	i := strings.LastIndex(ref, "/_history/")
	if i <= 0 {
		return ref, ""
	}
	v := ref[i+len("/_history/"):]
	if v == "" || strings.ContainsAny(v, "/?#") {
		return ref, ""
	}
	return ref[:i], v
}

// metaVersion is a resource's meta.versionId, "" when it has none.
func metaVersion(m *models.Meta) string {
	if m == nil || m.VersionId == nil {
		return ""
	}
	return *m.VersionId
}

// versionMismatch is the 422 of a version-specific reference (at expr) to
// an entry of the Bundle that holds another version of the resource: the
// version it names is not in the Bundle, and the bridge does not act on
// another one.
func versionMismatch(expr, ref, key, want, have string) error {
	return invalid(expr, fmt.Sprintf("reference %s names version %s of %s, but the Bundle holds version %s (meta.versionId): "+
		"refer to the version sent, or without a version", quote(ref), quote(want), quote(key), quote(have)), models.IssueTypeNotFound)
}

// entryRef is an entry of a Bundle that a reference can name (by its
// fullUrl, or <type>/<id>), with its resource's meta.versionId.
type entryRef struct {
	entry   int
	version string
}

// resolveEntry returns the entry of entries (keyed by fullUrl and
// <type>/<id>) that the reference ref (at expr) names; found is false
// when it names none. A version-specific reference matches without its
// version, then must name the version of the entry's resource when that
// resource has one (see unversioned); another is an error naming expr.
func resolveEntry(entries map[string]entryRef, ref, expr string) (entry int, found bool, err error) {
	key, v := unversioned(ref)
	e, ok := entries[key]
	if !ok {
		return -1, false, nil
	}
	if v != "" && e.version != "" && v != e.version {
		return -1, false, versionMismatch(expr, ref, key, v, e.version)
	}
	return e.entry, true, nil
}

// effectiveKey is the effective time of an Observation
// (Observation.effective[x]: dateTime, instant, or a period's start, else
// its end) for grouping the Observations of one visit: the instant in
// UTC when it has a time and zone, else the value as sent ("" for none).
// The conversion checks the value.
func effectiveKey(o *models.Observation) string {
	var v string
	switch {
	case o.EffectiveDateTime != nil:
		v = *o.EffectiveDateTime
	case o.EffectiveInstant != nil:
		v = *o.EffectiveInstant
	case o.EffectivePeriod != nil && o.EffectivePeriod.Start != nil:
		v = *o.EffectivePeriod.Start
	case o.EffectivePeriod != nil && o.EffectivePeriod.End != nil:
		v = *o.EffectivePeriod.End
	}
	if t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(v)); err == nil {
		return t.UTC().Format(time.RFC3339Nano)
	}
	return v
}
