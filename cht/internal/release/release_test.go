package release

import "testing"

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    Version
		wantErr bool
	}{
		{in: "4.10.0", want: Version{4, 10, 0}},
		{in: " v3.9.2 ", want: Version{3, 9, 2}},
		{in: "4.10.0-beta.1", want: Version{4, 10, 0}},
		{in: "5.2.0+build.7", want: Version{5, 2, 0}},
		{in: "4.2", want: Version{4, 2, 0}},
		{in: "4", wantErr: true},
		{in: "four", wantErr: true},
		{in: "4.x.0", wantErr: true},
		{in: "4.-1.0", wantErr: true},
		{in: "4.1.0.1", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("Parse(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("Parse(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestAtLeast(t *testing.T) {
	v := Version{4, 10, 3}
	tests := []struct {
		major, minor int
		want         bool
	}{
		{4, 10, true}, {4, 9, true}, {3, 99, true},
		{4, 11, false}, {5, 0, false},
	}
	for _, tt := range tests {
		if got := v.AtLeast(tt.major, tt.minor); got != tt.want {
			t.Errorf("%v.AtLeast(%d, %d) = %v, want %v", v, tt.major, tt.minor, got, tt.want)
		}
	}
	if s := v.String(); s != "4.10.3" {
		t.Errorf("String() = %q", s)
	}
}
