// Package cron checks cron expressions as CHT does before it runs one, for
// cht/outbound's settings check and cht/chttest's fake pusher alike.
package cron

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// Check applies the check CHT runs before every cron decision:
// shared-libs/transitions/src/lib/utils.js isWithinTimeFrame first calls
// cron-validator 1.3.1 isValidCron(exp) with its default options, and
// for an expression it refuses it logs an error and answers "not due".
// mark_for_outbound then queues the push and Sentinel's outbound schedule
// (sentinel/src/schedule/outbound.js execute) never runs it: the push is
// never sent and nobody is told.
//
// The default options are alias false (no JAN or MON), seconds false
// (exactly five fields), allowBlankDay false (no ?) and
// allowSevenAsSunday false (weekday 0-6). Macros such as @daily are not
// cron-validator syntax.
func Check(expr string) error {
	// cron.trim().split(/\s+/): JavaScript's white space is Go's
	// unicode.IsSpace without U+0085 and with U+FEFF.
	fields := strings.FieldsFunc(expr, func(r rune) bool {
		return r == '\uFEFF' || (r != '\u0085' && unicode.IsSpace(r))
	})
	if len(fields) != 5 {
		return fmt.Errorf("cron %q has %d fields; CHT accepts exactly five (minute hour day month weekday), no seconds and no @macros", expr, len(fields))
	}
	for i, f := range []struct {
		name   string
		lo, hi int
	}{{"minute", 0, 59}, {"hour", 0, 23}, {"day", 1, 31}, {"month", 1, 12}, {"weekday", 0, 6}} {
		if !cronFieldValid(fields[i], f.lo, f.hi) {
			return fmt.Errorf("cron %q: %s %q: CHT accepts only numbers %d-%d, *, ranges a-b, lists a,b and steps /n (no names, no ?)",
				expr, f.name, fields[i], f.lo, f.hi)
		}
	}
	return nil
}

// cronFieldValid is cron-validator's validateForRange.
func cronFieldValid(v string, lo, hi int) bool {
	if strings.IndexFunc(v, func(r rune) bool {
		return (r < '0' || r > '9') && r != '-' && r != ',' && r != '/' && r != '*'
	}) >= 0 {
		return false
	}
	for cond := range strings.SplitSeq(v, ",") {
		parts := strings.Split(cond, "/")
		if strings.HasSuffix(cond, "/") || len(parts) > 2 {
			return false
		}
		if !cronRangeValid(parts[0], lo, hi) {
			return false
		}
		if len(parts) == 2 {
			if n, ok := cronInt(parts[1]); !ok || n <= 0 {
				return false
			}
		}
	}
	return true
}

// cronRangeValid is cron-validator's isValidRange.
func cronRangeValid(v string, lo, hi int) bool {
	sides := strings.Split(v, "-")
	switch len(sides) {
	case 1:
		n, ok := cronInt(v)
		return v == "*" || (ok && n >= lo && n <= hi)
	case 2:
		a, okA := cronInt(sides[0])
		b, okB := cronInt(sides[1])
		return okA && okB && a <= b && a >= lo && b <= hi
	}
	return false
}

// cronInt is cron-validator's safeParseInt: digits only.
func cronInt(s string) (int, bool) {
	if s == "" || strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	return n, err == nil
}
