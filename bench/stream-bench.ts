// The stream benchmarks of `npm run bench` (issue 2's figures): durable appends into one
// ExtentStore (group commit on and off) against the raw fsync'd append measured right before
// each case, then appends through the whole stream layer with 1 and 3 replicas over loopback TCP.
// The full profile runs every case for 5 s (10 s until 2026-11-22's seventh session: 24 cases
// and their raw limits took 7 min 19 s of the 30; the slowest case, 1 MiB ×1, still makes ~400
// appends in 5 s); quick runs the subset below for 1 s each so that
// `npm run bench` (stream + blob) stays under 5 minutes. Returns the figures; run.ts prints and
// saves them as bench/results/stream-append-<profile>-<date>T<time>.json.
import { loadavg } from 'node:os';
import { runStreamAppendCases, streamAppendCases, caseLabel, type AppendCase, type AppendCaseResult } from './stream-append.ts';
import { measureReplicatedAppend, replicatedCases, replicatedLabel, type ReplicatedCase } from './stream-replicated.ts';
import type { ProgressSink } from './lib/progress.ts';
import type { ThroughputResult } from './lib/stats.ts';

export type ProfileName = 'quick' | 'full';

export const streamBounds: Readonly<Record<ProfileName, { readonly durationMs: number; readonly operationsMax: number }>> = {
  quick: { durationMs: 1_000, operationsMax: 20_000 },
  full: { durationMs: 5_000, operationsMax: 200_000 },
};

const KiB = 1024;

/** Quick: the cases issue 2's goals are read from (4 KiB ×16, 1 MiB) and group commit's off switch at 4 KiB ×16. */
function quickAppendCase(appendCase: AppendCase): boolean {
  if (appendCase.recordBytes === 64 * KiB) return false;
  return appendCase.groupCommit || (appendCase.recordBytes === 4 * KiB && appendCase.concurrency === 16);
}

/** Quick: 16 writers only, 1 and 3 replicas, 4 KiB and 1 MiB. */
function quickReplicatedCase(replicatedCase: ReplicatedCase): boolean {
  return replicatedCase.concurrency === 16 && replicatedCase.recordBytes !== 64 * KiB;
}

export function streamCases(profile: ProfileName): { readonly append: AppendCase[]; readonly replicated: ReplicatedCase[] } {
  if (profile === 'full') return { append: streamAppendCases(), replicated: replicatedCases() };
  return { append: streamAppendCases().filter(quickAppendCase), replicated: replicatedCases().filter(quickReplicatedCase) };
}

export function streamBenchSteps(profile: ProfileName): number {
  const cases = streamCases(profile);
  return cases.append.length + cases.replicated.length;
}

export interface ReplicatedResult extends ReplicatedCase {
  readonly kura: ThroughputResult;
  /** Appends/s ÷ the raw fsync'd append rate of the same record size measured in this run. */
  readonly opsRatio: number;
  readonly loadAverage1mAtStart: number;
}

export interface StreamBenchOutcome {
  readonly results: readonly (AppendCaseResult & { readonly loadAverage1mAtStart: number })[];
  readonly replicated: readonly ReplicatedResult[];
  readonly tables: readonly (readonly Record<string, string | number>[])[];
}

function load1m(): number {
  return loadavg()[0] ?? Number.NaN;
}

async function runAppend(cases: readonly AppendCase[], profile: ProfileName, progress: ProgressSink): Promise<(AppendCaseResult & { loadAverage1mAtStart: number })[]> {
  const out: (AppendCaseResult & { loadAverage1mAtStart: number })[] = [];
  // One case at a time, so the load average is the one the case ran under.
  for (const appendCase of cases) {
    const loadAverage1mAtStart = load1m();
    progress.step(caseLabel(appendCase));
    const [result] = await runStreamAppendCases([appendCase], streamBounds[profile], () => undefined);
    if (result !== undefined) out.push({ ...result, loadAverage1mAtStart });
  }
  return out;
}

async function runReplicated(cases: readonly ReplicatedCase[], profile: ProfileName, rawBySize: ReadonlyMap<number, ThroughputResult>, progress: ProgressSink): Promise<ReplicatedResult[]> {
  const out: ReplicatedResult[] = [];
  for (const replicatedCase of cases) {
    const loadAverage1mAtStart = load1m();
    progress.step(replicatedLabel(replicatedCase));
    const kura = await measureReplicatedAppend(replicatedCase, streamBounds[profile]);
    const raw = rawBySize.get(replicatedCase.recordBytes);
    out.push({ ...replicatedCase, kura, opsRatio: raw === undefined ? Number.NaN : kura.opsPerSecond / raw.opsPerSecond, loadAverage1mAtStart });
  }
  return out;
}

function appendRows(results: readonly AppendCaseResult[]): Record<string, string | number>[] {
  return results.map((result) => ({
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
}

function replicatedRows(results: readonly ReplicatedResult[]): Record<string, string | number>[] {
  return results.map((result) => ({
    case: replicatedLabel(result),
    'appends/s': Math.round(result.kura.opsPerSecond),
    'MiB/s': result.kura.mibPerSecond.toFixed(1),
    'p50 ms': result.kura.latency.p50Ms.toFixed(2),
    'p99 ms': result.kura.latency.p99Ms.toFixed(2),
    'ops ÷ raw': result.opsRatio.toFixed(2),
  }));
}

/** Runs the stream cases of the profile (nothing printed: the progress bar owns the terminal). */
export async function runStreamBench(profile: ProfileName, progress: ProgressSink): Promise<StreamBenchOutcome> {
  const cases = streamCases(profile);
  const results = await runAppend(cases.append, profile, progress);
  const rawBySize = new Map(results.map((result) => [result.recordBytes, result.raw]));
  const replicated = await runReplicated(cases.replicated, profile, rawBySize, progress);
  return { results, replicated, tables: [appendRows(results), replicatedRows(replicated)] };
}
