//go:build !unix

package fhir

func processCPU() int64 { return 0 }
