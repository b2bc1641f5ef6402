package phone

import "testing"

// TestNormalize pins shared-libs/phone-number/src/phone-number.js
// normalize: libphonenumber parsing with the region of
// default_country_code, full validation unless phone_validation says
// otherwise, letters rejected, E.164 out.
func TestNormalize(t *testing.T) {
	ke := Settings{DefaultCountryCode: "254"}
	tests := []struct {
		s     Settings
		in    string
		want  string
		valid bool
	}{
		{ke, "+254712345678", "+254712345678", true},
		{ke, "0712 345 678", "+254712345678", true},
		{ke, "0712-345-678", "+254712345678", true},
		{ke, "(0712) 345678", "+254712345678", true},
		{ke, "254712345678", "+254712345678", true},
		{ke, " 254712345678", "+254712345678", true}, // a "+" sent unencoded in a query arrives as a space
		{ke, "+1 650 253 0000", "+16502530000", true},
		{ke, "0712345", "", false},            // too short for Kenya
		{ke, "+254 712 ABC 678", "", false},   // letters
		{ke, "1-800-MICROSOFT", "", false},    // alpha numbers are rejected even when libphonenumber accepts them
		{Settings{}, "0712345678", "", false}, // no default country: a national number is invalid
		{Settings{}, "+254712345678", "+254712345678", true},
		{Settings{DefaultCountryCode: "254", Validation: "none"}, "12", "+25412", true},
		{Settings{DefaultCountryCode: "254", Validation: "partial"}, "0712345678", "+254712345678", true},
	}
	for _, tt := range tests {
		got, ok := Normalize(tt.s, tt.in)
		if got != tt.want || ok != tt.valid {
			t.Errorf("Normalize(%+v, %q) = %q %v, want %q %v", tt.s, tt.in, got, ok, tt.want, tt.valid)
		}
	}
	if s := FromAppSettings(map[string]any{"default_country_code": 254.0, "phone_validation": "partial"}); s.DefaultCountryCode != "254" || s.Validation != "partial" {
		t.Errorf("FromAppSettings: %+v", s)
	}
}
