package fhir

import (
	"crypto/sha1"
	"encoding/hex"
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
	var u [16]byte
	copy(u[:], sum[:16])
	u[6] = (u[6] & 0x0f) | 0x50 // version 5
	u[8] = (u[8] & 0x3f) | 0x80 // RFC 9562 variant
	return u
}

// appendUUID appends the canonical 36-character form of u.
func appendUUID(dst []byte, u [16]byte) []byte {
	var buf [36]byte
	hex.Encode(buf[0:8], u[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], u[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], u[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], u[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], u[10:])
	return append(dst, buf[:]...)
}

func uuidString(u [16]byte) string {
	var buf [36]byte
	return string(appendUUID(buf[:0], u))
}
