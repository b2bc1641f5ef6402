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
