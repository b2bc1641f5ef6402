#!/bin/sh
# Runs the Go benchmarks of the same paths and the Node mapper (bench.js)
# interleaved, ROUNDS times (default 6), and compares them with benchstat
# (go install golang.org/x/perf/cmd/benchstat@latest, or any version).
# Run from the repository root:
#
#   sh fhir/testdata/node-mapper/compare.sh
set -eu
rounds=${ROUNDS:-6}
out=${OUT:-$(mktemp -d)}
go test -c -o "$out/fhir.test" ./fhir/
: >"$out/go.txt"
: >"$out/node.txt"
for i in $(seq "$rounds"); do
	(cd fhir && "$out/fhir.test" -test.run '^$' -test.bench '^Benchmark(PersonPatient|PersonPatientDirect|PayloadBytes|PayloadBundle)$' \
		-test.benchtime 1s -test.count 1 -test.benchmem) | grep '^Benchmark' >>"$out/go.txt"
	node fhir/testdata/node-mapper/bench.js 1 >>"$out/node.txt"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
benchstat -col .file "$out/go.txt" "$out/node.txt" 2>/dev/null || benchstat "$out/go.txt" "$out/node.txt"
echo "raw results in $out"
