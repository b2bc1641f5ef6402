package cron

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDue pins which crons that cron-validator 1.3.1 accepts ever fall due
// for CHT. shared-libs/transitions/src/lib/utils.js isWithinTimeFrame
// (cht-core 4.5.0 to 4.22.0) reads them with later.js 1.2.0 ("later"
// ^1.2.0 in package.json, 1.2.0 in package-lock.json):
// later.parse.cron, then later.schedule(...).next() and .prev(). For a
// cron with no tick, later.compile's start (src/core/compile.js) gives up
// after maxAttempts = 1000 steps and answers the date it reached, which
// matches nothing (for "0 0 31 2 *", next 2526-03-01 and prev 1900-03-01),
// so isWithinTimeFrame answers false at every run and the push is never
// sent.
func TestDue(t *testing.T) {
	tests := []struct {
		cron string
		due  bool
		why  string
	}{
		{"*/5 * * * *", true, "every 5 minutes"},
		{"0 9 * * 1-5", true, "weekdays at 09:00"},
		{"0 0 31 * *", true, "the 31st of the months that have one (later.D.next skips the others)"},
		{"0 0 29 2 *", true, "29 February, in leap years (later.D.extent: max+1 when later.dy.extent is 366)"},
		{"0 0 29 2 1", true, "29 February on a Monday (2044): later.compile's start keeps a date only when every constraint isValid"},
		{"0 0 29-31 2 *", true, "a range that reaches 29"},
		{"0 0 */10 2 *", true, "*/10 is 1, 11, 21, 31 (src/parse/cron.js addRange: * starts at the field's min)"},
		{"0 0 31 4/2 *", true, "4/2 is 4, 6, 8, 10, 12 (addRange: a start without an end runs to the field's max), and August has 31 days"},
		{"0 0 31 */2 *", true, "*/2 is 1, 3, 5, 7, 9, 11"},
		{"0 0 30,31 1-2 *", true, "January has both"},
		{"0 0 31 2 *", false, "31 February"},
		{"0 0 30 2 *", false, "30 February"},
		{"0 0 30,31 2 *", false, "neither day in February"},
		{"0 0 30/5 2 *", false, "30/5 is 30 only (add: values from the start by the step up to the end)"},
		{"0 0 31 4,6,9,11 *", false, "the months of 30 days"},
		{"0 0 31 2-6/2 *", false, "2-6/2 is February, April and June (add)"},
		{"0 0 31 4-11/5 *", false, "4-11/5 is April and September"},
		{"0 0 31 2 1", false, "31 February on a Monday: later.js needs day and weekday both, not either as classic cron"},
		{"0 0 31 2 *", false, "31 February"},
		{"\t0  0 31 2 * ", false, "white space around and between"},
	}
	for _, tt := range tests {
		err := Due(tt.cron)
		if (err == nil) != tt.due {
			t.Errorf("Due(%q) = %v, want due %v (%s)", tt.cron, err, tt.due, tt.why)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), "never falls due") {
			t.Errorf("Due(%q) = %q, want it to say the cron never falls due", tt.cron, err)
		}
	}
	// A cron cron-validator refuses is Check's error.
	if err, want := Due("0 0 31 FEB *"), Check("0 0 31 FEB *"); err == nil || err.Error() != want.Error() {
		t.Errorf("Due of a refused cron = %v, want Check's error %v", err, want)
	}
}

// TestDueCalendar checks Due, for every day of every month alone and with
// each weekday, against Go's calendar over later.js's years
// (later.Y.extent, 1970-2099): the cron falls due when some year has that
// date on that weekday (later.js needs day and weekday both to match).
func TestDueCalendar(t *testing.T) {
	for m := time.January; m <= time.December; m++ {
		for d := 1; d <= 31; d++ {
			for w := -1; w < 7; w++ {
				weekday := "*"
				if w >= 0 {
					weekday = strconv.Itoa(w)
				}
				expr := fmt.Sprintf("7 13 %d %d %s", d, m, weekday)
				due := false
				for y := 1970; y <= 2099 && !due; y++ {
					date := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
					due = date.Month() == m && (w < 0 || date.Weekday() == time.Weekday(w))
				}
				if err := Due(expr); (err == nil) != due {
					t.Errorf("Due(%q) = %v, want due %v", expr, err, due)
				}
			}
		}
	}
}

// TestLaterValues pins the values later.parse.cron gives a field
// (src/parse/cron.js parseExpr, parse, getValue, addRange, add).
func TestLaterValues(t *testing.T) {
	tests := []struct {
		field  string
		lo, hi int
		want   []int
	}{
		{"*", 1, 12, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
		{"*/5", 1, 31, []int{1, 6, 11, 16, 21, 26, 31}},              // * starts at the min
		{"5/10", 1, 31, []int{5, 15, 25}},                            // a start alone runs to the max
		{"0/20", 0, 59, []int{0, 20, 40}},                            // "0" is a start at the min
		{"1-5/2,9", 1, 31, []int{1, 3, 5, 9}},                        // lists, ranges and steps
		{"0-0", 0, 59, seq(0, 59)},                                   // getValue(b) || max: an end of 0 is the max
		{"0", 0, 59, []int{0}},                                       // a number alone is itself
		{"31/99999999", 1, 31, []int{31}},                            // a step past the end
		{"2,2,1-2", 1, 12, []int{1, 2}},                              // add skips values it has
		{"30-31/1", 1, 31, []int{30, 31}},                            // step 1
		{"1-12/11", 1, 12, []int{1, 12}},                             // the end is kept when the step reaches it
		{"7/9223372036854775807", 1, 31, []int{7}},                   // no overflow
		{"01-03", 1, 31, []int{1, 2, 3}},                             // leading zeros: +"01" is 1
		{"*,3", 1, 12, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}}, // * in a list is every value
	}
	for _, tt := range tests {
		var want uint64
		for _, v := range tt.want {
			want |= 1 << v
		}
		if got := laterValues(tt.field, tt.lo, tt.hi); got != want {
			t.Errorf("laterValues(%q, %d, %d) = %b, want %b", tt.field, tt.lo, tt.hi, got, want)
		}
	}
}

// TestTimeOfDay: the minutes and hours later.parse.cron gives the first
// two fields, an end of 0 being the maximum (src/parse/cron.js addRange).
func TestTimeOfDay(t *testing.T) {
	tests := []struct {
		expr           string
		minutes, hours []int
	}{
		{"0-0 9 * * *", seq(0, 59), []int{9}},
		{"0 0-0 * * *", []int{0}, seq(0, 23)},
		{" */15  0,12 * * 1", []int{0, 15, 30, 45}, []int{0, 12}},
	}
	for _, tt := range tests {
		var minutes, hours uint64
		for _, v := range tt.minutes {
			minutes |= 1 << v
		}
		for _, v := range tt.hours {
			hours |= 1 << v
		}
		if m, h := TimeOfDay(tt.expr); m != minutes || h != hours {
			t.Errorf("TimeOfDay(%q) = %b, %b, want %b, %b", tt.expr, m, h, minutes, hours)
		}
	}
}

func seq(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}
