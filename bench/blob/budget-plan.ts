// The blob run's time budget, planned per workload (issue 5: the full profile, every peer, under
// 30 minutes). Each workload's wall time is estimated before it starts from its own bounds (loop
// time, set-up, kill -9 restart and read-back, the blobs a listing must first create) and the
// peer's costs; the planner then reserves time for every peer's goal cells first and fills what
// is left in priority order. The runner plans again before every workload with the time that is
// really left and the estimates corrected by what the peer's earlier workloads took, and never
// starts one the plan leaves out: it is reported as skipped, with the reason, in the table and
// the JSON. Pure functions: durations in, plan out (test/unit/bench/budget-plan.test.ts).
import type { BlobProfile } from './profiles.ts';
import { isGoalSpec, loopMsFor, type WorkloadSpec } from './workloads.ts';

const MiB = 1024 * 1024;

/** One workload the planner may run: its peer, its label, its priority (0 first) and its estimated wall time. */
export interface PlanWorkload {
  readonly peer: string;
  readonly label: string;
  /** 0: a goal cell, reserved before anything else; then 1, 2, ... in the order the rest is filled. */
  readonly priority: number;
  readonly estimateMs: number;
  /** Left out whatever the budget (a policy, e.g. a listing no goal uses on this peer): the reason. */
  readonly excluded?: string;
}

/** A peer in run order: what starting it costs (charged once, with its first planned workload) and its workloads in run order. */
export interface PlanPeer {
  readonly name: string;
  readonly startMs: number;
  readonly workloads: readonly PlanWorkload[];
}

export interface PlanDecision extends PlanWorkload {
  readonly run: boolean;
  /** Why a workload is left out (absent when it runs). */
  readonly reason?: string;
}

export interface BudgetPlan {
  /** Every workload, in run order, with its decision. */
  readonly decisions: readonly PlanDecision[];
  /** Estimated wall time of what runs, peer starts included. */
  readonly plannedMs: number;
  readonly budgetMs: number;
}

/** Lower priority first; equal priorities in run order. */
function byPriorityThenOrder(a: { readonly priority: number; readonly order: number }, b: { readonly priority: number; readonly order: number }): number {
  return a.priority === b.priority ? a.order - b.order : a.priority - b.priority;
}

function seconds(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}

/**
 * Chooses the workloads that fit in `budgetMs`: every workload in priority order (ties in run
 * order), each taken when its estimate (plus its peer's start, if no workload of that peer was
 * taken yet) fits in what the ones taken before it left; a later, smaller one may still fit
 * after a larger one did not. Goal cells (priority 0) are so reserved before any other
 * workload of any peer. The decisions come back in run order.
 */
export function planBudget(peers: readonly PlanPeer[], budgetMs: number): BudgetPlan {
  const entries = peers.flatMap((peer, peerIndex) => peer.workloads.map((workload, index) => ({ workload, peer, priority: workload.priority, order: peerIndex * 1e6 + index })));
  const byPriority = [...entries].sort(byPriorityThenOrder);
  const charged = new Set<string>();
  const decided = new Map<number, PlanDecision>();
  let usedMs = 0;
  for (const { workload, peer, order } of byPriority) {
    if (workload.excluded !== undefined) {
      decided.set(order, { ...workload, run: false, reason: workload.excluded });
      continue;
    }
    const costMs = workload.estimateMs + (charged.has(peer.name) ? 0 : peer.startMs);
    if (usedMs + costMs <= budgetMs) {
      usedMs += costMs;
      charged.add(peer.name);
      decided.set(order, { ...workload, run: true });
    } else {
      const leftMs = Math.max(0, budgetMs - usedMs);
      decided.set(order, { ...workload, run: false, reason: `time budget: needs ~${seconds(costMs)}, ${seconds(leftMs)} left after ${workload.priority === 0 ? 'earlier goal cells' : 'goal cells and higher-priority work'}` });
    }
  }
  const decisions = entries.map(({ order }) => decided.get(order)).filter((decision) => decision !== undefined);
  return { decisions, plannedMs: usedMs, budgetMs };
}

/** What a peer's workloads cost besides their timed loops; priors per kind of peer, corrected as the run goes. */
export interface PeerCosts {
  /** Start and, at the end, stop. */
  readonly startMs: number;
  /** kill -9 and restart of a durable peer (0: no durability check). */
  readonly restartMs: number;
  readonly warmUpMs: number;
  /** Small Put Blobs a second (the listing's population and the read sets). */
  readonly smallPutsPerSecond: number;
  readonly uploadMiBps: number;
  readonly downloadMiBps: number;
  /** Blobs listed a second (the SDK's XML parsing bounds it near 3,000-3,500 here). */
  readonly listBlobsPerSecond: number;
}

/**
 * Priors from the quiet full run of 2026-11-22 17-36-56 (load 1.4-3.5): restartMs from its
 * durability rows, rates from its put 4 KiB ×64, 256 MiB and listing rows; a dev cluster's start
 * and restart from bench/blob/README.md (15-24 s at load 9-16).
 */
export function priorCosts(peer: string, durable: boolean): PeerCosts {
  const base = { startMs: 3_000, restartMs: durable ? 3_000 : 0, warmUpMs: 400, smallPutsPerSecond: 1_000, uploadMiBps: 200, downloadMiBps: 280, listBlobsPerSecond: 3_000 };
  if (peer.startsWith('kura-cluster')) return { ...base, startMs: 20_000, restartMs: 20_000, warmUpMs: 1_500, smallPutsPerSecond: 400, uploadMiBps: 60, downloadMiBps: 100 };
  if (peer === 'azurite-disk') return { ...base, startMs: 2_000, restartMs: 2_500, smallPutsPerSecond: 400, uploadMiBps: 45, downloadMiBps: 170, listBlobsPerSecond: 2_500 };
  if (peer === 'azurite-memory') return { ...base, startMs: 2_000, smallPutsPerSecond: 500, uploadMiBps: 120, downloadMiBps: 250, listBlobsPerSecond: 2_500 };
  if (peer === 'null-server') return { ...base, startMs: 1_000, smallPutsPerSecond: 4_000, uploadMiBps: 300, downloadMiBps: 200, listBlobsPerSecond: 3_500 };
  return base;
}

/** Share of a write loop's time that reading its blobs back after the restart takes (17-36-56: 1.2-2.5 s after a 2.5 s loop). */
const readBackShare = 0.8;

/** Estimated wall time of one workload on a peer: warm-up, set-up, the bounded loops, and for a durable peer the kill -9, restart and check. */
export function estimateWorkloadMs(spec: WorkloadSpec, profile: BlobProfile, costs: PeerCosts, context: { readonly afterRestart?: boolean } = {}): number {
  const durable = costs.restartMs > 0;
  const check = (writeMs: number): number => (durable ? costs.restartMs + writeMs * readBackShare : 0);
  switch (spec.kind) {
    case 'put': {
      const loopMs = loopMsFor(spec, profile);
      return costs.warmUpMs + loopMs + check(loopMs);
    }
    case 'get':
      // A Get that follows a write on a durable peer first warms the restarted server up (getWarmUpAfterRestartMs).
      return costs.warmUpMs + (context.afterRestart === true ? profile.getWarmUpAfterRestartMs : 0) + (profile.getSetSize / costs.smallPutsPerSecond) * 1000 + loopMsFor(spec, profile);
    case 'big': {
      const mib = profile.bigBlobBytes / MiB;
      const uploadMs = (profile.bigRepeats * mib * 1000) / costs.uploadMiBps;
      const readBackMs = durable ? costs.restartMs + (profile.bigRepeats * mib * 1000) / costs.downloadMiBps : 0;
      return costs.warmUpMs + uploadMs + readBackMs + (profile.bigDownloadRepeats * mib * 1000) / costs.downloadMiBps;
    }
    case 'list': {
      const populateMs = Math.min(profile.listPopulateMs, (profile.listBlobCount / costs.smallPutsPerSecond) * 1000);
      const listOnceMs = (profile.listBlobCount / costs.listBlobsPerSecond) * 1000;
      return costs.warmUpMs + populateMs + (durable ? costs.restartMs + listOnceMs : 0) + profile.listRepeats * listOnceMs;
    }
    case 'mixed': {
      const setUpMs = (profile.mixedSetSize / costs.smallPutsPerSecond) * 1000;
      return costs.warmUpMs + setUpMs + profile.mixedDurationMs + check(profile.mixedDurationMs * (1 - profile.mixedReadFraction));
    }
  }
}

/** The peers whose every figure a goal or ratio needs: Kura's embedded default, Azurite on disk, the null server (every goal's ceiling). */
export const referencePeers: ReadonlySet<string> = new Set(['kura-1disk', 'azurite-disk', 'null-server']);

/**
 * A workload's priority: 0 the goal cells (Put 64 KiB ×16, Get 64 KiB ×16, Put 4 KiB ×64, the
 * 256 MiB upload and download, SDK and raw) of every peer, and a dev cluster's cells (issue 6's);
 * 1 the rest of the matrix and the mixed run on the reference peers; 2 the listing on Kura's
 * embedded default and the null server; 3 the matrix and mixed run of the other peers; 4 Azurite
 * on disk's listing (its 100,000 Put Blobs alone take ~4 min).
 */
export function workloadPriority(peer: string, spec: WorkloadSpec): number {
  if (isGoalSpec(spec) || peer.startsWith('kura-cluster')) return 0;
  const reference = referencePeers.has(peer);
  if (spec.kind === 'list') return peer === 'azurite-disk' ? 4 : 2;
  return reference ? 1 : 3;
}

/** Peers that list 100,000 blobs in the full profile: no goal uses a listing; these give Kura's figure, its comparison and the client's ceiling. */
export function listingExcluded(peer: string, profile: BlobProfile): string | undefined {
  if (profile.listOnlyOn === undefined || profile.listOnlyOn.includes(peer)) return undefined;
  return `not listed by policy: no goal uses a listing; ${profile.listOnlyOn.join(', ')} list ${profile.listBlobCount} blobs`;
}

/** The planner's view of one peer's workloads (run order: goal cells first, then the rest by priority). */
export function planWorkloads(peer: string, specs: readonly WorkloadSpec[], profile: BlobProfile, costs: PeerCosts, label: (spec: WorkloadSpec) => string): { spec: WorkloadSpec; workload: PlanWorkload; afterRestart: boolean }[] {
  const ordered = specs
    .map((spec, order) => ({ spec, order, priority: workloadPriority(peer, spec) }))
    .sort(byPriorityThenOrder);
  return ordered.map(({ spec, priority }, position) => {
    const previous = ordered[position - 1]?.spec;
    // A durable peer's every workload but a Get ends with a kill -9 restart.
    const afterRestart = costs.restartMs > 0 && previous !== undefined && previous.kind !== 'get';
    const excluded = spec.kind === 'list' ? listingExcluded(peer, profile) : undefined;
    const workload: PlanWorkload = { peer, label: label(spec), priority, estimateMs: estimateWorkloadMs(spec, profile, costs, { afterRestart }), ...(excluded === undefined ? {} : { excluded }) };
    return { spec, workload, afterRestart };
  });
}

/**
 * The factor by which a peer's actual workload times exceeded their estimates so far (1 with
 * none yet), clamped to [0.5, 3]: later estimates of that peer are multiplied by it.
 */
export function correctionFactor(actualMs: number, estimatedMs: number): number {
  if (!(estimatedMs > 0) || !(actualMs > 0)) return 1;
  return Math.min(3, Math.max(0.5, actualMs / estimatedMs));
}
