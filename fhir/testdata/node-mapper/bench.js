// Benchmarks of mapper.js on the inputs of the Go benchmarks, printed in the
// Go benchmark format (ns/op wall, cpu-ns/op process CPU time) so that
// benchstat reads both. Each op starts from the input bytes and ends with
// the output bytes: JSON.parse, map, JSON.stringify.
//
//   node bench.js [seconds per benchmark, default 1]
'use strict';
const fs = require('fs');
const path = require('path');
const { patientFromPerson, bundleFromPayload } = require('./mapper');

const here = __dirname;
const person = fs.readFileSync(path.join(here, '../../../cht/testdata/person_hydrated.json'));
const payload = fs.readFileSync(path.join(here, '../encounter-20obs.json'));
const seconds = Number(process.argv[2] || 1);

const benches = [
  ['BenchmarkPersonPatient', person, (b) => Buffer.from(JSON.stringify(patientFromPerson(JSON.parse(b))))],
  ['BenchmarkPayloadBytes', payload, (b) => Buffer.from(JSON.stringify(bundleFromPayload(JSON.parse(b))))],
];

for (const [name, input, fn] of benches) {
  let out;
  for (let i = 0; i < 2000; i++) out = fn(input); // warm up the JIT
  let n = 0;
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(Math.round(seconds * 1e9));
  while (process.hrtime.bigint() < end) {
    for (let i = 0; i < 100; i++) out = fn(input);
    n += 100;
  }
  const wall = Number(process.hrtime.bigint() - t0);
  const cpu = process.cpuUsage(cpu0);
  const cpuNs = (cpu.user + cpu.system) * 1000;
  console.log(`${name}-2\t${n}\t${(wall / n).toFixed(0)} ns/op\t${(cpuNs / n).toFixed(0)} cpu-ns/op\t${out.length} out-bytes`);
}
