// The partition server (docs/partition-protocol.md): registers itself under a MetaStore lease,
// loads the partitions the map assigns to it (at their owner epochs), serves them over the
// Network seam (partition.get/put/delete/transact/scan/appendData/readData), and stops serving a
// partition the instant it can no longer prove it owns it.
//
//   start: lease ──► pm/servers/<id> (txn: key absent) ──► listen ──► sync loop (on pm/map's watch, and a slow poll)
//   sync:  map assigns P to (me, my lease, epoch e) and I do not hold P at e ──► load P at e
//          I hold P but the map does not assign it to me at that epoch ─────► drop P
//          I hold P and it failed (any commit's log append of unknown outcome) ──► close, reload P
//   request(key): the held, serving partition whose range holds key, and lease.isValid()
//          ──► run it ──► ownership still confirmed? answer : not_owner / unavailable
//
// Invariants:
// - every answer is decided while the lease is confirmed valid and the partition is still held
//   at the epoch it was loaded with (checked before the work and again before answering);
// - a request refused with partition.not_owner applied nothing;
// - a write whose outcome is unknown (log append failed, or ownership lost while it ran) answers
//   partition.unavailable; a failed partition is closed (waiting for its writer and maintenance)
//   before it is reloaded, so one server never has two instances of a partition writing;
// - the server registers only when its key is absent, so a restarted server waits out the lease
//   of its previous incarnation (the manager cannot confuse the two);
// - a partition is loaded with StreamLayerPartitionStreams at its owner epoch: the stream layer
//   refuses this server's appends once a newer owner took the streams over.
// Fault model: MetaStore, stream layer and clients may be slow, down or partitioned away; this
// process may be killed at any point (the next owner seals and replays); its lease may lapse
// while requests run (their answers are then refused).
import { pino, type Logger } from 'pino';
import { partitionLeaseMarginMs, partitionLeaseTtlMs, partitionLoadKeySamplesMax, partitionLoadWindowMs, partitionMapRecheckMs, partitionRegisterRetryMs } from '../constants.ts';
import type { KeyWatch, MetaStore } from '../metastore/meta-store.ts';
import type { Network, RpcRequest, RpcResponse, RpcServer } from '../rpc/network.ts';
import { parseHeader } from '../stream/protocol.ts';
import type { StreamManagerApi } from '../stream/protocol.ts';
import { StreamClient } from '../stream/stream-client.ts';
import { AssertionFailure } from '../util/assert.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import { StorageError, isStorageError } from '../util/errors.ts';
import { partitionEvents } from '../util/partition-events.ts';
import type { Random } from '../util/random.ts';
import { Partition } from './partition.ts';
import type { PartitionLimits, PartitionStats } from './partition.ts';
import { entryContains, keyFromHex, keyHex, mapKey, readMap, serverKey } from './partition-map.ts';
import type { PartitionEntry } from './partition-map.ts';
import { decodeKey, isPartitionMethod, partitionRequests, routingKeyHeader } from './partition-rpc.ts';
import type { PartitionStatus, ServerStatus } from './partition-rpc.ts';
import { performPartitionRequest, type ServedRequest } from './partition-requests.ts';
import { InheritedDataStreams } from './inherited-data-streams.ts';
import { StreamLayerPartitionStreams } from './partition-streams.ts';
import { ServerLease } from './server-lease.ts';
import { planSplit, splitPartition } from './partition-split.ts';
import { mergePartitions } from './partition-merge.ts';
import type { MergeAnswer } from './partition-merge.ts';
import { RequestLoad } from './request-load.ts';
import type { SplitAnswer } from './partition-split.ts';
import { rowPerGroup } from './table-schema.ts';
import type { TableSchema } from './table-schema.ts';

export interface PartitionServerOptions {
  readonly serverId: string;
  readonly metaStore: MetaStore;
  readonly network: Network;
  readonly listenAddress: string;
  readonly streamManager: StreamManagerApi;
  readonly clock: Clock;
  readonly random?: Random;
  readonly logger?: Logger;
  readonly leaseTtlMs?: number;
  /** The map is followed by a MetaStore watch; besides it, it is re-read this often (default
   * partitionMapRecheckMs): failed loads, a lost registration, a watch gone silent. */
  readonly mapRecheckMs?: number;
  /** Request-rate window of each partition (docs/partition-protocol.md, "Load"). */
  readonly loadWindowMs?: number;
  readonly partitionLimits?: Partial<PartitionLimits>;
  /**
   * The table the partitions hold (src/partition/table-schema.ts), from its owner: where rows keep
   * data refs (data GC) and which rows a split must keep together. Absent: an unknown table.
   */
  readonly table?: TableSchema;
  /**
   * Collect the partitions' data streams (docs/partition-gc.md). Default: on when `table` is
   * given (its dataReferences say where every ref is), off without it (a collector that cannot
   * see a ref deletes live bytes). Meta, log and checkpoint GC and compaction always run.
   */
  readonly dataGc?: boolean;
  /** Unique per process start: prefixes stream append ids. Defaults to serverId + start time. */
  readonly clientId?: string;
  /** Called as each write is acknowledged (tests count who acknowledged what, and when). */
  readonly onWriteAcknowledged?: (event: WriteAcknowledged) => void;
}

export interface WriteAcknowledged {
  readonly serverId: string;
  readonly partitionId: number;
  readonly ownerEpoch: number;
  readonly method: string;
  readonly atMs: number;
  readonly header: RpcResponse['header'];
}

type HeldState =
  | { readonly kind: 'loading' }
  | { readonly kind: 'serving'; readonly partition: Partition }
  | { readonly kind: 'failed'; readonly partition: Partition | null; readonly cause: unknown }
  // Retired at this epoch (never reopened at it): prepared as a split parent or a merge side, or
  // released for a move. The manager commits the map, or re-epochs it if that never happens.
  | { readonly kind: 'split' | 'merged' | 'released' };

interface Held {
  readonly entry: PartitionEntry;
  state: HeldState;
  readonly load: RequestLoad;
}

export interface PartitionServerStats {
  readonly loads: number;
  readonly loadFailures: number;
  readonly drops: number;
  readonly notOwnerAnswers: number;
  readonly leasesLost: number;
  /** Log records replayed by the last load of each partition, and how long it took. */
  readonly lastLoad: { readonly partitionId: number; readonly recordsReplayed: number; readonly durationMs: number } | null;
}

export class PartitionServer {
  readonly serverId: string;
  private readonly options: PartitionServerOptions;
  private readonly logger: Logger;
  private readonly client: StreamClient;
  private readonly held = new Map<number, Held>();
  private lease: ServerLease | null = null;
  private server: RpcServer | null = null;
  private pollTimer: TimerHandle | null = null;
  private mapWatch: KeyWatch | null = null;
  private syncing: Promise<void> | null = null;
  /** mapChanged() during a sync: sync again as soon as it ends. */
  private syncAgain = false;
  private registering: Promise<void> | null = null;
  private stopped = false;
  private cutOff = false;
  private readonly counters = { loads: 0, loadFailures: 0, drops: 0, notOwnerAnswers: 0, leasesLost: 0 };
  private lastLoad: PartitionServerStats['lastLoad'] = null;

  constructor(options: PartitionServerOptions) {
    this.serverId = options.serverId;
    this.options = options;
    this.logger = (options.logger ?? pino({ level: 'silent' })).child({ component: 'partition-server', serverId: options.serverId });
    const clientId = options.clientId ?? `${options.serverId}-${options.clock.nowMs().toString(36)}`;
    this.client = new StreamClient({
      manager: options.streamManager, network: options.network, clock: options.clock, clientId: clientId.slice(0, 64),
      ...(options.random === undefined ? {} : { random: options.random }),
    });
  }

  /** Listens, registers under a fresh lease, and starts following the map. */
  async start(): Promise<{ address: string }> {
    this.server = await this.options.network.listen(this.options.listenAddress, (request) => this.dispatch(request));
    await this.register();
    this.schedulePoll(0);
    this.mapWatch = this.options.metaStore.watchKey(mapKey, () => this.mapChanged());
    this.logger.info({ address: this.server.address, lease: this.lease?.id }, 'partition server listening');
    return { address: this.server.address };
  }

  get address(): string {
    if (this.server === null) throw new StorageError('config.invalid', 'partition server not started');
    return this.server.address;
  }

  get leaseId(): number | null {
    return this.lease?.id ?? null;
  }

  /** The admin port's /readyz: registered, its lease confirmed valid now, and not stopping. */
  get leaseConfirmed(): boolean {
    return !this.stopped && (this.lease?.isValid() ?? false);
  }

  stats(): PartitionServerStats {
    return { ...this.counters, lastLoad: this.lastLoad };
  }

  /** Tests and tools: the partition this server serves under `partitionId`, or null. */
  servedPartition(partitionId: number): Partition | null {
    const state = this.held.get(partitionId)?.state;
    return state?.kind === 'serving' ? state.partition : null;
  }

  /** Metrics: every partition serving here, with its engine's stats and request rate. */
  servingStats(): { partitionId: number; stats: PartitionStats; requestsPerSecond: number }[] {
    const served = [];
    for (const [partitionId, held] of this.held) {
      if (held.state.kind === 'serving') served.push({ partitionId, stats: held.state.partition.stats(), requestsPerSecond: held.load.requestsPerSecond() });
    }
    return served;
  }

  /** Tests and tools: the state of every partition held here (serving, split, merged, …). */
  heldStates(): Map<number, HeldState['kind']> {
    return new Map([...this.held].map(([partitionId, held]) => [partitionId, held.state.kind]));
  }

  /** Partition ids this server serves now. */
  servingPartitions(): number[] {
    return [...this.held.entries()].filter(([, held]) => held.state.kind === 'serving').map(([id]) => id);
  }

  /** Stops: no more answers, partitions closed, lease revoked (its partitions move at once). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.pollTimer?.cancel();
    this.mapWatch?.close();
    await this.server?.close();
    await this.syncing;
    await this.dropAll('stopping');
    await this.lease?.release();
  }

  /** Tests and the simulator: the process dies (kill -9): no answers, no renewals, nothing
   * closed or revoked; its lease expires at the MetaStore a TTL after the last renewal. */
  async crash(): Promise<void> {
    this.stopped = true;
    this.pollTimer?.cancel();
    this.mapWatch?.close();
    this.lease?.abandon();
    this.held.clear();
    await this.server?.close();
  }

  /** Tests: this process is cut off from the MetaStore (no renewals, no new registration); it
   * keeps serving until its lease's confirmed time runs out, exactly as a partitioned server would. */
  freezeLease(): void {
    this.cutOff = true;
    this.lease?.stopRenewing();
  }

  // ---- lease and registration -----------------------------------------------------------------

  private async register(): Promise<void> {
    const { metaStore, clock } = this.options;
    const ttlMs = this.options.leaseTtlMs ?? partitionLeaseTtlMs;
    for (;;) {
      if (this.stopped) return;
      const lease = await ServerLease.grant({
        metaStore, clock, ttlMs, renewMs: Math.floor(ttlMs / 4), marginMs: Math.max(1, Math.floor(ttlMs * partitionLeaseMarginMs / partitionLeaseTtlMs)),
        onLost: () => this.onLeaseLost(lease),
      });
      const value = JSON.stringify({ serverId: this.serverId, address: this.address, lease: lease.id });
      const key = serverKey(this.serverId);
      const result = await metaStore.txn({ compare: [{ key, modRevision: 0 }], success: [{ kind: 'put', key, value, lease: lease.id }] });
      if (result.succeeded) {
        this.lease = lease;
        this.logger.info({ lease: lease.id }, 'partition server registered');
        return;
      }
      // A previous incarnation's key is still there: its lease must run out first.
      await lease.release();
      await clock.sleep(partitionRegisterRetryMs);
    }
  }

  private onLeaseLost(lease: ServerLease): void {
    if (this.lease !== lease) return;
    this.counters.leasesLost += 1;
    this.logger.warn({ lease: lease.id }, 'lease no longer confirmed: every partition dropped');
    void this.dropAll('lease lost');
    this.registerAgain();
  }

  /** Takes a new lease in the background; one that fails (the MetaStore unreachable) is retried by
   * the next poll, so a server cut off longer than its lease serves again once it is reachable. */
  private registerAgain(): void {
    if (this.stopped || this.cutOff || this.registering !== null) return;
    this.registering = this.register().catch((error: unknown) => {
      this.logger.error({ err: error }, 'registration failed; retried at the next poll');
    }).finally(() => {
      this.registering = null;
    });
  }

  private leaseValid(): boolean {
    return this.lease !== null && this.lease.isValid();
  }

  // ---- following the map ----------------------------------------------------------------------

  /** The map's watch fired (a write, or the watch (re)connected): sync now, not at the next poll. */
  private mapChanged(): void {
    if (this.stopped || this.pollTimer === null) return;
    if (this.syncing !== null) {
      this.syncAgain = true;
      return;
    }
    this.pollTimer.cancel();
    this.schedulePoll(0);
  }

  private schedulePoll(delayMs: number): void {
    if (this.stopped) return;
    this.pollTimer = this.options.clock.setTimer(delayMs, () => {
      this.syncing = this.sync().catch((error: unknown) => {
        if (error instanceof AssertionFailure) throw error;
        this.logger.warn({ err: error }, 'map sync failed; retried at the next poll');
      }).finally(() => {
        this.syncing = null;
        const again = this.syncAgain;
        this.syncAgain = false;
        this.schedulePoll(again ? 0 : this.options.mapRecheckMs ?? partitionMapRecheckMs);
      });
    });
  }

  /** One pass: load what the map assigns to this server and lease, drop what it does not. */
  async sync(): Promise<void> {
    const lease = this.lease;
    if (this.registering !== null) return;
    if (lease === null || !lease.isValid()) {
      this.registerAgain();
      return;
    }
    const current = await readMap(this.options.metaStore);
    if (current === null) return;
    const assigned = new Map<number, PartitionEntry>();
    for (const entry of current.map.partitions) {
      if (entry.owner?.serverId === this.serverId && entry.owner.lease === lease.id) assigned.set(entry.partitionId, entry);
    }
    for (const [partitionId, held] of [...this.held]) {
      const entry = assigned.get(partitionId);
      if (entry === undefined || entry.ownerEpoch !== held.entry.ownerEpoch) await this.drop(partitionId, 'no longer assigned at this epoch');
    }
    for (const entry of assigned.values()) {
      const held = this.held.get(entry.partitionId);
      if (held === undefined) this.startLoad(entry);
      else if (this.noteFailure(held).kind === 'failed') await this.reload(held);
    }
  }

  private startLoad(entry: PartitionEntry): void {
    const held: Held = {
      entry, state: { kind: 'loading' },
      load: new RequestLoad({ clock: this.options.clock, windowMs: this.options.loadWindowMs ?? partitionLoadWindowMs, keySamplesMax: partitionLoadKeySamplesMax }),
    };
    this.held.set(entry.partitionId, held);
    void this.load(held);
  }

  private async load(held: Held): Promise<void> {
    const entry = held.entry;
    const startedMs = this.options.clock.monotonicMs();
    try {
      const streams = this.streamsFor(entry);
      // Partition.open seals meta and log; checkpoint and data are sealed here, so every stream
      // of the partition records this owner epoch and refuses the previous owner's appends.
      await streams.sealTail(entry.streams.checkpoint);
      await streams.sealTail(entry.streams.data);
      const partition = await Partition.open({
        partitionId: entry.partitionId,
        streams,
        streamIds: entry.streams,
        clock: this.options.clock,
        ownerEpoch: entry.ownerEpoch,
        keyRange: { low: keyFromHex(entry.low), high: entry.high === null ? null : keyFromHex(entry.high) },
        ...(this.options.partitionLimits === undefined ? {} : { limits: this.options.partitionLimits }),
        dataGc: this.options.dataGc ?? this.options.table !== undefined,
        ...(this.options.table === undefined ? {} : { dataReferences: this.options.table.dataReferences }),
        ...(this.options.table?.inlineData === undefined ? {} : { inlineData: this.options.table.inlineData }),
        inheritedData: entry.inheritedData,
      });
      if (this.held.get(entry.partitionId) !== held || !this.leaseValid()) {
        void partition.close();
        return;
      }
      held.state = { kind: 'serving', partition };
      const durationMs = this.options.clock.monotonicMs() - startedMs;
      this.counters.loads += 1;
      this.lastLoad = { partitionId: entry.partitionId, recordsReplayed: partition.stats().recordsReplayed, durationMs };
      this.logger.info({ partitionId: entry.partitionId, ownerEpoch: entry.ownerEpoch, durationMs, replayed: this.lastLoad.recordsReplayed }, 'partition loaded');
    } catch (error) {
      if (error instanceof AssertionFailure) throw error;
      this.counters.loadFailures += 1;
      if (this.held.get(entry.partitionId) === held) held.state = { kind: 'failed', partition: null, cause: error };
      this.logger.warn({ partitionId: entry.partitionId, ownerEpoch: entry.ownerEpoch, err: error }, 'partition load failed; retried at the next poll');
    }
  }

  /**
   * A serving partition that failed on its own (a log append of unknown outcome that no request
   * waited for: a data GC rewrite) is marked failed here, so the next sync reloads it. Without
   * this only a write's answer marked it, and a partition that takes only reads afterwards answered
   * partition.unavailable forever.
   */
  private noteFailure(held: Held): HeldState {
    const state = held.state;
    const failure = state.kind === 'serving' ? state.partition.failure : null;
    if (state.kind === 'serving' && failure !== null) held.state = { kind: 'failed', partition: state.partition, cause: failure };
    return held.state;
  }

  /** A failed partition is closed (its writer and maintenance finished) before it loads again. */
  private async reload(held: Held): Promise<void> {
    if (held.state.kind !== 'failed') return;
    const previous = held.state.partition;
    held.state = { kind: 'loading' };
    if (previous !== null) await previous.close();
    if (this.held.get(held.entry.partitionId) === held) await this.load(held);
  }

  private streamsFor(entry: PartitionEntry): StreamLayerPartitionStreams | InheritedDataStreams {
    const streams = new StreamLayerPartitionStreams({ client: this.client, manager: this.options.streamManager, ownerEpoch: entry.ownerEpoch });
    if (entry.inheritedData.length === 0) return streams;
    return new InheritedDataStreams({ inner: streams, dataStreamId: entry.streams.data, inherited: entry.inheritedData });
  }

  private async drop(partitionId: number, reason: string): Promise<void> {
    const held = this.held.get(partitionId);
    if (held === undefined) return;
    this.held.delete(partitionId);
    this.counters.drops += 1;
    this.logger.info({ partitionId, ownerEpoch: held.entry.ownerEpoch, reason }, 'partition dropped');
    const partition = held.state.kind === 'serving' || held.state.kind === 'failed' ? held.state.partition : null;
    // Answers stop now (the held entry is gone); the close finishes in the background.
    if (partition !== null) void partition.close().catch(() => undefined);
    await Promise.resolve();
  }

  private async dropAll(reason: string): Promise<void> {
    for (const partitionId of [...this.held.keys()]) await this.drop(partitionId, reason);
  }

  // ---- requests -------------------------------------------------------------------------------

  /** Not async itself: without subscribers it hands on dispatchRequest's promise (no promise and
   * two ticks of its own per request). */
  private dispatch(request: RpcRequest): Promise<RpcResponse> {
    return partitionEvents.request.hasSubscribers ? this.dispatchObserved(request) : this.dispatchRequest(request);
  }

  private async dispatchObserved(request: RpcRequest): Promise<RpcResponse> {
    const startedMs = this.options.clock.monotonicMs();
    let partitionId: number | null = null;
    try {
      const response = await this.dispatchRequest(request, (id) => { partitionId = id; });
      this.publishRequest(request.method, partitionId, startedMs, 'ok');
      return response;
    } catch (error) {
      this.publishRequest(request.method, partitionId, startedMs, isStorageError(error) ? error.code : 'internal');
      throw error;
    }
  }

  private publishRequest(method: string, partitionId: number | null, startedMs: number, status: string): void {
    const known = isPartitionMethod(method) ? method : 'unknown';
    partitionEvents.request.publish({ serverId: this.serverId, partitionId, method: known, durationMs: this.options.clock.monotonicMs() - startedMs, status });
  }

  private async dispatchRequest(request: RpcRequest, routed?: (partitionId: number) => void): Promise<RpcResponse> {
    const method = request.method;
    if (!isPartitionMethod(method)) throw new StorageError('config.invalid', `partition server has no method ${JSON.stringify(method)}`);
    if (method === 'server.status') return { header: this.status(), body: Buffer.alloc(0) };
    if (method === 'partition.split') {
      const header = parseHeader(partitionRequests[method], request.header, method);
      const answer = await this.split(header.partitionId, header.ownerEpoch, header.childIds, header.reason ?? 'size');
      return { header: {}, body: Buffer.from(JSON.stringify(answer), 'utf8') };
    }
    if (method === 'partition.merge') {
      const header = parseHeader(partitionRequests[method], request.header, method);
      const answer = await this.merge(header.left, header.right, header.mergedId);
      return { header: {}, body: Buffer.from(JSON.stringify(answer), 'utf8') };
    }
    if (method === 'partition.release') {
      const header = parseHeader(partitionRequests[method], request.header, method);
      return { header: await this.release(header.partitionId, header.ownerEpoch), body: Buffer.alloc(0) };
    }
    // Only the routing key here: performPartitionRequest parses the method's whole header.
    const key = decodeKey(parseHeader(routingKeyHeader, request.header, method).key, 'key');
    const held = this.owner(key);
    held.load.record(key);
    routed?.(held.entry.partitionId);
    const served: ServedRequest = { method, header: request.header, body: request.body, high: held.entry.high, admit: (other) => {
      if (!entryContains(held.entry, keyHex(other))) return false;
      held.load.record(other);
      return true;
    } };
    try {
      const response = await performPartitionRequest(this.servingPartition(held), served);
      this.confirm(held, method);
      if (!isReadMethod(method)) {
        this.options.onWriteAcknowledged?.({
          serverId: this.serverId, partitionId: held.entry.partitionId, ownerEpoch: held.entry.ownerEpoch, method, atMs: this.options.clock.monotonicMs(), header: response.header,
        });
      }
      return response;
    } catch (error) {
      throw this.onRequestError(held, method, error);
    }
  }

  /** The held, serving partition for `key` under a valid lease, else not_owner. */
  private owner(key: Buffer): Held {
    const hex = keyHex(key);
    if (this.leaseValid()) {
      for (const held of this.held.values()) {
        if (held.state.kind === 'serving' && entryContains(held.entry, hex)) return held;
      }
    }
    this.counters.notOwnerAnswers += 1;
    throw new StorageError('partition.not_owner', `server ${this.serverId} does not serve a range holding this key`, { retryable: true, context: { serverId: this.serverId } });
  }

  private servingPartition(held: Held): Partition {
    if (held.state.kind !== 'serving') throw new StorageError('partition.not_owner', `partition ${held.entry.partitionId} is not served here`, { retryable: true });
    return held.state.partition;
  }

  /** Just before answering: still the owner? A read answers not_owner; a write's outcome is unknown. */
  private confirm(held: Held, method: string): void {
    if (this.leaseValid() && this.held.get(held.entry.partitionId) === held) return;
    this.counters.notOwnerAnswers += 1;
    if (isReadMethod(method)) throw new StorageError('partition.not_owner', `ownership of partition ${held.entry.partitionId} lapsed during a read`, { retryable: true });
    throw new StorageError('partition.unavailable', `ownership of partition ${held.entry.partitionId} lapsed during a write: outcome unknown`, { retryable: true });
  }

  private onRequestError(held: Held, method: string, error: unknown): unknown {
    if (!isStorageError(error)) return error;
    if (error.code === 'partition.closed') {
      return new StorageError('partition.not_owner', `partition ${held.entry.partitionId} is closed here`, { retryable: true });
    }
    // A write's unknown outcome fails the partition; a read's unavailable answer does only when the
    // partition itself failed (a read of data may fail alone; the partition still serves).
    if (error.code === 'partition.unavailable' && held.state.kind === 'serving' && !isReadMethod(method)) {
      held.state = { kind: 'failed', partition: held.state.partition, cause: error };
    }
    this.noteFailure(held);
    return error;
  }

  private status(): ServerStatus {
    const partitions: PartitionStatus[] = [];
    for (const [partitionId, held] of this.held) {
      const stats = held.state.kind === 'serving' ? held.state.partition.stats() : null;
      partitions.push({
        partitionId, ownerEpoch: held.entry.ownerEpoch, state: held.state.kind,
        approximateBytes: stats === null ? 0 : approximateBytes(held.state.kind === 'serving' ? held.state.partition : null),
        lastSequence: stats?.lastSequence ?? 0,
        requestsPerSecond: held.load.requestsPerSecond(), servedMs: held.load.measuredMs(), inheritedFree: stats?.gc.inheritedFree ?? false,
      });
    }
    return { serverId: this.serverId, leaseValid: this.leaseValid(), partitions };
  }

  /** The held partition at `ownerEpoch`, serving under a valid lease (manager requests), else not_owner. */
  private servingAt(partitionId: number, ownerEpoch: number): { held: Held; partition: Partition } {
    const held = this.held.get(partitionId);
    if (held?.state.kind !== 'serving' || held.entry.ownerEpoch !== ownerEpoch || !this.leaseValid()) {
      throw new StorageError('partition.not_owner', `partition ${partitionId} is not served here at epoch ${ownerEpoch}`, { retryable: true });
    }
    return { held, partition: held.state.partition };
  }

  /**
   * Prepares the children of a partition this server owns at `ownerEpoch` (manager only). The key
   * is chosen while P still serves; P stops taking writes only for the copy.
   */
  private async split(partitionId: number, ownerEpoch: number, childIds: readonly [number, number], reason: 'size' | 'load'): Promise<SplitAnswer> {
    const { held, partition } = this.servingAt(partitionId, ownerEpoch);
    const boundary = this.options.table?.splitBoundary ?? rowPerGroup;
    const splitKey = await planSplit(partition, partitionId, boundary, reason === 'load' ? held.load.medianKey() : null);
    this.servingAt(partitionId, ownerEpoch);
    // From here P takes no writes; it is never reopened at this epoch (docs: "Splits").
    held.state = { kind: 'split' };
    await partition.stopWrites();
    try {
      const answer = await splitPartition({
        partition, entry: held.entry, childIds, streams: this.streamsFor(held.entry), manager: this.options.streamManager, client: this.client, clock: this.options.clock, splitKey,
      });
      if (!this.leaseValid()) throw new StorageError('partition.not_owner', 'lease lapsed during the split', { retryable: true });
      this.logger.info({ partitionId, reason, splitKey: answer.splitKey, children: answer.children.map((child) => child.partitionId) }, 'split prepared');
      return answer;
    } finally {
      await partition.close();
    }
  }

  /** Prepares the merge of two neighbours this server owns at their epochs (manager only; docs: "Merges"). */
  private async merge(left: { partitionId: number; ownerEpoch: number }, right: { partitionId: number; ownerEpoch: number }, mergedId: number): Promise<MergeAnswer> {
    const sides = [this.servingAt(left.partitionId, left.ownerEpoch), this.servingAt(right.partitionId, right.ownerEpoch)] as const;
    if (sides[0].held.entry.high !== sides[1].held.entry.low) throw new StorageError('config.invalid', `partitions ${left.partitionId} and ${right.partitionId} are not neighbours`);
    // From here neither takes writes; neither is reopened at this epoch.
    for (const side of sides) side.held.state = { kind: 'merged' };
    try {
      for (const side of sides) await side.partition.stopWrites();
      const answer = await mergePartitions({
        left: { partition: sides[0].partition, entry: sides[0].held.entry }, right: { partition: sides[1].partition, entry: sides[1].held.entry },
        mergedId, manager: this.options.streamManager, client: this.client, clock: this.options.clock,
      });
      if (!this.leaseValid()) throw new StorageError('partition.not_owner', 'lease lapsed during the merge', { retryable: true });
      this.logger.info({ left: left.partitionId, right: right.partitionId, mergedId, rows: answer.rows }, 'merge prepared');
      return answer;
    } finally {
      for (const side of sides) await side.partition.close();
    }
  }

  /**
   * Closes a partition for a move (manager only; docs: "Moves"): a checkpoint while it still
   * serves (the new owner's replay is then short), then no more writes, then closed. Answers only
   * once closed, so every acknowledgement precedes the manager's reassignment.
   */
  private async release(partitionId: number, ownerEpoch: number): Promise<{ lastSequence: number }> {
    const { held, partition } = this.servingAt(partitionId, ownerEpoch);
    await partition.checkpoint();
    this.servingAt(partitionId, ownerEpoch);
    held.state = { kind: 'released' };
    try {
      await partition.stopWrites();
      const lastSequence = partition.stats().lastSequence;
      if (!this.leaseValid()) throw new StorageError('partition.not_owner', 'lease lapsed during the release', { retryable: true });
      this.logger.info({ partitionId, ownerEpoch, lastSequence }, 'partition released for a move');
      return { lastSequence };
    } finally {
      await partition.close();
    }
  }
}

function isReadMethod(method: string): boolean {
  return method === 'partition.get' || method === 'partition.getMany' || method === 'partition.scan' || method === 'partition.readData';
}

/** Memtable bytes plus the data bytes of every run: what a split decision compares. */
export function approximateBytes(partition: Partition | null): number {
  if (partition === null) return 0;
  return partition.stats().memtableBytes + partition.runDataBytes();
}
