package cht

import (
	"strconv"
	"strings"
	"time"
)

// Millis is a CHT timestamp: milliseconds since the Unix epoch, as stored in
// reported_date. It marshals as a JSON number. When decoding it also accepts
// what CHT's API accepts: a string of digits, or an ISO 8601 date or
// date-time. The zero value means "not set"; Millis(t.UnixMilli())
// converts a time.Time.
type Millis int64

// Time returns m as a UTC time.Time; the zero Millis gives the zero time.
func (m Millis) Time() time.Time {
	if m == 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(m)).UTC()
}

// String formats m as RFC 3339 with milliseconds, or "" when zero.
func (m Millis) String() string {
	if m == 0 {
		return ""
	}
	return m.Time().Format("2006-01-02T15:04:05.000Z07:00")
}

// MarshalJSON encodes m as a number of milliseconds.
func (m Millis) MarshalJSON() ([]byte, error) {
	return strconv.AppendInt(nil, int64(m), 10), nil
}

// UnmarshalJSON decodes a number, a digit string or an ISO 8601 string.
// null leaves m zero.
func (m *Millis) UnmarshalJSON(b []byte) error {
	d := newBytesDecoder(b, nil)
	v, _ := d.millis(kindAll)
	d.end()
	err := d.result(kindAll, 0, len(d.soft))
	d.release()
	if err != nil {
		return err
	}
	*m = v
	return nil
}

var isoLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04:05Z0700",
	"2006-01-02 15:04:05",
	"2006-01-02",
}

// ParseMillis parses s as CHT does for reported_date: digits are
// milliseconds, anything else must be an ISO 8601 date or date-time
// (a date without zone is taken as UTC).
func ParseMillis(s string) (Millis, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return Millis(n), true
	}
	for _, l := range isoLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return Millis(t.UnixMilli()), true
		}
	}
	return 0, false
}
