//go:build race

package soak

// raceEnabled shortens the runs under the race detector, which makes them
// 5-10 times slower and hungrier.
const raceEnabled = true
