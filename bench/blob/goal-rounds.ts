// Goal rounds: the goals' verdicts from cells measured side by side in time. The per-peer run
// measures each peer's cells minutes apart, and this VM's CPU and disk rates drift over minutes
// (full run H: kura-1disk's Put 4 KiB ×64 made 665 ops/s at 1.34 ms of CPU per Put, kura-3disk,
// the same code minutes later, 1,198 at 0.90; the null server measured between them 914), so a
// ratio of two such cells could swing 1.5×. Here the goal peers run at the same time, idle but
// the one measured, and each goal workload runs R rounds; a round measures the peers its goal
// needs one right after the other, in an order rotated every round (A B C, C A B, B C A, …), so
// neither peer always goes first. A round's ratio divides cells adjacent in time; the verdict is
// the median of the rounds' ratios, their min-max beside it (goals.ts). No kill -9 here: the
// durability check stays in each peer's own run, whose row the verdict's "0 lost" reads.
// Pure functions (test/unit/bench/goal-rounds.test.ts); run-goal-rounds.ts runs them.
import { priorCosts, estimateWorkloadMs, type PlanPeer, type PeerCosts } from './budget-plan.ts';
import type { MachineLimits } from './limits.ts';
import type { BlobProfile } from './profiles.ts';
import { azuriteDiskPeerName, computeRatios, nullServerPeerName, type RatioSet } from './ratios.ts';
import type { WorkloadResult } from './results.ts';
import { formatRate } from './svg-chart.ts';
import { isGoalSpec, specLabel, type WorkloadSpec } from './workloads.ts';

/** The Kura peer the rounds judge: the embedded default on 1 disk (kura-3disk keeps its single cells). */
export const roundsKuraPeerName = 'kura-1disk';
/** Every peer the rounds may start, in their base order. */
export const goalRoundPeerNames: readonly string[] = [roundsKuraPeerName, azuriteDiskPeerName, nullServerPeerName];
/** The pause after the warm-ups (deleting their containers keeps a server busy for ~1 s), then the idle probe's length. */
export const settleMs = 1_500;
export const idleProbeMs = 1_000;
/** The planner's and the tables' name for the rounds phase. */
export const goalRoundsLabel = 'goal rounds';

/** One goal workload of the rounds and the peers its ratio and ceiling need, in base order. */
export interface RoundWorkload {
  readonly spec: WorkloadSpec;
  readonly peers: readonly string[];
}

/**
 * The peers a goal workload needs: a Put is held to Azurite (Kura ÷ Azurite, ceiling null ÷
 * Azurite); a Get and the large blob to the null server or the machine's limit (Azurite is in no
 * such ratio, so it is not measured).
 */
export function roundPeersFor(spec: WorkloadSpec, available: readonly string[]): string[] {
  const needed = spec.kind === 'put' ? goalRoundPeerNames : [roundsKuraPeerName, nullServerPeerName];
  return needed.filter((name) => available.includes(name));
}

/** The rounds' workloads over the peers that are available: none without Kura, none with only one peer. */
export function roundWorkloads(specs: readonly WorkloadSpec[], available: readonly string[]): RoundWorkload[] {
  if (!available.includes(roundsKuraPeerName)) return [];
  return specs.filter(isGoalSpec).map((spec) => ({ spec, peers: roundPeersFor(spec, available) })).filter((workload) => workload.peers.length >= 2);
}

/** Round r's order: the peers rotated right by r (A B C, C A B, B C A, A B C, …). */
export function roundOrder<T>(peers: readonly T[], round: number): T[] {
  const cut = peers.length - (round % Math.max(1, peers.length));
  return [...peers.slice(cut), ...peers.slice(0, cut)];
}

/** One cell of a round: a peer's figures for a goal workload, where it stood in the round, and the other peers' CPU meanwhile. */
export interface RoundCell extends WorkloadResult {
  readonly round: number;
  /** 0: measured first in its round. */
  readonly position: number;
  /** CPU milliseconds a second that each other started peer spent while this cell ran (an idle server: ~0). */
  readonly othersCpuMsPerSecond: Readonly<Record<string, number>>;
}

export type RatedRoundCell = RoundCell & { readonly ratios: RatioSet };

/** Each cell's ratios against the cells of its own round only (computeRatios with the round as the run). */
export function rateRoundCells(cells: readonly RoundCell[], limits: MachineLimits, blockBytes: number): RatedRoundCell[] {
  return cells.map((cell) => ({ ...cell, ratios: computeRatios(cell, cells.filter((other) => other.round === cell.round), limits, blockBytes) }));
}

export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly count: number;
}

/** Median (the mean of the middle two for an even count), min and max; null for no values. */
export function spread(values: readonly number[]): Spread | null {
  const sorted = values.filter((value) => Number.isFinite(value)).sort((a, b) => a - b);
  const count = sorted.length;
  if (count === 0) return null;
  const upper = sorted[Math.floor(count / 2)] ?? Number.NaN;
  const lower = sorted[Math.floor((count - 1) / 2)] ?? Number.NaN;
  return { median: (lower + upper) / 2, min: sorted[0] ?? Number.NaN, max: sorted[count - 1] ?? Number.NaN, count };
}

/** "1.84 (1.60-2.10, 5 rounds)". */
export function spreadText(value: Spread): string {
  return `${value.median.toFixed(2)} (${value.min.toFixed(2)}-${value.max.toFixed(2)}, ${value.count} round${value.count === 1 ? '' : 's'})`;
}

/** The cells of one peer and workload, in round order. */
export function cellsOf<T extends RoundCell>(cells: readonly T[], peer: string, workload: string): T[] {
  return cells.filter((cell) => cell.peer === peer && cell.workload === workload).sort((a, b) => a.round - b.round);
}

function rateText(cell: RoundCell): string {
  const mib = cell.kind === 'big-upload' || cell.kind === 'big-download';
  return mib ? `${cell.throughput.mibPerSecond.toFixed(0)} MiB/s` : `${formatRate(cell.throughput.opsPerSecond)} ops/s`;
}

/** One row per workload and round: the order, the load average at its start, each peer's rate and CPU per operation. */
export function roundTableRows(cells: readonly RoundCell[]): Record<string, string | number>[] {
  const keys = [...new Set(cells.map((cell) => `${cell.workload}\u0000${cell.round}`))];
  return keys.map((key) => {
    const inRound = cells.filter((cell) => `${cell.workload}\u0000${cell.round}` === key).sort((a, b) => a.position - b.position);
    const first = inRound[0];
    const row: Record<string, string | number> = { workload: first?.workload ?? '', round: (first?.round ?? 0) + 1, order: inRound.map((cell) => cell.peer).join(' → '), 'load 1m': first?.loadAverage1m?.atStart.toFixed(1) ?? '' };
    for (const cell of inRound) row[cell.peer] = `${rateText(cell)}, ${(cell.server.cpuSecondsPerOperation * 1000).toFixed(2)} ms CPU/op`;
    return row;
  });
}

/**
 * Per peer: its CPU (ms a second) in the idle probe before the rounds (`idleProbe`), and while
 * another peer was measured, median and max over those cells.
 */
export function idleCpuRows(cells: readonly RoundCell[], idleProbe: Readonly<Record<string, number>> = {}): Record<string, string | number>[] {
  const byPeer = new Map<string, number[]>(Object.keys(idleProbe).map((peer) => [peer, []]));
  for (const cell of cells) for (const [peer, msPerSecond] of Object.entries(cell.othersCpuMsPerSecond)) byPeer.set(peer, [...(byPeer.get(peer) ?? []), msPerSecond]);
  return [...byPeer].map(([peer, values]) => {
    const figures = spread(values);
    return { 'idle peer': peer, 'CPU ms/s idle before the rounds': idleProbe[peer]?.toFixed(1) ?? '', 'while another peer ran: median': figures?.median.toFixed(1) ?? '', max: figures?.max.toFixed(1) ?? '', cells: values.length };
  });
}

/**
 * What a round cell costs beyond its loop and set-up: its container's creation and the client's
 * (the first two quick runs of 2026-11-23, load 10-14: Get cells 7.3-7.8 s a workload against
 * 6.2 estimated without it, Put cells 9.1-9.9 against 9.0).
 */
export const roundCellOverheadMs = 150;

/** A round cell's wall time: its loop and set-up, without warm-up or kill -9 check (the peers stay up). */
export function roundCellEstimateMs(spec: WorkloadSpec, profile: BlobProfile, costs: PeerCosts): number {
  return roundCellOverheadMs + estimateWorkloadMs(spec, profile, { ...costs, restartMs: 0, warmUpMs: 0 });
}

/**
 * The rounds as the budget planner sees them: one priority-0 workload per goal workload (its
 * rounds × its peers' cells), starting every peer and its warm-up charged once. `fromWorkload`
 * leaves out what already ran; `started`: the peers are up.
 */
export function roundsPlanPeer(workloads: readonly RoundWorkload[], profile: BlobProfile, options: { readonly costsOf?: (peer: string) => PeerCosts; readonly fromWorkload?: number; readonly started?: boolean; readonly factor?: number } = {}): PlanPeer {
  const costsOf = options.costsOf ?? ((peer: string) => priorCosts(peer, false));
  const factor = options.factor ?? 1;
  const peers = [...new Set(workloads.flatMap((workload) => workload.peers))];
  const startMs = options.started === true ? 0 : settleMs + idleProbeMs + peers.reduce((sum, peer) => sum + costsOf(peer).startMs + costsOf(peer).warmUpMs, 0);
  return {
    name: goalRoundsLabel,
    startMs,
    workloads: workloads.slice(options.fromWorkload ?? 0).map((workload) => ({
      peer: goalRoundsLabel,
      label: roundsWorkloadLabel(workload, profile),
      priority: 0,
      estimateMs: factor * profile.goalRounds * workload.peers.reduce((sum, peer) => sum + roundCellEstimateMs(workload.spec, profile, costsOf(peer)), 0),
    })),
  };
}

/** "put 64 KiB ×16 ×3 rounds: kura-1disk, azurite-disk, null-server". */
export function roundsWorkloadLabel(workload: RoundWorkload, profile: BlobProfile): string {
  return `${specLabel(workload.spec, profile)} ×${profile.goalRounds} rounds: ${workload.peers.join(', ')}`;
}
