// Package soak holds the fault, load and hostile-input tests of the
// examples; it has no code of its own besides this overview.
//
// The tests drive the cht-to-fhir mediator (package fhir/push inside a
// mediator.Mediator registered with the fake OpenHIM core of openhimtest)
// the way CHT does, with chttest.OutboundPusher, while faults are
// injected everywhere: a share of FHIR writes fail, time out or lose their
// answer (fhirtest.Faults), CHT answers 429 and 5xx to hydrates
// (chttest.Server.InjectFault), and the OpenHIM core is unreachable at start
// and restarted mid-run. At the end the FHIR store must hold exactly the
// expected resources: none lost, none duplicated.
//
// Commands:
//
//	go test -count=1 ./examples/soak/                 # short versions (N=200 payloads)
//	SOAK_N=1000 go test -count=1 -run TestFaultsNoLossNoDuplicates ./examples/soak/   # CI's fault harness
//	go test -count=1 -tags soak -run Soak -timeout 30m ./examples/soak/   # long soak (SOAK_N, default 10,000)
//	go test -count=1 -tags soak -run LoadTable -v ./examples/soak/        # throughput and p50/p99 at fixed rates
//	go test -count=1 -run E2E ./examples/soak/        # against a real core and FHIR server (env of .ci/stack.sh)
//
// SOAK_N overrides the number of payloads of the fault test.
package soak
