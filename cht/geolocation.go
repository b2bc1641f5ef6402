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
	Accuracy         *float64 `json:"accuracy,omitempty"`
	AltitudeAccuracy *float64 `json:"altitudeAccuracy,omitempty"`
	Heading          *float64 `json:"heading,omitempty"`
	Speed            *float64 `json:"speed,omitempty"`
	Code             int      `json:"code,omitempty"`
	Message          string   `json:"message,omitempty"`
}

// Valid reports whether g holds a latitude and longitude.
func (g *Geolocation) Valid() bool {
	return g != nil && g.Latitude != nil && g.Longitude != nil
}

// decodeGeolocation decodes a geolocation member leniently. It returns nil
// for anything that is not an object of the expected shape (CHT also stores
// "" here); the caller then keeps the raw value.
func decodeGeolocation(raw []byte) *Geolocation {
	if jsonKind(raw) != "object" {
		return nil
	}
	var g Geolocation
	if err := json.Unmarshal(raw, &g); err != nil {
		return nil
	}
	// Keep the raw form when it has members we do not model.
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil
	}
	for k := range m {
		switch k {
		case "latitude", "longitude", "altitude", "accuracy", "altitudeAccuracy", "heading", "speed", "code", "message":
		default:
			return nil
		}
	}
	return &g
}
