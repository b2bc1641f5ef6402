package fhir

import (
	"crypto/sha1"
)

// nsURL is the RFC 9562 name-space ID for URLs (6ba7b811-9dad-11d1-80b4-00c04fd430c8).
var nsURL = [16]byte{0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}

// uuidV5 returns the RFC 9562 version-5 (SHA-1, name-based) UUID of name in
// the name space ns.
func uuidV5(ns [16]byte, name ...string) [16]byte {
	var stack [256]byte
	buf := append(stack[:0], ns[:]...)
	for i, s := range name {
		if i > 0 {
			buf = append(buf, 0) // separator: ("ab","c") != ("a","bc")
		}
		buf = append(buf, s...)
	}
	sum := sha1.Sum(buf)
	return v5(sum[:])
}

// v5 is the version-5 UUID of a name's SHA-1 sum.
func v5(sum []byte) [16]byte {
	var u [16]byte
	copy(u[:], sum[:16])
	u[6] = (u[6] & 0x0f) | 0x50 // version 5
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 9562 variant
	return u
}

// appendUUID appends the canonical 36-character form of u.
func appendUUID(dst []byte, u [16]byte) []byte {
	t := uuidText(u)
	return append(dst, t[:]...)
}

func uuidString(u [16]byte) string {
	t := uuidText(u)
	return string(t[:])
}
