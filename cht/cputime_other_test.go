//go:build !unix

package cht

// processCPU is not measured here; benchmarks then report wall time only.
func processCPU() int64 { return 0 }
