package cht

import "encoding/json"

// Geolocation is the position recorded with a report or contact (the
// browser Geolocation API's coordinates), or the failure to record one, in
// which case Code and Message are set (code 1: "User denied Geolocation").
// Numeric members are pointers because any of them may be absent or null.
type Geolocation struct {
	Latitude         *float64 `json:"latitude,omitempty"`
	Longitude        *float64 `json:"longitude,omitempty"`
	Altitude         *float64 `json:"altitude,omitempty"`
	Accuracy         *float64 `json:"accuracy,omitempty"` // metres, 95% confidence
	AltitudeAccuracy *float64 `json:"altitudeAccuracy,omitempty"`
	Heading          *float64 `json:"heading,omitempty"`
	Speed            *float64 `json:"speed,omitempty"`
	Code             int      `json:"code,omitempty"`
	Message          string   `json:"message,omitempty"`

	// Extra holds other members verbatim (nulls included).
	Extra map[string]json.RawMessage `json:"-"`
}

// Valid reports whether g holds a latitude and longitude.
func (g *Geolocation) Valid() bool {
	return g != nil && g.Latitude != nil && g.Longitude != nil
}

// number returns the field of a numeric member, or nil.
func (g *Geolocation) number(k string) **float64 {
	switch k {
	case "latitude":
		return &g.Latitude
	case "longitude":
		return &g.Longitude
	case "altitude":
		return &g.Altitude
	case "accuracy":
		return &g.Accuracy
	case "altitudeAccuracy":
		return &g.AltitudeAccuracy
	case "heading":
		return &g.Heading
	case "speed":
		return &g.Speed
	}
	return nil
}

// MarshalJSON encodes g with its Extra members.
func (g *Geolocation) MarshalJSON() ([]byte, error) {
	m := members{}
	for _, k := range [...]string{"latitude", "longitude", "altitude", "accuracy", "altitudeAccuracy", "heading", "speed"} {
		if v := *g.number(k); v != nil {
			m[k] = *v
		}
	}
	if g.Code != 0 {
		m["code"] = g.Code
	}
	m.str("message", g.Message)
	return marshalMembers(g.Extra, m)
}

// UnmarshalJSON decodes a geolocation object. Errors are *DecodeError
// values naming the member.
func (g *Geolocation) UnmarshalJSON(b []byte) error {
	d := newBytesDecoder(b, nil)
	if d.peek() != '{' {
		d.fail("want object")
	} else if v, _ := d.geolocation(kindAll); v != nil {
		*g = *v
	}
	d.end()
	err := d.result(kindAll, 0, len(d.soft))
	d.release()
	return err
}
