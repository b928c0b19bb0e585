// The partition manager's maintenance decision (docs/partition-protocol.md: "Splits", "Load",
// "Moves", "Merges"), pure: from the map and what each live server reported, the one action of
// this tick, in order of urgency:
//
//   1. re-epoch a partition retired at its epoch (a split, merge or move whose map txn never came)
//   2. drop the extents of a data stream the map marked releasing (one per tick)
//   3. split a partition past splitBytes                                  (reason 'size')
//   4. split a hot partition (≥ 2 live servers, measured over a full window) (reason 'load')
//   5. forget inherited data streams every partition listing them proved free (docs/partition-gc.md)
//   6. merge two small, cold neighbours (or first move one next to the other)
//   7. move the busiest movable partition from the busiest server to the least busy (rate-bounded)
//
// Invariants: only partitions whose owner reported them at the map's owner epoch are considered
// (a report about another epoch is stale); one action per tick, so each decision is made on a map
// the next txn compares; a merge never exceeds inheritedDataMax streams; a balancing move narrows
// the gap between the two servers (so moves converge: no partition moves back and forth) and never moves a cold partition (it would balance nothing and
// could undo a merge's co-location).
// Fault model: none (pure); reports may be missing (a server that did not answer is left out).
import type { LiveServer, PartitionEntry, PartitionMap } from './partition-map.ts';
import type { PartitionStatus } from './partition-rpc.ts';

export interface MaintenancePolicy {
  readonly splitBytes: number;
  readonly mergeBytes: number;
  readonly coldRequestsPerSecond: number;
  readonly mergeServedMsMin: number;
  readonly hotRequestsPerSecond: number;
  readonly loadWindowMs: number;
  readonly balanceRatio: number;
  readonly balanceRequestsPerSecondMin: number;
  /** Inherited data streams one map entry may list (the map schema's bound). */
  readonly inheritedDataMax: number;
}

/** A partition as its owner reported it, at the map's owner epoch. */
export interface Reported {
  readonly entry: PartitionEntry;
  readonly server: LiveServer;
  readonly status: PartitionStatus;
}

export type MaintenanceAction =
  | { readonly kind: 'reEpoch'; readonly entry: PartitionEntry; readonly server: LiveServer }
  | { readonly kind: 'split'; readonly entry: PartitionEntry; readonly server: LiveServer; readonly reason: 'size' | 'load' }
  | { readonly kind: 'merge'; readonly left: PartitionEntry; readonly right: PartitionEntry; readonly server: LiveServer }
  | { readonly kind: 'move'; readonly entry: PartitionEntry; readonly from: LiveServer; readonly to: LiveServer; readonly reason: 'merge' | 'balance' }
  | { readonly kind: 'forgetData'; readonly streamIds: readonly number[] }
  | { readonly kind: 'releaseData'; readonly streamId: number; readonly ownerEpoch: number };

export interface MaintenanceInput {
  readonly map: PartitionMap;
  readonly servers: ReadonlyMap<string, LiveServer>;
  /** Reports by partition id (only those at the map's epoch, from the map's owner). */
  readonly reports: ReadonlyMap<number, Reported>;
  /** Servers that answered server.status (balancing only compares these). */
  readonly answered: ReadonlySet<string>;
  readonly policy: MaintenancePolicy;
  /** Partitions whose split was refused lately (one group): not asked again yet. */
  readonly splitRefused: ReadonlySet<number>;
  /** A balancing move is allowed this tick (the rate bound). */
  readonly moveAllowed: boolean;
}

export function planMaintenance(input: MaintenanceInput): MaintenanceAction | null {
  const reports = [...input.reports.values()];
  const retired = reports.find((report) => report.status.state === 'split' || report.status.state === 'merged' || report.status.state === 'released');
  if (retired !== undefined) return { kind: 'reEpoch', entry: retired.entry, server: retired.server };
  const releasing = input.map.releasingData?.[0];
  if (releasing !== undefined) return { kind: 'releaseData', streamId: releasing.streamId, ownerEpoch: releasing.ownerEpoch };
  const serving = reports.filter((report) => report.status.state === 'serving' && !input.splitRefused.has(report.entry.partitionId));
  const large = serving.find((report) => report.status.approximateBytes > input.policy.splitBytes && report.status.lastSequence > 0);
  if (large !== undefined) return { kind: 'split', entry: large.entry, server: large.server, reason: 'size' };
  if (input.servers.size >= 2) {
    const hot = serving
      .filter((report) => report.status.requestsPerSecond > input.policy.hotRequestsPerSecond && report.status.servedMs >= input.policy.loadWindowMs)
      .sort((a, b) => b.status.requestsPerSecond - a.status.requestsPerSecond)[0];
    if (hot !== undefined) return { kind: 'split', entry: hot.entry, server: hot.server, reason: 'load' };
  }
  const free = freeInheritedStreams(input);
  if (free.length > 0) return { kind: 'forgetData', streamIds: free };
  return planMerge(input) ?? (input.moveAllowed ? planBalance(input) : null);
}

/**
 * Inherited data streams that every partition listing them reported free (no live row references
 * one, writer fenced), and that are no partition's own stream.
 */
function freeInheritedStreams(input: MaintenanceInput): number[] {
  const own = new Set(input.map.partitions.map((entry) => entry.streams.data));
  const listed = new Map<number, boolean>();
  for (const entry of input.map.partitions) {
    const report = input.reports.get(entry.partitionId);
    const free = report !== undefined && report.status.state === 'serving' && report.status.inheritedFree;
    for (const streamId of entry.inheritedData) listed.set(streamId, (listed.get(streamId) ?? true) && free);
  }
  const room = input.policy.inheritedDataMax - (input.map.releasingData?.length ?? 0);
  return [...listed].filter(([streamId, free]) => free && !own.has(streamId)).map(([streamId]) => streamId).slice(0, Math.max(0, room));
}

function mergeable(report: Reported | undefined, policy: MaintenancePolicy): report is Reported {
  return report !== undefined && report.status.state === 'serving' && report.status.requestsPerSecond < policy.coldRequestsPerSecond && report.status.servedMs >= policy.mergeServedMsMin;
}

/** The smallest pair of cold neighbours that fits mergeBytes: merged if co-located, else the smaller moves. */
function planMerge(input: MaintenanceInput): MaintenanceAction | null {
  const { map, reports, policy } = input;
  let best: { left: Reported; right: Reported; bytes: number } | null = null;
  for (let index = 0; index + 1 < map.partitions.length; index++) {
    const left = reports.get(map.partitions[index]?.partitionId ?? -1);
    const right = reports.get(map.partitions[index + 1]?.partitionId ?? -1);
    if (!mergeable(left, policy) || !mergeable(right, policy)) continue;
    const bytes = left.status.approximateBytes + right.status.approximateBytes;
    const inherited = new Set([left.entry.streams.data, right.entry.streams.data, ...left.entry.inheritedData, ...right.entry.inheritedData]);
    if (bytes > policy.mergeBytes || inherited.size > policy.inheritedDataMax) continue;
    if (best === null || bytes < best.bytes) best = { left, right, bytes };
  }
  if (best === null) return null;
  const { left, right } = best;
  if (left.server.record.serverId === right.server.record.serverId) return { kind: 'merge', left: left.entry, right: right.entry, server: left.server };
  const [moving, staying] = left.status.approximateBytes <= right.status.approximateBytes ? [left, right] : [right, left];
  return { kind: 'move', entry: moving.entry, from: moving.server, to: staying.server, reason: 'merge' };
}

/** Busiest server → least busy server: the partition whose move narrows the gap the most. */
function planBalance(input: MaintenanceInput): MaintenanceAction | null {
  const { policy } = input;
  const load = new Map<string, { rate: number; reports: Reported[] }>();
  for (const serverId of input.answered) if (input.servers.has(serverId)) load.set(serverId, { rate: 0, reports: [] });
  for (const report of input.reports.values()) {
    const server = load.get(report.server.record.serverId);
    if (server === undefined || report.status.state !== 'serving') continue;
    server.rate += report.status.requestsPerSecond;
    server.reports.push(report);
  }
  const ranked = [...load.entries()].sort((a, b) => (a[1].rate !== b[1].rate ? b[1].rate - a[1].rate : a[0] < b[0] ? -1 : 1));
  const busiest = ranked[0];
  const idlest = ranked[ranked.length - 1];
  if (busiest === undefined || idlest === undefined || busiest[0] === idlest[0] || busiest[1].reports.length < 2) return null;
  const gap = busiest[1].rate - idlest[1].rate;
  if (busiest[1].rate <= policy.balanceRatio * idlest[1].rate || gap <= policy.balanceRequestsPerSecondMin) return null;
  // Moving rate r leaves a gap of |gap − 2r|: it must shrink by at least the minimum worth a move,
  // and the r nearest gap / 2 shrinks it most (ties: the less busy partition, fewer requests see it).
  const after = (report: Reported): number => Math.abs(gap - 2 * report.status.requestsPerSecond);
  const candidate = busiest[1].reports
    .filter((report) => report.status.requestsPerSecond >= policy.coldRequestsPerSecond && after(report) <= gap - policy.balanceRequestsPerSecondMin)
    .sort((a, b) => (after(a) !== after(b) ? after(a) - after(b) : a.status.requestsPerSecond - b.status.requestsPerSecond))[0];
  const to = input.servers.get(idlest[0]);
  if (candidate === undefined || to === undefined) return null;
  return { kind: 'move', entry: candidate.entry, from: candidate.server, to, reason: 'balance' };
}
