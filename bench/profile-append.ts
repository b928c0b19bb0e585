// Profiling driver for one ExtentStore append case (bench/README.md, "Profiling"): runs the same
// closed loop as bench/stream-append.ts for one size × concurrency × group-commit setting and
// prints where the time goes: fsyncs per append (journal and extent file), records per journal
// batch, CPU per append (user + system, all threads of the process), and event-loop
// utilisation (how much of the wall time the main thread was busy rather than waiting on I/O).
// Run it under `node --cpu-prof --cpu-prof-dir=bench/profiles bench/profile-append.ts …` to get
// a V8 CPU profile of the hot path. Never run by the test suite.
//
//   node bench/profile-append.ts --bytes 4096 --concurrency 16 --group-commit on --seconds 3
import { headerUsage, parseBenchArgs } from './lib/cli-args.ts';
import { performance } from 'node:perf_hooks';
import { fsyncFigures, measureExtentStoreAppend } from './stream-append.ts';

function parseOptions(): { recordBytes: number; concurrency: number; groupCommit: boolean; durationMs: number } {
  const values = parseBenchArgs(headerUsage(import.meta.url), {
    bytes: { type: 'string', default: '4096' },
    concurrency: { type: 'string', default: '16' },
    'group-commit': { type: 'string', default: 'on' },
    seconds: { type: 'string', default: '3' },
  });
  const groupCommit = values['group-commit'];
  if (groupCommit !== 'on' && groupCommit !== 'off') throw new Error(`--group-commit must be on or off, got ${groupCommit}`);
  return { recordBytes: Number(values.bytes), concurrency: Number(values.concurrency), groupCommit: groupCommit === 'on', durationMs: Number(values.seconds) * 1000 };
}

const options = parseOptions();
const cpuBefore = process.cpuUsage();
const loopBefore = performance.eventLoopUtilization();
const { result, stats } = await measureExtentStoreAppend(options, { durationMs: options.durationMs, operationsMax: 1_000_000 });
const cpu = process.cpuUsage(cpuBefore);
const loop = performance.eventLoopUtilization(loopBefore);
const appends = Math.max(1, result.operations);
console.log(JSON.stringify({
  case: options,
  appendsPerSecond: Math.round(result.opsPerSecond),
  mibPerSecond: Number(result.mibPerSecond.toFixed(1)),
  p50Ms: Number(result.latency.p50Ms.toFixed(3)),
  p99Ms: Number(result.latency.p99Ms.toFixed(3)),
  ...fsyncFigures(stats),
  cpuMicrosPerAppend: { user: Math.round(cpu.user / appends), system: Math.round(cpu.system / appends) },
  eventLoopUtilization: Number(loop.utilization.toFixed(3)),
  stats,
}, null, 2));
