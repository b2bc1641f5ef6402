// Package lib belongs to example b.
package lib
