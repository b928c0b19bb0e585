// The blob benchmark of issue 5 as a function, so that `npm run bench:blob` (run-blob.ts) and
// `npm run bench` (bench/run.ts, with the stream benchmarks) drive the same code. Measures the
// machine's limits, then runs every workload against each peer it starts itself, each on its own
// loopback port and temporary data directory, with a kill -9 durability check after every write
// workload; prints the tables, judges the goals and saves
// bench/results/blob-<profile>-<date>T<time>.json and .svg. Every peer is stopped after its
// workloads, also when one fails; the callers kill any child left on exit or Ctrl-C.
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ProgressSink } from '../lib/progress.ts';
import { evaluateGoals, goalRows, lossTotals } from './goals.ts';
import { measureMachineLimits, type MachineLimits } from './limits.ts';
import { PeerUnavailableError, type BenchPeer } from './peer.ts';
import { clusterWorkloads, devClusterPeer, isClusterPeer } from './cluster-peer.ts';
import { azuritePeer, kuraServePeer, nullServerPeer } from './peers.ts';
import type { BlobProfile } from './profiles.ts';
import { chartInput, describeRun, limitRows, tableRows, withRatios } from './report.ts';
import type { PeerStatus, WorkloadResult } from './results.ts';
import { SdkBlobClient } from './sdk-client.ts';
import { renderBarChart } from './svg-chart.ts';
import { runWorkload, specLabel, warmUp, workloadSpecs, type WorkloadSpec } from './workloads.ts';

/**
 * Every default peer, in the order a run without --peers starts them. The budget (runBudgetMs)
 * cuts the peers that run last, so the goals' three come first: Kura's embedded default, Azurite on
 * disk and the null server (every goal's ceiling, and the Get and download goals' reference);
 * in-memory Azurite, which no goal names, runs last. Before this order the first full run of all
 * seven peers (2026-11-22 16-23-05) spent the budget on the three durable single-process peers
 * (each one's 100,000-blob listing started just inside its share and ran 2.5-5 min past it), and
 * the null server and in-memory Azurite ran 3 cells each: no goal had its ceiling. The null server
 * is not first: the benchmark's own client code is still cold then (a quick run with it first
 * measured its SDK Get 64 KiB at 514 ops/s against 1,052 when it ran third).
 */
export const allPeers: Readonly<Record<string, () => BenchPeer>> = {
  'kura-1disk': () => kuraServePeer(1),
  'azurite-disk': () => azuritePeer('disk'),
  'null-server': () => nullServerPeer(),
  'kura-3disk': () => kuraServePeer(3),
  'kura-cluster-1fe': () => devClusterPeer(1),
  'kura-cluster-2fe': () => devClusterPeer(2),
  'azurite-memory': () => azuritePeer('memory'),
};

/** Peers run only when named with --peers: the 2-front-end cluster with its front ends addressed
 * directly, no balancer (the default cluster peers go through dev-cluster's one endpoint). */
export const optionalPeers: Readonly<Record<string, () => BenchPeer>> = {
  'kura-cluster-2fe-direct': () => devClusterPeer(2, { addressing: 'direct' }),
};

/** The workloads a peer runs: every one, except a dev cluster's few cells (cluster-peer.ts). */
export function peerSpecs(name: string, specs: readonly WorkloadSpec[]): WorkloadSpec[] {
  return isClusterPeer(name) ? specs.filter(clusterWorkloads) : [...specs];
}

export function checkPeerNames(names: readonly string[]): void {
  for (const name of names) if (!(name in allPeers) && !(name in optionalPeers)) throw new Error(`unknown peer ${name}; peers: ${[...Object.keys(allPeers), ...Object.keys(optionalPeers)].join(', ')}`);
}

/**
 * What one blob run covers beyond its profile: a stamp that is already running, measured first
 * (`kura bench`; never killed), and which workload kinds run (default: all of the profile's).
 */
export interface BlobRunOptions {
  readonly running?: BenchPeer;
  readonly kinds?: readonly WorkloadSpec['kind'][];
}

function selectedSpecs(profile: BlobProfile, options: BlobRunOptions): WorkloadSpec[] {
  const kinds = options.kinds;
  return workloadSpecs(profile).filter((spec) => kinds === undefined || kinds.includes(spec.kind));
}

/** Progress steps of one blob run: the limits, then one start and one step per workload per peer. */
export function blobBenchSteps(profile: BlobProfile, peerNames: readonly string[], options: BlobRunOptions = {}): number {
  const specs = selectedSpecs(profile, options);
  const names = options.running === undefined ? peerNames : [options.running.name, ...peerNames];
  return 2 * (profile.sizesBytes.length + 1) + names.reduce((steps, name) => steps + peerSpecs(name, specs).length + 1, 0);
}

function load1m(): number {
  return loadavg()[0] ?? Number.NaN;
}

/**
 * A peer's claim on the run budget: one unit per workload, two for a durable peer, whose every
 * write workload ends with a kill -9, a restart and a read-back.
 */
function budgetWeight(peer: BenchPeer, specs: readonly WorkloadSpec[]): number {
  return Math.max(1, specs.length) * (peer.persistence.kind === 'durable' ? 2 : 1);
}

/** Starts one peer, runs every workload it has time for (until deadlineMs, performance.now()), and always stops it. */
async function runPeer(peer: BenchPeer, profile: BlobProfile, specs: readonly WorkloadSpec[], progress: ProgressSink, deadlineMs: number): Promise<{ status: PeerStatus; results: WorkloadResult[] }> {
  const results: WorkloadResult[] = [];
  const skipped: string[] = [];
  try {
    progress.step(`${peer.name}: starting`);
    const endpoint = await peer.start();
    const sdk = new SdkBlobClient({ connectionString: endpoint.spreadConnectionStrings ?? endpoint.connectionString, maxTries: 1 });
    const setup = new SdkBlobClient({ connectionString: endpoint.connectionString, maxTries: 4 });
    const session = { peer, profile, connectionString: endpoint.connectionString, sdk, setup };
    for (const [index, spec] of specs.entries()) {
      progress.step(`${peer.name}: ${specLabel(spec, profile)}`);
      if (performance.now() > deadlineMs) {
        skipped.push(specLabel(spec, profile));
        continue;
      }
      // Before every workload, not only the first: a durable peer was killed -9 and restarted at
      // the end of the previous write workload, so it would otherwise start this one cold.
      await warmUp(session);
      const t0 = performance.now();
      const atStart = load1m();
      const rows = await runWorkload(session, spec, `w${index}-${spec.kind}`);
      const extra = { workloadWallSeconds: (performance.now() - t0) / 1000, loadAverage1m: { atStart, atEnd: load1m() } };
      results.push(...rows.map((row) => ({ ...row, ...extra })));
    }
    return { status: { name: peer.name, status: 'ran', ...(skipped.length === 0 ? {} : { skipped }) }, results };
  } catch (error) {
    if (error instanceof PeerUnavailableError) return { status: { name: peer.name, status: 'unavailable', reason: error.reason }, results };
    const message = error instanceof Error ? error.message : String(error);
    return { status: { name: peer.name, status: 'failed', error: message }, results };
  } finally {
    await peer.stop();
  }
}

async function measureLimits(profile: BlobProfile, progress: ProgressSink): Promise<MachineLimits> {
  return measureMachineLimits({
    sizesBytes: [...profile.sizesBytes, profile.bigBlockBytes],
    durationMs: profile.durationMs,
    operationsMax: profile.operationsMax,
    bytesMax: profile.workloadBytesMax,
    onProgress: (label) => progress.step(label),
  });
}

export interface BlobBenchOutcome {
  readonly report: Record<string, unknown>;
  readonly svg: string;
  /** Printed after the progress bar stops: limits, every workload, goals, kill -9 losses. */
  readonly tables: readonly (readonly Record<string, string | number>[])[];
}

/** Runs the limits and every peer; returns the report, chart and tables (nothing printed). */
export async function runBlobBench(profile: BlobProfile, peerNames: readonly string[], progress: ProgressSink, options: BlobRunOptions = {}): Promise<BlobBenchOutcome> {
  checkPeerNames(peerNames);
  const startedMs = performance.now();
  // Other work on this machine skews every figure: the load at start and end is saved with them.
  const loadAverageAtStart = loadavg();
  const specs = selectedSpecs(profile, options);
  const limits = await measureLimits(profile, progress);
  const peers: PeerStatus[] = [];
  const results: WorkloadResult[] = [];
  const running = options.running;
  const factories = [...(running === undefined ? [] : [() => running]), ...peerNames.flatMap((name) => {
    const factory = allPeers[name] ?? optionalPeers[name];
    return factory === undefined ? [] : [factory];
  })];
  const budgetEndMs = startedMs + profile.runBudgetMs;
  const planned = factories.map((factory) => {
    const peer = factory();
    const ownSpecs = peerSpecs(peer.name, specs);
    return { peer, specs: ownSpecs, weight: budgetWeight(peer, ownSpecs) };
  });
  let weightLeft = planned.reduce((sum, entry) => sum + entry.weight, 0);
  for (const { peer, specs: ownSpecs, weight } of planned) {
    const before = progress.done;
    // Its share of what is left: time a peer did not use passes to the next ones.
    const now = performance.now();
    const outcome = await runPeer(peer, profile, ownSpecs, progress, now + ((budgetEndMs - now) * weight) / weightLeft);
    weightLeft -= weight;
    progress.skipTo(before + ownSpecs.length + 1);
    peers.push(outcome.status);
    results.push(...outcome.results);
  }
  const date = new Date().toISOString();
  const rated = withRatios(results, limits, profile);
  const goals = evaluateGoals(rated);
  const losses = lossTotals(results);
  const subtitle = `${profile.name} profile, ${date.slice(0, 10)}, Node ${process.version}, load average at start ${loadAverageAtStart[0]?.toFixed(1) ?? '?'}; bars scaled per workload; bench/results/*.json has every figure`;
  const svg = renderBarChart(chartInput({ results, peers, title: 'Kura blob benchmark: @azure/storage-blob against each peer', subtitle }));
  const report = { benchmark: 'blob', profile: profile.name, date, loadAverageAtStart, ...describeRun(tmpdir()), bounds: profile, peers, limits, goals, lossesAfterKill9: losses, results: rated, elapsedSeconds: (performance.now() - startedMs) / 1000 };
  return { report, svg, tables: [limitRows(limits), tableRows(rated, peers), goalRows(goals), losses.map((loss) => ({ ...loss }))] };
}

export function printBlobTables(outcome: BlobBenchOutcome): void {
  for (const table of outcome.tables) if (table.length > 0) console.table(table);
}

/** A name per run (date and time): a second run on the same day must not overwrite the first. */
export function resultStamp(date: string): string {
  return date.slice(0, 19).replaceAll(':', '-');
}

export async function saveBlobBench(outcome: BlobBenchOutcome, profile: BlobProfile, directory = join(import.meta.dirname, '..', 'results')): Promise<string> {
  await mkdir(directory, { recursive: true });
  const date = typeof outcome.report.date === 'string' ? outcome.report.date : new Date().toISOString();
  const base = join(directory, `blob-${profile.name}-${resultStamp(date)}`);
  await writeFile(`${base}.json`, JSON.stringify(outcome.report, null, 2) + '\n');
  await writeFile(`${base}.svg`, outcome.svg);
  return base;
}
