// Package cron checks cron expressions as CHT does before it runs one, and
// tells the crons CHT accepts but that never fall due, for cht/outbound's
// settings check and Watch and cht/chttest's fake pusher alike.
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
	fields := split(expr)
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

// split splits expr into its fields as cron-validator does,
// cron.trim().split(/\s+/), and as later.parse.cron does,
// expr.replace(/(\s)+/g, ' ').split(' ') (where the empty fields left by
// leading or trailing white space are no constraint): JavaScript's white
// space is Go's unicode.IsSpace without U+0085 and with U+FEFF.
func split(expr string) []string {
	return strings.FieldsFunc(expr, func(r rune) bool {
		return r == '\uFEFF' || (r != '\u0085' && unicode.IsSpace(r))
	})
}

// Due reports whether expr, a cron [Check] accepts, ever falls due for
// CHT: nil when it does, an error saying why not when it never does (and
// Check's error for a cron Check refuses).
//
// After the check, shared-libs/transitions/src/lib/utils.js
// isWithinTimeFrame reads the cron with later.js 1.2.0 (the "later"
// package, not @breejs/later): later.parse.cron, then
// later.schedule(...).next() and .prev(), in the time zone later.js is set
// to. For a cron that never falls due those do not answer later.NEVER:
// later.compile's start gives up after 1000 steps and answers the
// non-matching date it reached, centuries away, so isWithinTimeFrame
// answers false, without an error or a log line, at every run: the push
// is queued and never sent.
//
// later.js keeps a time only when it meets every restricted field
// (later.compile's start loops until each constraint isValid), so day of
// month and day of week must both match, not either as in classic cron.
// The day and month fields have the values later.parse.cron gives them
// (see laterValues), and a day exists in a month when the month has that
// many days, 29 February counting (later.D.extent adds it in leap years).
// A day that exists in some allowed month falls on every day of the week
// in some year of later.js's calendar (a 29 February does between 2028
// and 2052, a fixed date within 11 years), so the weekday field cannot
// make a cron never due, and the minute and hour fields match some time
// of every day. So expr never falls due exactly when its smallest allowed
// day exceeds the length of each of its allowed months, such as "0 0 31 2
// *", "0 0 30 2 *" or "0 0 31 4,6,9,11 *"; "0 0 29 2 *" falls due in leap
// years. (A time of day the server's time zone skips, at a change to
// summer time, is not considered.)
func Due(expr string) error {
	if err := Check(expr); err != nil {
		return err
	}
	fields := split(expr)
	days, months := laterValues(fields[2], 1, 31), laterValues(fields[3], 1, 12)
	longest := 0 // days of the longest allowed month
	for m, n := range monthDays {
		if months&(1<<(m+1)) != 0 {
			longest = max(longest, n)
		}
	}
	if days&(1<<(longest+1)-1) != 0 {
		return nil // its smallest day exists in its longest month
	}
	return fmt.Errorf("cron %q never falls due: no day %q exists in month %q (February has 29 days at most, April, June, September and November 30)",
		expr, fields[2], fields[3])
}

// TimeOfDay returns the minutes and the hours (bit v for value v) at which
// expr, a cron [Check] accepts, ticks for later.parse.cron (see
// laterValues). They differ from classic cron's in one case: an end of 0,
// as in "0-0", is the field's maximum (src/parse/cron.js addRange,
// getValue(b) || max), so "0-0 9 * * *" ticks every minute from 09:00 to
// 09:59, not at 09:00 alone.
func TimeOfDay(expr string) (minutes, hours uint64) {
	fields := split(expr)
	return laterValues(fields[0], 0, 59), laterValues(fields[1], 0, 23)
}

// monthDays is the most days each month has, 29 February counting
// (later.DAYS_IN_MONTH, with later.D.extent's leap day).
var monthDays = [12]int{31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

// laterValues is the set of values (bit v for value v) later.parse.cron
// gives the field v, one cron-validator accepts, with values lo-hi (the
// weekday field aside, which later.js shifts by one)
// (parseExpr, parse, addRange and add in src/parse/cron.js): "*" is
// every value; in a list, an item that is a number is that value, and any
// other is a range a-b, a or *, with an optional step /n (1 without): a
// alone, "0" alone or "*" end at hi ("5/10" is 5, 15, 25 ... up to hi),
// an end b of 0 is hi too (getValue(b) || max), "*" and "0" start at lo,
// and the values run from the start by the step while they do not pass
// the end.
func laterValues(v string, lo, hi int) uint64 {
	var set uint64
	if v == "*" {
		v = "*/1"
	}
	for item := range strings.SplitSeq(v, ",") {
		if n, ok := cronInt(item); ok {
			set |= 1 << n
			continue
		}
		rng, step, hasStep := strings.Cut(item, "/")
		inc := 1
		if hasStep {
			inc, _ = cronInt(step)
		}
		from, to := lo, hi
		if rng != "*" && rng != "0" {
			a, b, isRange := strings.Cut(rng, "-")
			from, _ = cronInt(a)
			if n, _ := cronInt(b); isRange && n != 0 {
				to = n
			}
		}
		for i := from; i <= to; {
			set |= 1 << i
			if inc > to-i {
				break
			}
			i += inc
		}
	}
	return set
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
