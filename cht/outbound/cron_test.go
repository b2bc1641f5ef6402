package outbound_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/cht-interop/openhim-mediator-go/cht/outbound"
)

// TestValidateCronAsCHT pins Config.Validate to the cron check CHT runs
// before any cron decision: shared-libs/transitions/src/lib/utils.js
// isWithinTimeFrame (cht-core 4.5.0 to 5.2.0) calls cron-validator 1.3.1
// isValidCron(exp) with the default options {alias: false, seconds:
// false, allowBlankDay: false, allowSevenAsSunday: false} (lib/index.js
// validateForRange, isValidRange, isValidStep, hasValidWeekdays). An
// expression it refuses is never due: mark_for_outbound.js queues the
// push and sentinel/src/schedule/outbound.js execute never sends it, so
// Validate must refuse it, naming the push and the cron key.
func TestValidateCronAsCHT(t *testing.T) {
	tests := []struct {
		cron  string
		valid bool
	}{
		{"0 * * * *", true},
		{"*/15 * * * *", true},
		{"0 0 1-15/2 1,6,12 1-5", true},
		{"5/10 23 31 12 0", true},
		{"  0   0 * * 6 ", true},
		{"00 00 01 01 00", true},
		{"@daily", false},        // macros are not cron-validator syntax
		{"0 0 * * MON", false},   // alias: false
		{"0 0 * JAN *", false},   // alias: false
		{"0 0 ? * *", false},     // allowBlankDay: false
		{"0 0 * * ?", false},     // allowBlankDay: false
		{"0 0 0 * * *", false},   // seconds: false (six fields)
		{"0 0 * *", false},       // four fields
		{"0 0 * * 7", false},     // allowSevenAsSunday: false
		{"60 * * * *", false},    // minute 0-59
		{"0 24 * * *", false},    // hour 0-23
		{"0 0 0 * *", false},     // day 1-31
		{"0 0 * 13 *", false},    // month 1-12
		{"0 0 5-1 * *", false},   // range must be ascending
		{"*/0 * * * *", false},   // step must be > 0
		{"*/ * * * *", false},    // empty step
		{"*/2/2 * * * *", false}, // two steps
		{"*-5 * * * *", false},   // * cannot start a range
		{"1,,2 * * * *", false},  // empty list item
		{"L * * * *", false},     // Quartz extensions
		{"0 0 1W * *", false},
		{"0 0 * * 1#2", false},
		{"H * * * *", false},
		{"\ufeff0 * * * *", true}, // JavaScript's trim and \s include U+FEFF
		{"0\u0085* * * *", false}, // but not U+0085: four fields
	}
	base := outbound.Push{RelevantTo: "true", Destination: outbound.Destination{BaseURL: "https://h", Path: "/p"},
		Mapping: outbound.DocMapping()}
	for _, tt := range tests {
		p := base
		p.Cron = tt.cron
		err := outbound.Config{"nightly": p}.Validate()
		if tt.valid {
			if err != nil {
				t.Errorf("cron %q: %v; cron-validator 1.3.1 accepts it", tt.cron, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("cron %q validated; cron-validator 1.3.1 refuses it, so CHT never sends the push", tt.cron)
			continue
		}
		for _, want := range []string{`"nightly"`, "cron", strconv.Quote(tt.cron), "never send"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("cron %q: error %q does not mention %q", tt.cron, err, want)
			}
		}
	}
	// No cron: CHT (config.cron falsy) sends at once.
	if err := (outbound.Config{"nightly": base}).Validate(); err != nil {
		t.Errorf("no cron: %v", err)
	}
}

// TestValidateCronNeverDue pins Config.Validate to the crons CHT accepts
// but never runs: shared-libs/transitions/src/lib/utils.js
// isWithinTimeFrame reads an accepted cron with later.js 1.2.0
// (later.parse.cron, later.schedule(...).next() and .prev()), which keeps
// only the times that meet every field (src/core/compile.js start), a day
// of month and a day of week alike, and knows 29 February only in leap
// years (src/constraint/day.js later.D.extent). A cron whose days exist in
// none of its months has no tick: next and prev give up after 1000 steps
// on a date that matches nothing, isWithinTimeFrame answers false at every
// run, and the push stays queued, unsent and unreported.
func TestValidateCronNeverDue(t *testing.T) {
	tests := []struct {
		cron string
		due  bool
	}{
		{"*/5 * * * *", true},
		{"0 9 * * 1-5", true},
		{"0 0 31 * *", true},
		{"0 0 29 2 *", true},   // in leap years
		{"0 0 29 2 1", true},   // 29 February 2044 is a Monday
		{"0 0 31 4/2 *", true}, // 4/2 runs to December: August has 31 days
		{"0 0 31 2 *", false},
		{"0 0 30 2 *", false},
		{"0 0 31 4,6,9,11 *", false},
		{"0 0 31 2 1", false}, // the weekday does not widen the days: both must match
		{"0 0 31 2-6/2 *", false},
	}
	base := outbound.Push{RelevantTo: "true", Destination: outbound.Destination{BaseURL: "https://h", Path: "/p"},
		Mapping: outbound.DocMapping(), Cron: "0 2 * * *"}
	for _, tt := range tests {
		p := base
		p.Cron = tt.cron
		err := outbound.Config{"nightly": p}.Validate()
		if tt.due {
			if err != nil {
				t.Errorf("cron %q: %v; it falls due", tt.cron, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("cron %q validated; it never falls due, so CHT never sends the push", tt.cron)
			continue
		}
		for _, want := range []string{`"nightly"`, strconv.Quote(tt.cron), "never falls due", "never send"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("cron %q: error %q does not mention %q", tt.cron, err, want)
			}
		}
	}
}
