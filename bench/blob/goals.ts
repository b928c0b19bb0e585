// Issue 5's goals, judged from one run's rated results: each goal for each Kura peer it applies
// to and each client (the SDK, and raw undici where the SDK's own cost hides the server's), as
// measured ratio against target, met or not. Also the kill -9 loss totals per durable peer, which
// the README states beside the speed. Pure functions over saved results, so the verdict can be
// recomputed from a JSON file alone.
//
// Each verdict also carries the goal's ceiling on this machine: the same measure scored by the null
// server (it stores nothing and answers at once) with the same client in the same run. The client
// and the server share the machine's cores, so when even the null server misses a target, no
// server can meet it here with that client; the table says so instead of leaving a bare "NOT met".
//
// When the run has goal rounds (goal-rounds.ts) for a verdict's peer and workload, the verdict's
// ratio and ceiling are the medians of the rounds' ratios (each dividing cells measured one right
// after the other), with their min-max; its latency conditions are read from the round with the
// median p99; its "0 lost" still from the peer's own row, whose write loop was checked by kill -9.
// Without rounds (older result files, kura-3disk, a dev cluster) a verdict reads the single cells.
import { lostLabel, nullServerPeerName, azuriteDiskPeerName, primaryRate, ratio as rateRatio, type RatioSet } from './ratios.ts';
import type { WorkloadResult } from './results.ts';
import { cellsOf, spread, spreadText, type RatedRoundCell, type Spread } from './goal-rounds.ts';

export type RatedResult = WorkloadResult & { readonly ratios: RatioSet };

export interface GoalCondition {
  readonly text: string;
  readonly met: boolean;
  /** A condition the client shares (latency), which the null server is held to as well; not durability. */
  readonly clientBound?: boolean;
}

/** The null server's score on a goal: the highest any server reaches with this client on this machine. */
export interface GoalCeiling {
  readonly ratio: number | null;
  readonly conditions: readonly GoalCondition[];
}

export interface GoalVerdict {
  readonly goal: string;
  readonly peer: string;
  readonly client: 'sdk' | 'raw';
  readonly workload: string;
  /** What the target is held against, e.g. "kura ÷ azurite-disk ops/s". */
  readonly measure: string;
  readonly ratio: number | null;
  readonly target: number;
  /** Extra conditions of the goal and their outcome, e.g. "p99 12.3 ms ≤ 15" or "lost 0/224". */
  readonly conditions: readonly GoalCondition[];
  /** null when a figure is missing (a peer did not run). */
  readonly met: boolean | null;
  /** null when the run has no null-server row for the workload, or the goal compares Kura peers with each other. */
  readonly ceiling: GoalCeiling | null;
  /** false when even the null server misses the target or a client-bound condition: out of reach here. */
  readonly reachable: boolean | null;
  /** Present when the verdict comes from goal rounds: the rounds' ratios and ceilings, median (= ratio) and min-max. */
  readonly rounds?: GoalRounds;
}

export interface GoalRounds {
  readonly ratios: readonly (number | null)[];
  readonly ratio: Spread | null;
  readonly ceilingRatios: readonly (number | null)[];
  readonly ceiling: Spread | null;
  /** The 1-minute load average at the start of each round (its first cell of this workload). */
  readonly loadAverages1m: readonly number[];
}

interface GoalDefinition {
  readonly goal: string;
  readonly peers: readonly string[];
  readonly select: (result: RatedResult) => boolean;
  readonly measure: string;
  readonly ratioOf: (ratios: RatioSet) => number | null;
  readonly target: number;
  readonly conditions: (result: RatedResult) => GoalCondition[];
  /** The same measure with the null server in Kura's place; absent for goals between Kura peers. */
  readonly ceilingOf?: (nullServer: RatedResult, sameWorkload: (peer: string) => RatedResult | undefined) => number | null;
}

const KiB = 1024;
const kuraPeers = ['kura-1disk', 'kura-3disk'] as const;
const clusterPeers = ['kura-cluster-1fe', 'kura-cluster-2fe', 'kura-cluster-2fe-direct'] as const;

function cell(kind: 'put' | 'get', sizeBytes: number, concurrency: number): (result: RatedResult) => boolean {
  return (result) => result.kind === kind && result.sizeBytes === sizeBytes && result.concurrency === concurrency;
}

/** "lost 0/224": met only when the durability check ran and found nothing missing or different. */
function noLoss(result: RatedResult): GoalCondition {
  const durability = result.durability;
  const met = durability?.kind === 'checked' && durability.missing + durability.different + durability.unreadable === 0;
  return { text: `lost after kill -9 ${lostLabel(result) === '' ? 'not checked' : lostLabel(result)}`, met };
}

function p99AtMost(limitMs: number): (result: RatedResult) => GoalCondition {
  return (result) => {
    const p99 = result.throughput.latency.p99Ms;
    return { text: `p99 ${p99.toFixed(1)} ms ≤ ${limitMs} ms`, met: p99 <= limitMs, clientBound: true };
  };
}

/** The null server's rate ÷ Azurite's on disk, same workload and client. */
function nullServerToAzurite(nullServer: RatedResult, sameWorkload: (peer: string) => RatedResult | undefined): number | null {
  const azurite = sameWorkload(azuriteDiskPeerName);
  return azurite === undefined ? null : rateRatio(primaryRate(nullServer), primaryRate(azurite));
}

export const goalDefinitions: readonly GoalDefinition[] = [
  {
    goal: 'Put Blob 64 KiB ×16 ≥ 4× Azurite, 0 lost', peers: kuraPeers, select: cell('put', 64 * KiB, 16),
    measure: 'ops/s ÷ azurite-disk', ratioOf: (ratios) => ratios.kuraToAzurite, target: 4, conditions: (result) => [noLoss(result)],
    ceilingOf: nullServerToAzurite,
  },
  {
    goal: 'Get Blob 64 KiB ×16 ≥ 80% of null server, p99 ≤ 15 ms', peers: kuraPeers, select: cell('get', 64 * KiB, 16),
    measure: 'ops/s ÷ null-server', ratioOf: (ratios) => ratios.toNullServer, target: 0.8, conditions: (result) => [p99AtMost(15)(result)],
    ceilingOf: () => 1,
  },
  {
    goal: 'Put Blob 4 KiB ×64 ≥ 3× Azurite (1 disk)', peers: ['kura-1disk'], select: cell('put', 4 * KiB, 64),
    measure: 'ops/s ÷ azurite-disk', ratioOf: (ratios) => ratios.kuraToAzurite, target: 3, conditions: () => [],
    ceilingOf: nullServerToAzurite,
  },
  {
    goal: 'large upload ≥ 80% of the durable-append limit', peers: kuraPeers, select: (result) => result.kind === 'big-upload',
    measure: "MiB/s ÷ durable 8 MiB append (faster of fdatasync and O_DIRECT)", ratioOf: (ratios) => ratios.toMachineLimit, target: 0.8, conditions: (result) => [noLoss(result)],
    ceilingOf: (nullServer) => nullServer.ratios.toMachineLimit,
  },
  {
    goal: 'large download ≥ 70% of null server', peers: kuraPeers, select: (result) => result.kind === 'big-download',
    measure: 'MiB/s ÷ null-server', ratioOf: (ratios) => ratios.toNullServer, target: 0.7, conditions: () => [],
    ceilingOf: () => 1,
  },
  // The dev cluster (issue 6's performance goals, bench/README.md): 3 replicas over TCP between
  // processes must keep at least half the embedded default's Put rate, and a second front end
  // must carry at least half a front end's worth of extra Gets (1.5× with 2; linear would be 2×).
  {
    goal: 'dev cluster Put Blob 64 KiB ×16 ≥ 50% of kura serve (3 disks), 0 lost', peers: clusterPeers, select: cell('put', 64 * KiB, 16),
    measure: 'ops/s ÷ kura-3disk', ratioOf: (ratios) => ratios.clusterToEmbedded, target: 0.5, conditions: (result) => [noLoss(result)],
  },
  {
    goal: 'dev cluster Get Blob 64 KiB ×16 scales with front ends: 2 ≥ 1.5× 1', peers: ['kura-cluster-2fe'], select: cell('get', 64 * KiB, 16),
    measure: 'ops/s ÷ kura-cluster-1fe', ratioOf: (ratios) => ratios.toOneFrontend, target: 1.5, conditions: () => [],
  },
];

function passes(ratio: number | null, target: number, conditions: readonly GoalCondition[]): boolean | null {
  return ratio === null ? null : ratio >= target && conditions.every((condition) => condition.met);
}

function ceiling(definition: GoalDefinition, result: RatedResult, results: readonly RatedResult[]): GoalCeiling | null {
  const sameWorkload = (peer: string): RatedResult | undefined => results.find((other) => other.peer === peer && other.workload === result.workload);
  const nullServer = sameWorkload(nullServerPeerName);
  if (definition.ceilingOf === undefined || nullServer === undefined) return null;
  const conditions = definition.conditions(nullServer).filter((condition) => condition.clientBound === true);
  return { ratio: definition.ceilingOf(nullServer, sameWorkload), conditions };
}

function verdict(definition: GoalDefinition, result: RatedResult, results: readonly RatedResult[], rounds: readonly RatedRoundCell[]): GoalVerdict {
  const own = cellsOf(rounds, result.peer, result.workload);
  if (own.length > 0) return roundsVerdict(definition, result, own, rounds);
  const ratio = definition.ratioOf(result.ratios);
  const conditions = definition.conditions(result);
  const reach = ceiling(definition, result, results);
  return {
    goal: definition.goal, peer: result.peer, client: result.client, workload: result.workload, measure: definition.measure,
    ratio, target: definition.target, conditions,
    met: passes(ratio, definition.target, conditions),
    ceiling: reach,
    reachable: reach === null ? null : passes(reach.ratio, definition.target, reach.conditions),
  };
}

/** The cell with the median p99 (the lower middle one of an even count): its latency conditions stand for the rounds'. */
function latencyConditions(definition: GoalDefinition, cells: readonly RatedResult[]): GoalCondition[] {
  const sorted = [...cells].sort((a, b) => a.throughput.latency.p99Ms - b.throughput.latency.p99Ms);
  const cell = sorted[Math.floor((sorted.length - 1) / 2)];
  return cell === undefined ? [] : definition.conditions(cell).filter((condition) => condition.clientBound === true);
}

function spreadOf(values: readonly (number | null)[]): Spread | null {
  return spread(values.filter((value) => value !== null));
}

/** The null server's score in one round: the goal's ceiling measure over that round's cells. */
function ceilingInRound(definition: GoalDefinition, inRound: readonly RatedRoundCell[]): number | null {
  const nullServer = inRound.find((cell) => cell.peer === nullServerPeerName);
  if (nullServer === undefined || definition.ceilingOf === undefined) return null;
  return definition.ceilingOf(nullServer, (peer) => inRound.find((cell) => cell.peer === peer));
}

/** The 1-minute load average when a round began (its first cell). */
function roundLoad(inRound: readonly RatedRoundCell[]): number {
  const first = [...inRound].sort((a, b) => a.position - b.position)[0];
  return first?.loadAverage1m?.atStart ?? Number.NaN;
}

/**
 * A verdict from goal rounds: the median of the rounds' ratios, the ceiling the median of each
 * round's null-server score; "0 lost" from the peer's own (kill -9 checked) row, latency from the
 * rounds.
 */
function roundsVerdict(definition: GoalDefinition, result: RatedResult, own: readonly RatedRoundCell[], rounds: readonly RatedRoundCell[]): GoalVerdict {
  const ratios = own.map((cell) => definition.ratioOf(cell.ratios));
  const ratio = spreadOf(ratios);
  const conditions = [...definition.conditions(result).filter((condition) => condition.clientBound !== true), ...latencyConditions(definition, own)];
  const roundsCells = own.map((cell) => rounds.filter((other) => other.round === cell.round && other.workload === cell.workload));
  const nullCells = roundsCells.flatMap((inRound) => inRound.filter((other) => other.peer === nullServerPeerName));
  const ceilingRatios = roundsCells.map((inRound) => ceilingInRound(definition, inRound));
  const ceilingSpread = spreadOf(ceilingRatios);
  const reach = definition.ceilingOf === undefined || nullCells.length === 0 ? null : { ratio: ceilingSpread?.median ?? null, conditions: latencyConditions(definition, nullCells) };
  const median = ratio?.median ?? null;
  return {
    goal: definition.goal, peer: result.peer, client: result.client, workload: result.workload, measure: definition.measure,
    ratio: median, target: definition.target, conditions,
    met: passes(median, definition.target, conditions),
    ceiling: reach,
    reachable: reach === null ? null : passes(reach.ratio, definition.target, reach.conditions),
    rounds: { ratios, ratio, ceilingRatios, ceiling: ceilingSpread, loadAverages1m: roundsCells.map(roundLoad) },
  };
}

/**
 * Every goal × Kura peer × client that the run has a row for; from the goal rounds' cells where
 * the run has them for that peer and workload (rated per round: goal-rounds.ts rateRoundCells).
 */
export function evaluateGoals(results: readonly RatedResult[], rounds: readonly RatedRoundCell[] = []): GoalVerdict[] {
  const verdicts: GoalVerdict[] = [];
  for (const definition of goalDefinitions) {
    for (const peer of definition.peers) {
      for (const result of results) if (result.peer === peer && definition.select(result)) verdicts.push(verdict(definition, result, results, rounds));
    }
  }
  return verdicts;
}

export interface LossTotal {
  readonly peer: string;
  readonly acknowledged: number;
  /** Missing or different after kill -9 and restart. */
  readonly lost: number;
  readonly unreadable: number;
  /** Write workloads checked, and how many of them lost at least one acknowledged write. */
  readonly workloadsChecked: number;
  readonly workloadsWithLoss: number;
}

/** Per durable peer: acknowledged writes lost across every write workload's kill -9 check. */
export function lossTotals(results: readonly WorkloadResult[]): LossTotal[] {
  const totals = new Map<string, { acknowledged: number; lost: number; unreadable: number; workloadsChecked: number; workloadsWithLoss: number }>();
  for (const result of results) {
    const durability = result.durability;
    if (durability?.kind !== 'checked') continue;
    const total = totals.get(result.peer) ?? { acknowledged: 0, lost: 0, unreadable: 0, workloadsChecked: 0, workloadsWithLoss: 0 };
    const lost = durability.missing + durability.different;
    total.acknowledged += durability.acknowledged;
    total.lost += lost;
    total.unreadable += durability.unreadable;
    total.workloadsChecked += 1;
    total.workloadsWithLoss += lost > 0 ? 1 : 0;
    totals.set(result.peer, total);
  }
  return [...totals].map(([peer, total]) => ({ peer, ...total }));
}

function conditionsText(conditions: readonly GoalCondition[]): string {
  return conditions.map((condition) => `${condition.text}${condition.met ? '' : ' ✗'}`).join('; ');
}

function ceilingText(reach: GoalCeiling | null, rounds: Spread | null): string {
  if (reach === null) return '';
  const figure = rounds !== null ? spreadText(rounds) : reach.ratio === null ? 'no figure' : reach.ratio.toFixed(2);
  return reach.conditions.length === 0 ? figure : `${figure}; ${conditionsText(reach.conditions)}`;
}

function metText(entry: GoalVerdict): string {
  if (entry.met === null) return '?';
  if (entry.met) return 'met';
  return entry.reachable === false ? 'NOT met (out of reach here: the null server misses it too)' : 'NOT met';
}

function measuredText(entry: GoalVerdict): string {
  if (entry.ratio === null) return 'no figure';
  const rounds = entry.rounds?.ratio ?? null;
  return `${rounds === null ? entry.ratio.toFixed(2) : spreadText(rounds)} ${entry.measure}`;
}

export function goalRows(verdicts: readonly GoalVerdict[]): Record<string, string>[] {
  return verdicts.map((entry) => ({
    goal: entry.goal,
    peer: entry.peer,
    client: entry.client,
    measured: measuredText(entry),
    target: `≥ ${entry.target}`,
    conditions: conditionsText(entry.conditions),
    'null server (ceiling)': ceilingText(entry.ceiling, entry.rounds?.ceiling ?? null),
    met: metText(entry),
  }));
}
