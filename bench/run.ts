// `npm run bench [-- --profile quick|full]`: runs Kura's benchmarks with the machine's limits
// measured in the same run, prints a table with ratios, and saves every figure with the machine
// description and git commit under bench/results/. Never run by the test suite.
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, totalmem, release } from 'node:os';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { caseLabel, runStreamAppendCases, streamAppendCases, type AppendCaseResult } from './stream-append.ts';
import { measureReplicatedAppend, replicatedCases, replicatedLabel, type ReplicatedCase } from './stream-replicated.ts';
import type { ThroughputResult } from './lib/stats.ts';

const profiles = {
  quick: { durationMs: 2_000, operationsMax: 20_000 },
  full: { durationMs: 10_000, operationsMax: 200_000 },
} as const;

function parseProfile(): keyof typeof profiles {
  const { values } = parseArgs({ options: { profile: { type: 'string', default: 'quick' } } });
  const profile = values.profile;
  if (profile !== 'quick' && profile !== 'full') throw new Error(`--profile must be quick or full, got ${profile}`);
  return profile;
}

function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

function printTable(results: readonly AppendCaseResult[]): void {
  const rows = results.map((result) => ({
    case: caseLabel(result),
    'appends/s': Math.round(result.kura.opsPerSecond),
    'MiB/s': result.kura.mibPerSecond.toFixed(1),
    'p50 ms': result.kura.latency.p50Ms.toFixed(2),
    'p99 ms': result.kura.latency.p99Ms.toFixed(2),
    'raw fsyncs/s': Math.round(result.raw.opsPerSecond),
    'raw MiB/s': result.raw.mibPerSecond.toFixed(1),
    'ops ÷ raw': result.opsRatio.toFixed(2),
    'fsyncs/append': (result.fsyncs.journalFsyncsPerAppend + result.fsyncs.extentFsyncsPerAppend).toFixed(3),
    'bytes ÷ raw': result.bytesRatio.toFixed(2),
  }));
  console.table(rows);
}

interface ReplicatedResult extends ReplicatedCase {
  readonly kura: ThroughputResult;
  /** Appends/s ÷ the raw fsync'd append rate of the same record size measured in this run. */
  readonly opsRatio: number;
}

/** Whole stream layer (StreamClient → primary → secondaries over TCP), 1 and 3 replicas. */
async function runReplicated(bounds: (typeof profiles)[keyof typeof profiles], rawBySize: ReadonlyMap<number, ThroughputResult>): Promise<ReplicatedResult[]> {
  const cases = replicatedCases();
  const progress = new cliProgress.SingleBar({ format: 'replicated [{bar}] {value}/{total} {label}' }, cliProgress.Presets.shades_classic);
  progress.start(cases.length, 0, { label: '' });
  const out: ReplicatedResult[] = [];
  for (const [index, replicatedCase] of cases.entries()) {
    progress.update(index, { label: replicatedLabel(replicatedCase) });
    const kura = await measureReplicatedAppend(replicatedCase, bounds);
    const raw = rawBySize.get(replicatedCase.recordBytes);
    out.push({ ...replicatedCase, kura, opsRatio: raw === undefined ? Number.NaN : kura.opsPerSecond / raw.opsPerSecond });
  }
  progress.update(cases.length, { label: 'done' });
  progress.stop();
  console.table(out.map((result) => ({
    case: replicatedLabel(result),
    'appends/s': Math.round(result.kura.opsPerSecond),
    'MiB/s': result.kura.mibPerSecond.toFixed(1),
    'p50 ms': result.kura.latency.p50Ms.toFixed(2),
    'p99 ms': result.kura.latency.p99Ms.toFixed(2),
    'ops ÷ raw': result.opsRatio.toFixed(2),
  })));
  return out;
}

const profileName = parseProfile();
const cases = streamAppendCases();
const bar = new cliProgress.SingleBar({ format: 'bench [{bar}] {value}/{total} {label}' }, cliProgress.Presets.shades_classic);
bar.start(cases.length, 0, { label: '' });
const results = await runStreamAppendCases(cases, profiles[profileName], (done, label) => bar.update(done, { label }));
bar.stop();
printTable(results);
const rawBySize = new Map(results.map((result) => [result.recordBytes, result.raw]));
const replicated = await runReplicated(profiles[profileName], rawBySize);
const report = {
  benchmark: 'stream-append',
  profile: profileName,
  commit: gitCommit(),
  date: new Date().toISOString(),
  machine: { cores: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', memoryBytes: totalmem(), kernel: release(), node: process.version },
  results,
  replicated,
};
await mkdir('bench/results', { recursive: true });
// Date and time in the name: a second run on the same day must not overwrite the first.
const path = `bench/results/stream-append-${profileName}-${report.date.slice(0, 19).replaceAll(':', '-')}.json`;
await writeFile(path, JSON.stringify(report, null, 2) + '\n');
console.log(`saved ${path}`);
