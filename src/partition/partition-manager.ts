// The partition manager (docs/partition-protocol.md): one leader at a time, elected through the
// MetaStore (pm/leader under a lease + pm/epoch by compare txn). The leader bootstraps the map
// (one partition over every key), assigns unowned partitions to live servers, reassigns the
// partitions of a server whose lease is gone, splits a partition that grew past splitBytes or is
// hot (its owner prepares the children; the leader commits the map), merges two small, cold
// neighbours (their owner prepares the merged partition), and moves partitions between live
// servers (the owner releases it first) to co-locate a merge or to balance request load.
//
//   campaign: lease ──► txn { pm/leader absent, pm/epoch as read } put leader, epoch+1 ──► lead
//   tick:     servers + map ──► planAssignments (pure) ──► txn (compare epoch, map, servers read)
//             ──► status of each server ──► planMaintenance (pure, partition-balance.ts): one
//             re-epoch, split, merge or move ──► its RPC to the owner ──► txn
//
// Invariants:
// - every map write compares pm/epoch's modRevision (this leader's) and pm/map's as read, so a
//   deposed leader never writes and no decision is applied over a map it did not see;
// - a partition is moved off a server only if that server's key is absent or names another lease
//   (compared in the same txn): its old owner's lease is gone, so it no longer serves it; or if
//   that server answered partition.release (it closed the partition before answering);
// - every assignment increments the partition's owner epoch.
// Fault model: MetaStore calls may fail (the tick is retried); servers may be dead or slow (status
// and split calls have deadlines); this process may die at any point (a new leader takes over
// after the lease TTL; a half-done split only leaves garbage streams).
import { pino, type Logger } from 'pino';
import {
  partitionBalanceRatio, partitionBalanceRequestsPerSecondMin, partitionColdRequestsPerSecond, partitionHotRequestsPerSecond, partitionLeaseMarginMs,
  partitionInheritedDataMax, partitionLeaseTtlMs, partitionLoadWindowMs, partitionManagerTickMs, partitionMapPartitionsMax, partitionMergeBytes, partitionMergeServedMsMin,
  partitionMoveIntervalMs, partitionRpcDeadlineMs, dropExtentsPerCallMax, partitionSplitBytes, partitionSplitRetryMs, partitionStatusDeadlineMs,
} from '../constants.ts';
import type { KeyValue, MetaStore } from '../metastore/meta-store.ts';
import { prefixEnd } from '../metastore/meta-store.ts';
import type { Network } from '../rpc/network.ts';
import type { StreamManagerApi } from '../stream/protocol.ts';
import { AssertionFailure } from '../util/assert.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import { StorageError, isStorageError } from '../util/errors.ts';
import { leaderKey, managerEpochKey, mapKey, parseJson, readMap, serverKey, serverPrefix, serverRecordSchema } from './partition-map.ts';
import type { LiveServer, PartitionEntry, PartitionMap, VersionedMap } from './partition-map.ts';
import { planMaintenance } from './partition-balance.ts';
import type { MaintenanceAction, MaintenancePolicy, Reported } from './partition-balance.ts';
import { mergeAnswerSchema } from './partition-merge.ts';
import { releaseAnswer, serverStatusAnswer } from './partition-rpc.ts';
import type { ServerStatus } from './partition-rpc.ts';
import { splitAnswerSchema } from './partition-split.ts';
import type { SplitAnswer } from './partition-split.ts';
import { ServerLease } from './server-lease.ts';
import { z } from 'zod';

export interface PartitionManagerOptions {
  readonly managerId: string;
  readonly metaStore: MetaStore;
  readonly network: Network;
  readonly streamManager: StreamManagerApi;
  readonly clock: Clock;
  readonly logger?: Logger;
  readonly leaseTtlMs?: number;
  readonly tickMs?: number;
  readonly splitBytes?: number;
  /**
   * Merge, hot-split and balancing thresholds (docs/partition-protocol.md); defaults from
   * src/constants.ts, mergeBytes at most a quarter of splitBytes.
   */
  readonly policy?: Partial<MaintenancePolicy>;
  /** At most one balancing move this often. */
  readonly moveIntervalMs?: number;
  /** Maintenance (every server's status, then one split, merge, move or re-epoch) at most this
   * often, and at the next tick again after a pass that acted; absent: every tick. Assignments
   * (failover) keep the tick's pace. The cluster controller sets partitionMaintenanceIntervalMs. */
  readonly maintenanceIntervalMs?: number;
}

export type { LiveServer } from './partition-map.ts';

interface Leadership {
  readonly lease: ServerLease;
  readonly epoch: number;
  readonly epochRevision: number;
}

export interface PartitionManagerStats {
  readonly ticks: number;
  readonly assignments: number;
  readonly splits: number;
  readonly hotSplits: number;
  readonly merges: number;
  readonly moves: number;
  readonly reEpochs: number;
  /** Inherited data streams released (every extent but an empty tail dropped), and their extents. */
  readonly dataStreamsReleased: number;
  readonly dataExtentsReleased: number;
  readonly mapWrites: number;
  readonly tickFailures: number;
  /** Maintenance passes (every server's status asked, one action planned): every tick, or at most
   * every maintenanceIntervalMs while nothing needs doing. */
  readonly maintenancePasses: number;
  /** The map as the last tick read it (partitions in it, its version); 0 before one. */
  readonly mapPartitions: number;
  readonly mapVersion: number;
}

const epochValue = z.object({ epoch: z.number().int().nonnegative() });

export class PartitionManager {
  private readonly options: PartitionManagerOptions;
  private readonly logger: Logger;
  private leadership: Leadership | null = null;
  private timer: TimerHandle | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private readonly counters = { ticks: 0, assignments: 0, splits: 0, hotSplits: 0, merges: 0, moves: 0, reEpochs: 0, dataStreamsReleased: 0, dataExtentsReleased: 0, mapWrites: 0, tickFailures: 0, maintenancePasses: 0 };
  private readonly policy: MaintenancePolicy;
  /** Partition id → monotonic ms until which a refused split is not asked again. */
  private readonly splitRefusedUntil = new Map<number, number>();
  private lastBalanceMoveMs = Number.NEGATIVE_INFINITY;
  /** When the last maintenance pass that found nothing to do ran (maintenanceIntervalMs). */
  private lastIdleMaintenanceMs = Number.NEGATIVE_INFINITY;
  private lastMap = { mapPartitions: 0, mapVersion: 0 };

  constructor(options: PartitionManagerOptions) {
    this.options = options;
    this.logger = (options.logger ?? pino({ level: 'silent' })).child({ component: 'partition-manager', managerId: options.managerId });
    const splitBytes = options.splitBytes ?? partitionSplitBytes;
    this.policy = {
      splitBytes, mergeBytes: Math.min(partitionMergeBytes, Math.floor(splitBytes / 4)), coldRequestsPerSecond: partitionColdRequestsPerSecond,
      mergeServedMsMin: partitionMergeServedMsMin, hotRequestsPerSecond: partitionHotRequestsPerSecond, loadWindowMs: partitionLoadWindowMs,
      balanceRatio: partitionBalanceRatio, balanceRequestsPerSecondMin: partitionBalanceRequestsPerSecondMin, inheritedDataMax: partitionInheritedDataMax,
      ...options.policy,
    };
  }

  /** Starts campaigning; once leader, ticks every tickMs until stop(). */
  start(): void {
    this.schedule(0);
  }

  get leading(): boolean {
    return this.leadership !== null && this.leadership.lease.isValid();
  }

  get epoch(): number | null {
    return this.leadership?.epoch ?? null;
  }

  stats(): PartitionManagerStats {
    return { ...this.counters, ...this.lastMap };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    await this.running;
    await this.leadership?.lease.release();
    this.leadership = null;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = this.options.clock.setTimer(delayMs, () => {
      this.running = this.step().catch((error: unknown) => {
        if (error instanceof AssertionFailure) throw error;
        this.counters.tickFailures += 1;
        this.logger.warn({ err: error }, 'partition manager tick failed; retried');
      }).finally(() => {
        this.running = null;
        this.schedule(this.options.tickMs ?? partitionManagerTickMs);
      });
    });
  }

  /** Campaign if not leading, else one tick. Public so tests can drive it. */
  async step(): Promise<void> {
    if (this.stopped) return;
    if (!this.leading) {
      this.leadership = null;
      this.leadership = await this.campaign();
      if (this.leadership === null) return;
    }
    await this.tick();
  }

  // ---- election ---------------------------------------------------------------------------------

  private async campaign(): Promise<Leadership | null> {
    const { metaStore, clock } = this.options;
    const ttlMs = this.options.leaseTtlMs ?? partitionLeaseTtlMs;
    if ((await metaStore.get(leaderKey)) !== null) return null;
    const lease = await ServerLease.grant({
      metaStore, clock, ttlMs, renewMs: Math.floor(ttlMs / 4), marginMs: Math.max(1, Math.floor(ttlMs * partitionLeaseMarginMs / partitionLeaseTtlMs)),
      onLost: () => this.logger.warn('leader lease no longer confirmed: stepping down'),
    });
    const current = await metaStore.get(managerEpochKey);
    const epoch = (current === null ? 0 : parseJson(epochValue, current).epoch) + 1;
    const result = await metaStore.txn({
      compare: [{ key: leaderKey, modRevision: 0 }, { key: managerEpochKey, modRevision: current?.modRevision ?? 0 }],
      success: [
        { kind: 'put', key: leaderKey, value: JSON.stringify({ managerId: this.options.managerId, epoch }), lease: lease.id },
        { kind: 'put', key: managerEpochKey, value: JSON.stringify({ epoch }) },
      ],
    });
    if (!result.succeeded) {
      await lease.release();
      return null;
    }
    this.logger.info({ epoch, lease: lease.id }, 'partition manager leading');
    return { lease, epoch, epochRevision: result.revision };
  }

  // ---- the tick ---------------------------------------------------------------------------------

  private async tick(): Promise<void> {
    this.counters.ticks += 1;
    let current = await readMap(this.options.metaStore);
    if (current === null) {
      await this.bootstrap();
      current = await readMap(this.options.metaStore);
      if (current === null) return;
    }
    this.lastMap = { mapPartitions: current.map.partitions.length, mapVersion: current.map.version };
    const servers = await this.liveServers();
    const planned = planAssignments(current.map, servers);
    if (planned.changed.length > 0) {
      const compareServers = planned.touchedServers.map((serverId) => ({ key: serverKey(serverId), modRevision: servers.get(serverId)?.modRevision ?? 0 }));
      if (await this.writeMap(current, planned.map, compareServers)) {
        this.counters.assignments += planned.changed.length;
        this.logger.info({ version: planned.map.version, assigned: planned.changed }, 'partitions assigned');
      }
      return;
    }
    const nowMs = this.options.clock.monotonicMs();
    if (nowMs - this.lastIdleMaintenanceMs < (this.options.maintenanceIntervalMs ?? 0)) return;
    const acted = await this.maintain(current, servers);
    this.lastIdleMaintenanceMs = acted ? Number.NEGATIVE_INFINITY : nowMs;
  }

  private async bootstrap(): Promise<void> {
    const manager = this.options.streamManager;
    const streams = {
      meta: (await manager.createStream({ name: 'partition-0/meta' })).streamId,
      log: (await manager.createStream({ name: 'partition-0/log' })).streamId,
      checkpoint: (await manager.createStream({ name: 'partition-0/checkpoint' })).streamId,
      data: (await manager.createStream({ name: 'partition-0/data' })).streamId,
    };
    const map: PartitionMap = {
      version: 1, managerEpoch: this.requireLeadership().epoch, nextPartitionId: 1,
      partitions: [{ partitionId: 0, low: '', high: null, streams, inheritedData: [], ownerEpoch: 0, owner: null }],
    };
    const written = await this.writeMap(null, map, []);
    if (written) this.logger.info({ streams }, 'partition map bootstrapped: one partition over every key');
  }

  private async liveServers(): Promise<Map<string, LiveServer>> {
    const kvs: KeyValue[] = await this.options.metaStore.range(serverPrefix, { end: prefixEnd(serverPrefix), limit: partitionMapPartitionsMax });
    const servers = new Map<string, LiveServer>();
    for (const kv of kvs) {
      const record = parseJson(serverRecordSchema, kv);
      servers.set(record.serverId, { record, modRevision: kv.modRevision });
    }
    return servers;
  }

  /** Writes the map (version + 1) if this is still the leader and the map is as read. */
  private async writeMap(read: VersionedMap | null, map: PartitionMap, extraCompares: readonly { key: string; modRevision: number }[]): Promise<boolean> {
    const leadership = this.requireLeadership();
    if (!leadership.lease.isValid()) return false;
    const next: PartitionMap = { ...map, managerEpoch: leadership.epoch };
    const result = await this.options.metaStore.txn({
      compare: [{ key: managerEpochKey, modRevision: leadership.epochRevision }, { key: mapKey, modRevision: read?.modRevision ?? 0 }, ...extraCompares],
      success: [{ kind: 'put', key: mapKey, value: JSON.stringify(next) }],
    });
    if (result.succeeded) this.counters.mapWrites += 1;
    return result.succeeded;
  }

  private requireLeadership(): Leadership {
    if (this.leadership === null) throw new StorageError('meta.conflict', 'not the partition manager leader', { retryable: true });
    return this.leadership;
  }

  // ---- splits, merges, moves ----------------------------------------------------------------------

  /** Asks every live server for its status, then carries out the one action planMaintenance picks
   * (true if it picked one). */
  private async maintain(current: VersionedMap, servers: ReadonlyMap<string, LiveServer>): Promise<boolean> {
    this.counters.maintenancePasses += 1;
    const reports = new Map<number, Reported>();
    const answered = new Set<string>();
    // Asked together, each bounded by partitionStatusDeadlineMs: a silent server (cut off, its lease
    // not yet expired) must not hold the next assignment pass up for long.
    const statuses = await Promise.all([...servers.values()].map(async (server) => ({ server, status: await this.status(server) })));
    for (const { server, status } of statuses) {
      if (status === null) continue;
      answered.add(server.record.serverId);
      for (const reported of status.partitions) {
        const entry = current.map.partitions.find((candidate) => candidate.partitionId === reported.partitionId);
        if (entry?.owner?.serverId !== server.record.serverId || entry.ownerEpoch !== reported.ownerEpoch) continue;
        reports.set(entry.partitionId, { entry, server, status: reported });
      }
    }
    const nowMs = this.options.clock.monotonicMs();
    for (const [partitionId, untilMs] of this.splitRefusedUntil) if (untilMs <= nowMs) this.splitRefusedUntil.delete(partitionId);
    const action = planMaintenance({
      map: current.map, servers, reports, answered, policy: this.policy, splitRefused: new Set(this.splitRefusedUntil.keys()),
      moveAllowed: nowMs - this.lastBalanceMoveMs >= (this.options.moveIntervalMs ?? partitionMoveIntervalMs),
    });
    if (action === null) return false;
    await this.perform(current, action);
    return true;
  }

  private async perform(current: VersionedMap, action: MaintenanceAction): Promise<void> {
    switch (action.kind) {
      case 'reEpoch':
        return this.reEpoch(current, action.entry, action.server);
      case 'split':
        return this.split(current, action.entry, action.server, action.reason);
      case 'merge':
        return this.merge(current, action.left, action.right, action.server);
      case 'move':
        return this.move(current, action.entry, action.from, action.to, action.reason);
      case 'forgetData':
        return this.forgetData(current, action.streamIds);
      case 'releaseData':
        return this.releaseData(current, action.streamId, action.ownerEpoch);
    }
  }

  private async status(server: LiveServer): Promise<ServerStatus | null> {
    try {
      const response = await this.options.network.call(server.record.address, { method: 'server.status', header: {}, body: Buffer.alloc(0) }, { deadlineMs: partitionStatusDeadlineMs });
      const parsed = serverStatusAnswer.safeParse(response.header);
      if (parsed.success) return parsed.data;
      this.logger.error({ serverId: server.record.serverId, issues: parsed.error.message }, 'malformed server status: the server is left out of maintenance');
      return null;
    } catch (error) {
      this.logger.warn({ serverId: server.record.serverId, err: error }, 'server status failed');
      return null;
    }
  }

  /** A split, merge or move prepared but never committed: the owner will not reopen it at that epoch. */
  private async reEpoch(current: VersionedMap, entry: PartitionEntry, server: LiveServer): Promise<void> {
    const map = replaceEntries(current.map, [entry.partitionId], [{ ...entry, ownerEpoch: entry.ownerEpoch + 1 }]);
    if (await this.writeMap(current, map, [serverCompare(server)])) {
      this.counters.reEpochs += 1;
      this.logger.warn({ partitionId: entry.partitionId, ownerEpoch: entry.ownerEpoch + 1 }, 'abandoned split, merge or move: partition reopened at a new epoch');
    }
  }

  private async split(current: VersionedMap, entry: PartitionEntry, server: LiveServer, reason: 'size' | 'load'): Promise<void> {
    if (current.map.partitions.length + 1 > partitionMapPartitionsMax) return;
    const childIds = [current.map.nextPartitionId, current.map.nextPartitionId + 1] as const;
    let answer: SplitAnswer;
    try {
      answer = await this.askSplit(server, entry, childIds, reason);
    } catch (error) {
      // One group holds every row: refused before anything stopped; not asked again for a while.
      if (!isStorageError(error, 'config.invalid')) throw error;
      this.splitRefusedUntil.set(entry.partitionId, this.options.clock.monotonicMs() + partitionSplitRetryMs);
      this.logger.info({ partitionId: entry.partitionId, reason, err: error }, 'split refused by the owner');
      return;
    }
    const owner = { serverId: server.record.serverId, lease: server.record.lease };
    const inheritedData = [entry.streams.data, ...entry.inheritedData];
    const children: PartitionEntry[] = answer.children.map((child) => ({
      partitionId: child.partitionId, low: child.low, high: child.high, streams: child.streams, inheritedData, ownerEpoch: entry.ownerEpoch + 1, owner,
    }));
    const map = { ...replaceEntries(current.map, [entry.partitionId], children), nextPartitionId: current.map.nextPartitionId + 2 };
    if (await this.writeMap(current, map, [serverCompare(server)])) {
      this.counters.splits += 1;
      if (reason === 'load') this.counters.hotSplits += 1;
      this.logger.info({ partitionId: entry.partitionId, reason, splitKey: answer.splitKey, children: childIds }, 'partition split');
    }
  }

  private async askSplit(server: LiveServer, entry: PartitionEntry, childIds: readonly [number, number], reason: 'size' | 'load'): Promise<SplitAnswer> {
    const header = { partitionId: entry.partitionId, ownerEpoch: entry.ownerEpoch, childIds: [...childIds], reason };
    const response = await this.options.network.call(server.record.address, { method: 'partition.split', header, body: Buffer.alloc(0) }, { deadlineMs: partitionRpcDeadlineMs });
    const parsed = splitAnswerSchema.safeParse(JSON.parse(response.body.toString('utf8')));
    if (!parsed.success) throw new StorageError('rpc.remote', `malformed split answer: ${parsed.error.message}`);
    const [left, right] = parsed.data.children;
    if (left?.low !== entry.low || right?.high !== entry.high || left.high !== right.low || left.partitionId !== childIds[0] || right.partitionId !== childIds[1]) {
      throw new StorageError('rpc.remote', 'split answer does not cover the parent range with the asked ids');
    }
    return parsed.data;
  }

  /** Two co-located cold neighbours → one partition (docs/partition-protocol.md, "Merges"). */
  private async merge(current: VersionedMap, left: PartitionEntry, right: PartitionEntry, server: LiveServer): Promise<void> {
    const mergedId = current.map.nextPartitionId;
    const header = { left: { partitionId: left.partitionId, ownerEpoch: left.ownerEpoch }, right: { partitionId: right.partitionId, ownerEpoch: right.ownerEpoch }, mergedId };
    const response = await this.options.network.call(server.record.address, { method: 'partition.merge', header, body: Buffer.alloc(0) }, { deadlineMs: partitionRpcDeadlineMs });
    const parsed = mergeAnswerSchema.safeParse(JSON.parse(response.body.toString('utf8')));
    if (!parsed.success) throw new StorageError('rpc.remote', `malformed merge answer: ${parsed.error.message}`);
    const answer = parsed.data;
    if (answer.partitionId !== mergedId || answer.low !== left.low || answer.high !== right.high) throw new StorageError('rpc.remote', 'merge answer does not cover both ranges with the asked id');
    const merged: PartitionEntry = {
      partitionId: mergedId, low: left.low, high: right.high, streams: answer.streams,
      inheritedData: [...new Set([left.streams.data, right.streams.data, ...left.inheritedData, ...right.inheritedData])],
      ownerEpoch: Math.max(left.ownerEpoch, right.ownerEpoch) + 1, owner: { serverId: server.record.serverId, lease: server.record.lease },
    };
    const map = { ...replaceEntries(current.map, [left.partitionId, right.partitionId], [merged]), nextPartitionId: mergedId + 1 };
    if (await this.writeMap(current, map, [serverCompare(server)])) {
      this.counters.merges += 1;
      this.logger.info({ left: left.partitionId, right: right.partitionId, mergedId, rows: answer.rows }, 'partitions merged');
    }
  }

  /**
   * Inherited data streams every partition listing them proved free: off every inheritedData list
   * and into releasingData, each with the owner epoch the release will take it over at.
   */
  private async forgetData(current: VersionedMap, streamIds: readonly number[]): Promise<void> {
    const releasing = [...(current.map.releasingData ?? [])];
    for (const streamId of streamIds) releasing.push({ streamId, ownerEpoch: ((await this.options.streamManager.getStream(streamId)).ownerEpoch ?? 0) + 1 });
    const forgotten = new Set(streamIds);
    const partitions = current.map.partitions.map((entry) => ({ ...entry, inheritedData: entry.inheritedData.filter((streamId) => !forgotten.has(streamId)) }));
    if (await this.writeMap(current, { ...current.map, version: current.map.version + 1, partitions, releasingData: releasing }, [])) {
      this.logger.info({ streamIds }, 'inherited data streams no partition needs: releasing');
    }
  }

  /**
   * Drops every extent of a released data stream but its tail: takes the stream over at
   * `ownerEpoch` first (seal and extend: nobody can append to the old extents any more), so the
   * drops are fenced like an owner's. Idempotent: a retry after a crash takes over nothing twice.
   */
  private async releaseData(current: VersionedMap, streamId: number, ownerEpoch: number): Promise<void> {
    const manager = this.options.streamManager;
    const view = await manager.getStream(streamId);
    const tail = view.extents.at(-1);
    if ((view.ownerEpoch ?? 0) < ownerEpoch && tail !== undefined) await manager.sealAndExtend({ streamId, extentId: tail.extentId, ownerEpoch });
    const extents = (await manager.getStream(streamId)).extents;
    const doomed = extents.slice(0, -1).filter((extent) => extent.state.kind === 'sealed').map((extent) => extent.extentId);
    for (let index = 0; index < doomed.length; index += dropExtentsPerCallMax) {
      await manager.dropExtents({ streamId, extentIds: doomed.slice(index, index + dropExtentsPerCallMax), ownerEpoch });
    }
    const releasingData = (current.map.releasingData ?? []).filter((entry) => entry.streamId !== streamId);
    if (await this.writeMap(current, { ...current.map, version: current.map.version + 1, releasingData }, [])) {
      this.counters.dataStreamsReleased += 1;
      this.counters.dataExtentsReleased += doomed.length;
      this.logger.info({ streamId, extentsDropped: doomed.length }, 'inherited data stream released');
    }
  }

  /** A live partition to another live server: its owner closes it first (docs: "Moves"). */
  private async move(current: VersionedMap, entry: PartitionEntry, from: LiveServer, to: LiveServer, reason: 'merge' | 'balance'): Promise<void> {
    if (reason === 'balance') this.lastBalanceMoveMs = this.options.clock.monotonicMs();
    const header = { partitionId: entry.partitionId, ownerEpoch: entry.ownerEpoch };
    const response = await this.options.network.call(from.record.address, { method: 'partition.release', header, body: Buffer.alloc(0) }, { deadlineMs: partitionRpcDeadlineMs });
    if (!releaseAnswer.safeParse(response.header).success) throw new StorageError('rpc.remote', 'malformed release answer');
    const moved: PartitionEntry = { ...entry, ownerEpoch: entry.ownerEpoch + 1, owner: { serverId: to.record.serverId, lease: to.record.lease } };
    if (await this.writeMap(current, replaceEntries(current.map, [entry.partitionId], [moved]), [serverCompare(from), serverCompare(to)])) {
      this.counters.moves += 1;
      this.logger.info({ partitionId: entry.partitionId, from: from.record.serverId, to: to.record.serverId, reason }, 'partition moved');
    }
  }
}

function serverCompare(server: LiveServer): { key: string; modRevision: number } {
  return { key: serverKey(server.record.serverId), modRevision: server.modRevision };
}

/**
 * Assignment decisions (pure): every partition without a live owner (no owner, or its server key
 * is absent or names another lease) goes to the live server with the fewest partitions, at
 * ownerEpoch + 1. Returns the new map (version + 1) and which servers' keys the decision read.
 */
export function planAssignments(map: PartitionMap, servers: ReadonlyMap<string, LiveServer>): { map: PartitionMap; changed: number[]; touchedServers: string[] } {
  const load = new Map<string, number>([...servers.keys()].map((serverId) => [serverId, 0]));
  const live = (entry: PartitionEntry): boolean => entry.owner !== null && servers.get(entry.owner.serverId)?.record.lease === entry.owner.lease;
  for (const entry of map.partitions) if (live(entry) && entry.owner !== null) load.set(entry.owner.serverId, (load.get(entry.owner.serverId) ?? 0) + 1);
  const changed: number[] = [];
  const touched = new Set<string>();
  const partitions = map.partitions.map((entry) => {
    if (live(entry) || servers.size === 0) return entry;
    const target = [...load.entries()].sort((a, b) => (a[1] !== b[1] ? a[1] - b[1] : a[0] < b[0] ? -1 : 1))[0];
    const server = target === undefined ? undefined : servers.get(target[0]);
    if (target === undefined || server === undefined) return entry;
    load.set(target[0], target[1] + 1);
    changed.push(entry.partitionId);
    touched.add(target[0]);
    if (entry.owner !== null) touched.add(entry.owner.serverId);
    return { ...entry, ownerEpoch: entry.ownerEpoch + 1, owner: { serverId: target[0], lease: server.record.lease } };
  });
  return { map: { ...map, version: map.version + (changed.length > 0 ? 1 : 0), partitions }, changed, touchedServers: [...touched] };
}

/** The map with the adjacent entries `partitionIds` replaced by `replacements` (version + 1). */
function replaceEntries(map: PartitionMap, partitionIds: readonly number[], replacements: readonly PartitionEntry[]): PartitionMap {
  const index = map.partitions.findIndex((entry) => entry.partitionId === partitionIds[0]);
  const adjacent = partitionIds.every((partitionId, offset) => map.partitions[index + offset]?.partitionId === partitionId);
  if (index === -1 || !adjacent) throw new StorageError('partition.corrupt', `partitions ${partitionIds.join(', ')} are not adjacent in the map`);
  const partitions = [...map.partitions.slice(0, index), ...replacements, ...map.partitions.slice(index + partitionIds.length)];
  return { ...map, version: map.version + 1, partitions };
}
