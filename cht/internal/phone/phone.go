// Package phone normalises phone numbers as CHT does (@medic/phone-number,
// a libphonenumber wrapper), so that the cht client and the chttest fake
// match numbers the way a real CHT does.
package phone

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// Settings are the app settings that phone handling reads.
type Settings struct {
	// DefaultCountryCode is default_country_code, the calling code (e.g.
	// "254") numbers without an international prefix belong to; "" means
	// none, and such numbers are invalid.
	DefaultCountryCode string
	// Validation is phone_validation: "partial" (length only), "none", or
	// "" / "full" (length and prefix).
	Validation string
}

// FromAppSettings reads default_country_code (a number or a string) and
// phone_validation from decoded app settings.
func FromAppSettings(settings map[string]any) Settings {
	var s Settings
	switch v := settings["default_country_code"].(type) {
	case string:
		s.DefaultCountryCode = v
	case float64:
		s.DefaultCountryCode = strconv.FormatFloat(v, 'f', -1, 64)
	case int:
		s.DefaultCountryCode = strconv.Itoa(v)
	case fmt.Stringer: // json.Number
		s.DefaultCountryCode = v.String()
	}
	s.Validation, _ = settings["phone_validation"].(string)
	return s
}

// Normalize returns phone as @medic/phone-number normalize returns it: the
// E.164 form of a valid number (the national form of a valid short
// number), and false for an invalid one. A number containing a letter is
// invalid.
func Normalize(s Settings, phone string) (string, bool) {
	region := "ZZ"
	if cc, err := strconv.Atoi(strings.TrimSpace(s.DefaultCountryCode)); err == nil {
		region = phonenumbers.GetRegionCodeForCountryCode(cc)
	}
	n, err := phonenumbers.ParseAndKeepRawInput(phone, region)
	if err != nil {
		return "", false
	}
	var valid bool
	switch strings.ToLower(s.Validation) {
	case "partial":
		valid = phonenumbers.IsPossibleNumber(n)
	case "none":
		valid = true
	default:
		valid = phonenumbers.IsValidNumber(n)
	}
	if !valid || strings.ContainsFunc(phone, func(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }) {
		return "", false
	}
	if phonenumbers.IsValidShortNumber(n) {
		return phonenumbers.Format(n, phonenumbers.NATIONAL), true
	}
	return phonenumbers.Format(n, phonenumbers.E164), true
}
