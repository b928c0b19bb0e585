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
import { fsyncAppendBounds, measureMachineLimits, type MachineLimits } from './limits.ts';
import { PeerUnavailableError, type BenchPeer } from './peer.ts';
import { clusterWorkloads, devClusterPeer, isClusterPeer } from './cluster-peer.ts';
import { azuritePeer, kuraServePeer, nullServerPeer } from './peers.ts';
import type { BlobProfile } from './profiles.ts';
import { chartInput, describeRun, limitRows, tableRows, withRatios } from './report.ts';
import type { PeerStatus, SkippedWorkload, WorkloadResult } from './results.ts';
import { correctionFactor, estimateWorkloadMs, planBudget, planWorkloads, priorCosts, type BudgetPlan, type PeerCosts, type PlanDecision, type PlanWorkload } from './budget-plan.ts';
import { SdkBlobClient } from './sdk-client.ts';
import { renderBarChart } from './svg-chart.ts';
import { runWorkload, specLabel, warmUp, workloadSpecs, type WorkloadSpec } from './workloads.ts';

/**
 * Every default peer, in the order a run without --peers starts them: the goals' three first
 * (Kura's embedded default, Azurite on disk, the null server: every goal's ceiling and the Get and
 * download goals' reference), in-memory Azurite, which no goal names, last. The budget planner
 * (budget-plan.ts) reserves every peer's goal cells whatever the order; the order decides which
 * peers run first on a quiet machine and whose matrix cells go first when time is short. The null
 * server is not first: the benchmark's own client code is still cold then (a quick run with it
 * first measured its SDK Get 64 KiB at 514 ops/s against 1,052 when it ran third).
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

/** One peer of the run as the budget planner sees it: its workloads in run order, costs and how its estimates compared with what it took. */
interface PlannedPeer {
  readonly peer: BenchPeer;
  readonly ordered: readonly { readonly spec: WorkloadSpec; readonly workload: PlanWorkload; readonly afterRestart: boolean }[];
  costs: PeerCosts;
  started: boolean;
  /** Sums over its finished workloads other than the listing (whose estimate uses measured rates). */
  actualMs: number;
  estimatedMs: number;
}

function plannedPeers(factories: readonly (() => BenchPeer)[], specs: readonly WorkloadSpec[], profile: BlobProfile, listAlsoOn: readonly string[]): PlannedPeer[] {
  const listOnlyOn = profile.listOnlyOn === undefined ? undefined : [...listAlsoOn, ...profile.listOnlyOn];
  const planProfile = { ...profile, ...(listOnlyOn === undefined ? {} : { listOnlyOn }) };
  return factories.map((factory) => {
    const peer = factory();
    const costs = priorCosts(peer.name, peer.persistence.kind === 'durable');
    return { peer, ordered: planWorkloads(peer.name, peerSpecs(peer.name, specs), planProfile, costs, (spec) => specLabel(spec, profile)), costs, started: false, actualMs: 0, estimatedMs: 0 };
  });
}

/**
 * A workload's estimate with the peer's costs as measured so far, times (except a listing, whose
 * population rate is measured) the peer's correction factor, or the whole run's for a peer with
 * no finished workload yet: a loaded machine slows every peer alike.
 */
function currentEstimateMs(entries: readonly PlannedPeer[], entry: PlannedPeer, planned: PlannedPeer['ordered'][number], profile: BlobProfile): number {
  const spec = planned.spec;
  const estimate = estimateWorkloadMs(spec, profile, entry.costs, { afterRestart: planned.afterRestart });
  if (spec.kind === 'list') return estimate;
  if (entry.estimatedMs > 0) return estimate * correctionFactor(entry.actualMs, entry.estimatedMs);
  const actualMs = entries.reduce((sum, other) => sum + other.actualMs, 0);
  const estimatedMs = entries.reduce((sum, other) => sum + other.estimatedMs, 0);
  return estimate * correctionFactor(actualMs, estimatedMs);
}

/** The plan for everything from peer `peerIndex`'s workload `workloadIndex` on, within what is left of the budget. */
function replan(entries: readonly PlannedPeer[], peerIndex: number, workloadIndex: number, profile: BlobProfile, budgetLeftMs: number): BudgetPlan {
  const peers = entries.slice(peerIndex).map((entry, index) => ({
    name: entry.peer.name,
    startMs: entry.started ? 0 : entry.costs.startMs,
    workloads: entry.ordered.slice(index === 0 ? workloadIndex : 0).map((planned) => ({ ...planned.workload, estimateMs: currentEstimateMs(entries, entry, planned, profile) })),
  }));
  return planBudget(peers, budgetLeftMs);
}

/**
 * Rates this run measured on the peer replace the priors: small Puts with the client that makes
 * a listing's population (the fastest such cell: the raw client's Put 4 KiB ×64 on the null
 * server made 1,939/s where the SDK's cells made half that), listing rate, restart time.
 */
function learnCosts(costs: PeerCosts, rows: readonly WorkloadResult[], profile: BlobProfile, measuredSmallPuts: { rate: number }): PeerCosts {
  let next = costs;
  for (const row of rows) {
    const smallPut = (row.kind === 'put' || row.kind === 'list-populate') && row.sizeBytes <= 4096 && row.concurrency >= 16 && row.errors === 0 && row.client === profile.listPopulateClient;
    if (smallPut) {
      measuredSmallPuts.rate = Math.max(measuredSmallPuts.rate, row.throughput.opsPerSecond);
      next = { ...next, smallPutsPerSecond: measuredSmallPuts.rate };
    }
    if (row.kind === 'list' && row.itemsPerSecond !== null && row.itemsPerSecond > 0) next = { ...next, listBlobsPerSecond: row.itemsPerSecond };
    if (row.durability?.kind === 'checked' && row.kind !== 'list-populate') next = { ...next, restartMs: Math.max(next.restartMs * 0.5, row.durability.restartMs) };
  }
  return next;
}

/** Starts one peer (unless the plan has nothing for it), runs the workloads the plan keeps as it goes, and always stops it. */
async function runPeer(entries: readonly PlannedPeer[], peerIndex: number, profile: BlobProfile, progress: ProgressSink, budgetEndMs: number): Promise<{ status: PeerStatus; results: WorkloadResult[] }> {
  const entry = entries[peerIndex];
  if (entry === undefined) throw new Error(`no peer ${peerIndex}`);
  const peer = entry.peer;
  const results: WorkloadResult[] = [];
  const skipped: SkippedWorkload[] = [];
  const decisionNow = (index: number): PlanDecision | undefined => replan(entries, peerIndex, index, profile, budgetEndMs - performance.now()).decisions[0];
  const startPlan = replan(entries, peerIndex, 0, profile, budgetEndMs - performance.now()).decisions.filter((decision) => decision.peer === peer.name);
  if (!startPlan.some((decision) => decision.run)) {
    progress.step(`${peer.name}: not started (time budget)`);
    return { status: { name: peer.name, status: 'skipped', skipped: startPlan.map((decision) => ({ workload: decision.label, reason: decision.reason ?? '' })) }, results };
  }
  try {
    progress.step(`${peer.name}: starting`);
    const endpoint = await peer.start();
    entry.started = true;
    const sdk = new SdkBlobClient({ connectionString: endpoint.spreadConnectionStrings ?? endpoint.connectionString, maxTries: 1 });
    const setup = new SdkBlobClient({ connectionString: endpoint.connectionString, maxTries: 4 });
    const session = { peer, profile, connectionString: endpoint.connectionString, sdk, setup };
    // Whether the last workload ended with a kill -9 restart (every write workload of a durable peer).
    let restarted = false;
    const measuredSmallPuts = { rate: 0 };
    for (const [index, { spec, afterRestart }] of entry.ordered.entries()) {
      progress.step(`${peer.name}: ${specLabel(spec, profile)}`);
      const decision = decisionNow(index);
      if (decision?.run !== true) {
        skipped.push({ workload: specLabel(spec, profile), reason: decision?.reason ?? 'not planned' });
        continue;
      }
      // Before every workload, not only the first: a durable peer was killed -9 and restarted at
      // the end of the previous write workload, so it would otherwise start this one cold.
      const t0 = performance.now();
      await warmUp(session, { readMs: spec.kind === 'get' && restarted ? profile.getWarmUpAfterRestartMs : 0 });
      restarted = peer.persistence.kind === 'durable' && spec.kind !== 'get';
      const atStart = load1m();
      const rows = await runWorkload(session, spec, `w${index}-${spec.kind}`);
      const wallMs = performance.now() - t0;
      if (spec.kind !== 'list') {
        entry.actualMs += wallMs;
        entry.estimatedMs += estimateWorkloadMs(spec, profile, entry.costs, { afterRestart });
      }
      entry.costs = learnCosts(entry.costs, rows, profile, measuredSmallPuts);
      const extra = { workloadWallSeconds: wallMs / 1000, estimatedWallSeconds: decision.estimateMs / 1000, loadAverage1m: { atStart, atEnd: load1m() } };
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

/** The plan a run would start with (`--plan`): every peer's workloads, estimated from the priors, within the profile's budget less the limits. */
export function dryRunPlan(profile: BlobProfile, peerNames: readonly string[], options: BlobRunOptions = {}): BudgetPlan {
  checkPeerNames(peerNames);
  const factories = peerNames.flatMap((name) => {
    const factory = allPeers[name] ?? optionalPeers[name];
    return factory === undefined ? [] : [factory];
  });
  return replan(plannedPeers(factories, selectedSpecs(profile, options), profile, []), 0, 0, profile, profile.runBudgetMs - limitsEstimateMs(profile));
}

/** The machine limits' wall time: a fsync'd append and a sequential read loop per size. */
function limitsEstimateMs(profile: BlobProfile): number {
  const sizes = [...profile.sizesBytes, profile.bigBlockBytes];
  return sizes.reduce((sum, size) => sum + fsyncAppendBounds(size, { durationMs: profile.durationMs, operationsMax: profile.operationsMax, bytesMax: profile.workloadBytesMax }).durationMs + profile.durationMs + 2_000, 0);
}

/** The plan as a table: peer, workload, priority, estimate, run or why not. */
export function planRows(plan: BudgetPlan): Record<string, string | number>[] {
  return plan.decisions.map((decision) => ({ peer: decision.peer, workload: decision.label, priority: decision.priority, 'estimate s': Number((decision.estimateMs / 1000).toFixed(1)), plan: decision.run ? 'run' : `skip: ${decision.reason ?? ''}` }));
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
  const entries = plannedPeers(factories, specs, profile, running === undefined ? [] : [running.name]);
  const initialPlan = replan(entries, 0, 0, profile, budgetEndMs - performance.now());
  for (const [index, entry] of entries.entries()) {
    const before = progress.done;
    const outcome = await runPeer(entries, index, profile, progress, budgetEndMs);
    progress.skipTo(before + entry.ordered.length + 1);
    peers.push(outcome.status);
    results.push(...outcome.results);
  }
  const date = new Date().toISOString();
  const rated = withRatios(results, limits, profile);
  const goals = evaluateGoals(rated);
  const losses = lossTotals(results);
  const subtitle = `${profile.name} profile, ${date.slice(0, 10)}, Node ${process.version}, load average at start ${loadAverageAtStart[0]?.toFixed(1) ?? '?'}; bars scaled per workload; bench/results/*.json has every figure`;
  const svg = renderBarChart(chartInput({ results, peers, title: 'Kura blob benchmark: @azure/storage-blob against each peer', subtitle }));
  const report = { benchmark: 'blob', profile: profile.name, date, loadAverageAtStart, ...describeRun(tmpdir()), bounds: profile, budget: { budgetSeconds: profile.runBudgetMs / 1000, initialPlan: initialPlan.decisions, initialPlannedSeconds: initialPlan.plannedMs / 1000 }, peers, limits, goals, lossesAfterKill9: losses, results: rated, elapsedSeconds: (performance.now() - startedMs) / 1000 };
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
