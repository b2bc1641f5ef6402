//go:build unix

package push_test

import "syscall"

// processCPU returns the CPU time (user + system) the process has used, in
// nanoseconds: on a shared machine wall time includes waiting for a core.
func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
