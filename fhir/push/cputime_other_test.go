//go:build !unix

package push_test

func processCPU() int64 { return 0 }
