package fhir

import (
	"strconv"
	"strings"
	"unicode/utf8"

	models "github.com/samply/golang-fhir-models/fhir-models/fhir"
)

// maxReason bounds the server's text in a [ServerError] (its Reason, and
// so its message), as cht.APIError bounds CHT's: an answer of megabytes
// must not become an error, a log line or an OpenHIM error field of
// megabytes. The error's Outcome keeps every issue.
const maxReason = 4 << 10

// outcomeText returns the server's reasons in an OperationOutcome: the
// diagnostics and details.text of each issue (servers put the reason in
// either: HAPI in diagnostics, Medplum in details.text), issues of severity
// fatal and error first, joined with "; ". Identical texts are given once.
// It returns "" for nil or an outcome without text. The text is at most
// maxReason bytes: the first issues, which usually matter, whole, then
// "… (N more issues)"; a first issue longer than that is cut between
// characters, with the number of bytes (and issues) left out.
func outcomeText(oo *models.OperationOutcome) string {
	if oo == nil {
		return ""
	}
	type part struct {
		text  string
		issue int
	}
	var parts []part
	total := 0
	seen := map[string]bool{}
	add := func(s *string, issue int) {
		if s == nil {
			return
		}
		t := strings.TrimSpace(*s)
		if t != "" && !seen[t] {
			seen[t] = true
			if len(parts) > 0 {
				total += len("; ")
			}
			total += len(t)
			parts = append(parts, part{t, issue})
		}
	}
	for _, pass := range []bool{true, false} {
		for i, is := range oo.Issue {
			serious := is.Severity == models.IssueSeverityFatal || is.Severity == models.IssueSeverityError
			if serious != pass {
				continue
			}
			add(is.Diagnostics, i)
			if is.Details != nil {
				add(is.Details.Text, i)
			}
		}
	}
	var b strings.Builder
	if total <= maxReason {
		for i, p := range parts {
			if i > 0 {
				b.WriteString("; ")
			}
			b.WriteString(p.text)
		}
		return b.String()
	}
	// left is the number of issues with a text among parts[k:], but
	// issue shown (in part).
	left := func(k, shown int) int {
		counted := map[int]bool{shown: true}
		for _, p := range parts[k:] {
			counted[p.issue] = true
		}
		return len(counted) - 1
	}
	room := maxReason - len("… ( more issues)") - len(strconv.Itoa(len(oo.Issue)))
	k := 0
	for ; k < len(parts); k++ {
		sep := 0
		if k > 0 {
			sep = len("; ")
		}
		if b.Len()+sep+len(parts[k].text) > room {
			break
		}
		if k > 0 {
			b.WriteString("; ")
		}
		b.WriteString(parts[k].text)
	}
	if k == 0 {
		// The first text alone is too long: its start, and how much of
		// it and of the others was left out.
		t := parts[0].text
		more := ""
		if n := left(1, parts[0].issue); n > 0 {
			more = ", " + strconv.Itoa(n) + " more " + plural(n, "issue", "issues")
		}
		cut := maxReason - len("… ( more bytes)") - len(strconv.Itoa(len(t))) - len(more)
		for cut > 0 && !utf8.RuneStart(t[cut]) {
			cut--
		}
		return t[:cut] + "… (" + strconv.Itoa(len(t)-cut) + " more bytes" + more + ")"
	}
	if n := left(k, parts[k-1].issue); n > 0 {
		b.WriteString("… (" + strconv.Itoa(n) + " more " + plural(n, "issue", "issues") + ")")
	} else { // only the other text of the last issue shown
		b.WriteString("… (" + strconv.Itoa(total-b.Len()) + " more bytes)")
	}
	return b.String()
}

// plural is one when n is 1, else many.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// capText returns s whole when it has at most max bytes, else its start,
// cut between UTF-8 characters, and "… (N more bytes)": at most max bytes
// in all.
func capText(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max - len("… ( more bytes)") - len(strconv.Itoa(len(s)))
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "… (" + strconv.Itoa(len(s)-cut) + " more bytes)"
}

// bodySnippet returns the start of a response body that is not an
// OperationOutcome (an HTML error page, plain text), as valid UTF-8 on one
// line, so an error still says what the server answered.
func bodySnippet(b []byte) string {
	const limit = 200
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b[:min(len(b), 4*limit)]), "\uFFFD")), " ")
	if r := []rune(s); len(r) > limit {
		s = string(r[:limit]) + "..."
	}
	return s
}

// parseOutcome decodes an OperationOutcome from a response body; it
// returns nil when the body is not one or has no issues. With outcomeText
// it gives every error from a FHIR server the server's reason the same way.
func parseOutcome(b []byte) *models.OperationOutcome {
	if len(b) == 0 {
		return nil
	}
	oo, err := models.UnmarshalOperationOutcome(b)
	if err != nil || len(oo.Issue) == 0 {
		return nil
	}
	return &oo
}
