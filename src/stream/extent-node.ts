// The extent node (docs/stream-protocol.md, "Roles"): one ExtentStore on one Disk, served over
// the Network seam. It orders appends as a primary, applies them in order as a secondary, seals,
// serves verified reads, copies sealed extents from other nodes, and obeys only the stream
// manager of the highest epoch it has seen. It never decides placement.
//
//   client ──extent.append──► primary ──extent.replicate (parallel)──► secondaries
//                               │ local write (ordered)                 │ local write at offset
//                               └──── ack = local ∧ every secondary durable, in offset order
//
// The same class runs in-process (embedded mode, simulation: SimNetwork, SimDisk, ManualClock)
// and as the `kura extent-node` process (TcpNetwork, RealDisk, SystemClock).
//
// Invariants:
// - P1: an append is acknowledged only when the local ExtentStore.append and every secondary's
//   resolved (each after fsync); any failure stops appends on that extent (ExtentAppendLog).
// - P2: read bytes come only from ExtentStore.read, which verifies every block's CRC32C; a
//   corrupt block is answered with extent.corrupt and its bytes are never sent.
// - P3: node.wipe removes nothing unless the stream manager confirms the release token, which
//   must name this node and disk; creates and copies are refused while a wipe is under way.
// - epochs: a command of an epoch below node.json's highestEpoch is rejected (EpochFence).
// - every outgoing call carries a deadline (replicate, read, every manager call).
// - observability: appends, reads, seals, copies, corruption and disk failure are published on
//   the diagnostics channels of src/util/stream-events.ts (a boolean check when nobody listens);
//   every corrupt block, including those found while the store recovers at start, is logged
//   (constant message; extentId, offset, reason, nodeId; never data bytes), published and
//   reported to the manager.
// - damaged replicas (docs/stream-protocol.md, "Damaged replicas"; the store's recovery marks them
//   durably): extent.info answers damaged: true, extent.append/extent.replicate answer
//   extent.failed (for that extent only; the node is not failed), extent.seal works as usual,
//   and every start reports each one to the manager (manager.reportCorruption).
// - the node is failed (heartbeats say so, /readyz 503) once its store failed, also by a
//   background sync with no request in flight, or a request met an I/O error.
// Fault model: peers may be slow, down, partitioned or answer errors; the local disk may fail
// (the node then reports failed: true in heartbeats); the process may be killed at any point —
// the ExtentStore's journal restores every acked append, and in-memory append ids are lost
// (docs: a retry may then apply twice across a seal; records carry their own sequence numbers).
import { pino } from 'pino';
import type { Logger } from 'pino';
import { z } from 'zod';
import {
  appendReplicaTimeoutMs, dataAppendBytesMax, extentBytesMax, nodeHeartbeatIntervalMs, readBytesMax, rereplicationBytesPerSecondMax,
  rereplicationChunkBytes, rpcDeadlineMsDefault, sealedAppendLogsRetainedMax,
} from '../constants.ts';
import type { DirectIoReport, Disk } from '../io/disk.ts';
import type { Network, RpcContext, RpcRequest, RpcResponse, RpcServer } from '../rpc/network.ts';
import { assert } from '../util/assert.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import { canary } from '../util/crc32c.ts';
import { StorageError, isStorageError } from '../util/errors.ts';
import { failpoint } from '../util/failpoints.ts';
import type { Random } from '../util/random.ts';
import { streamEvents } from '../util/stream-events.ts';
import type { EventChannel, OperationStatus } from '../util/stream-events.ts';
import { ByteRateLimiter } from './byte-rate-limiter.ts';
import { remainingMs, withDeadline } from './deadline.ts';
import { EpochFence } from './epoch-fence.ts';
import { ExtentAppendLog, asStorageError } from './extent-append-log.ts';
import type { AppendResult } from './extent-append-log.ts';
import { callRead, callReplicate } from './extent-node-rpc.ts';
import { ExtentStore } from './extent-store.ts';
import type { CorruptionEvent, ExtentInfo, ExtentStoreRecoveryReport, ExtentStoreStats } from './extent-store.ts';
import { extentNodeRequests, parseHeader } from './protocol.ts';
import type { ExtentNodeMethod, ReplicaLocation, StreamManagerApi } from './protocol.ts';
import type { Body } from '../util/body-parts.ts';

export interface ExtentNodeOptions {
  readonly nodeId: string;
  readonly disk: Disk;
  readonly clock: Clock;
  readonly random: Random;
  readonly network: Network;
  /** "host:port" to listen on (port 0 picks one). */
  readonly listenAddress: string;
  /** Address registered with the manager; defaults to the address the server reports. */
  readonly advertisedAddress?: string;
  readonly manager: StreamManagerApi;
  readonly faultDomain: string;
  readonly upgradeDomain: string;
  /** ExtentStore group commit (P4: an optimisation with an off switch). */
  readonly groupCommit: boolean;
  /** Bytes of verified blocks the ExtentStore keeps for reads (default extentReadCacheBytes; 0 = off, P4's switch). */
  readonly readCacheBytes?: number;
  readonly logger?: Logger;
  readonly heartbeatIntervalMs?: number;
  /** Re-replication bandwidth of this node; defaults to rereplicationBytesPerSecondMax. */
  readonly rereplicationBytesPerSecond?: number;
}

export interface ExtentNodeStatus {
  readonly nodeId: string;
  readonly address: string;
  readonly faultDomain: string;
  readonly upgradeDomain: string;
  readonly disk: string;
  readonly highestEpoch: number;
  readonly extentCount: number;
  /** The extents this node holds (the manager reconciles its replica map with them). */
  readonly extentIds: readonly number[];
  readonly registered: boolean;
  readonly failed: boolean;
  /** Replicas marked damaged (docs/formats/damage-marker.md). */
  readonly damagedExtentIds: readonly number[];
}

type Header<M extends ExtentNodeMethod> = z.infer<(typeof extentNodeRequests)[M]>;

const extentNodeMethods = new Set<string>(Object.keys(extentNodeRequests));
/** I/O errors after which the node reports itself failed to the manager. extent.failed is not
 * one: it also means "this extent stopped accepting" (a replica failed, or it is damaged); a
 * failed store is seen through ExtentStore.failed instead. */
const diskFailureCodes = new Set(['io.eio', 'io.fsync_failed', 'io.enospc']);
const noBody = Buffer.alloc(0);

function isExtentNodeMethod(method: string): method is ExtentNodeMethod {
  return extentNodeMethods.has(method);
}

function respond(header: RpcResponse['header'], body: Buffer = noBody): RpcResponse {
  return { header, body };
}

export class ExtentNode {
  readonly nodeId: string;
  private readonly options: ExtentNodeOptions;
  private readonly clock: Clock;
  private readonly store: ExtentStore;
  private readonly fence: EpochFence;
  private readonly logger: Logger;
  private readonly copyLimiter: ByteRateLimiter;
  /** Append ordering state of open extents, and of recently sealed ones (for findAppend). */
  private readonly logs = new Map<number, ExtentAppendLog>();
  private server: RpcServer | null = null;
  private heartbeatTimer: TimerHandle | null = null;
  private heartbeatRun: Promise<void> = Promise.resolve();
  private registered = false;
  /** A request met an I/O error (the store's own failure is read from it). */
  private ioFailed = false;
  private wiping = false;
  private stopped = false;

  private constructor(options: ExtentNodeOptions, store: ExtentStore, fence: EpochFence, logger: Logger) {
    this.nodeId = options.nodeId;
    this.options = options;
    this.clock = options.clock;
    this.store = store;
    this.fence = fence;
    this.logger = logger;
    this.copyLimiter = new ByteRateLimiter({ clock: options.clock, bytesPerSecond: options.rereplicationBytesPerSecond ?? rereplicationBytesPerSecondMax });
  }

  /** Opens the store (journal replay), loads node.json, listens, registers (once, then in the background). */
  static async start(options: ExtentNodeOptions): Promise<ExtentNode> {
    const logger = (options.logger ?? pino({ level: 'silent' })).child({ component: 'extent-node', nodeId: options.nodeId });
    const fence = await EpochFence.load(options.disk, options.nodeId);
    let node: ExtentNode | null = null;
    // Recovery (inside open) may find damaged blocks before the node exists: keep them for it.
    const foundAtOpen: CorruptionEvent[] = [];
    const store = await ExtentStore.open({
      disk: options.disk,
      clock: options.clock,
      groupCommit: options.groupCommit,
      ...(options.readCacheBytes === undefined ? {} : { readCacheBytes: options.readCacheBytes }),
      onCorruption: (event) => {
        if (node === null) foundAtOpen.push(event);
        else node.onLocalCorruption(event);
      },
      onFailure: (error) => {
        logger.error({ err: error }, 'local disk failed; reporting failed to the manager');
        streamEvents.extentNodeFailed.publish({ nodeId: options.nodeId, code: error.code, message: error.message });
      },
    });
    const created = new ExtentNode(options, store, fence, logger);
    node = created;
    for (const event of foundAtOpen) created.onLocalCorruption(event);
    created.server = await options.network.listen(options.listenAddress, (request, context) => created.handle(request, context));
    logger.info({ address: created.address, highestEpoch: fence.highest, disk: options.disk.name }, 'extent node listening');
    await created.beat();
    created.reportDamage();
    return created;
  }

  get address(): string {
    const server = this.server;
    assert(server !== null, 'extent node has no server');
    return this.options.advertisedAddress ?? server.address;
  }

  get highestEpoch(): number {
    return this.fence.highest;
  }

  status(): ExtentNodeStatus {
    const extents = this.store.list();
    return {
      extentIds: extents.map((extent) => extent.extentId),
      nodeId: this.nodeId,
      address: this.address,
      faultDomain: this.options.faultDomain,
      upgradeDomain: this.options.upgradeDomain,
      disk: this.options.disk.name,
      highestEpoch: this.fence.highest,
      extentCount: extents.length,
      registered: this.registered,
      failed: this.failed,
      damagedExtentIds: extents.filter((extent) => this.store.damage(extent.extentId) !== null).map((extent) => extent.extentId),
    };
  }

  /** The local disk failed: the store failed (any write path, background syncs included) or a
   * request met an I/O error. Read at every heartbeat, /readyz and scrape, never cached. */
  get failed(): boolean {
    return this.ioFailed || this.store.failed;
  }

  /** Ready to serve: started, not stopping, and the local disk has not failed (GET /readyz). */
  get ready(): boolean {
    return !this.stopped && !this.failed;
  }

  /** The store's counters (appends, fsyncs, journal batches) for metrics. */
  storeStats(): ExtentStoreStats {
    return this.store.stats();
  }

  /** What the store's recovery at start found and did (P7), for metrics and operators. */
  storeRecovery(): ExtentStoreRecoveryReport {
    return this.store.recovery;
  }

  /** How the disk's large reads and writes went, O_DIRECT or buffered (null: a disk without O_DIRECT). */
  diskDirectIo(): DirectIoReport | null {
    return this.options.disk.directIo?.() ?? null;
  }

  private statusResponse(): RpcResponse {
    const status = this.status();
    return respond({ ...status, extentIds: [...status.extentIds], damagedExtentIds: [...status.damagedExtentIds] });
  }

  /** Stops heartbeats and the server, then closes the store. In-flight calls may fail. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.heartbeatTimer?.cancel();
    await this.heartbeatRun;
    await this.server?.close();
    for (const log of this.logs.values()) await log.seal();
    await this.store.close();
    this.logger.info('extent node stopped');
  }

  /** The RPC handler: parses the header with its schema and dispatches exhaustively. */
  async handle(request: RpcRequest, context: RpcContext): Promise<RpcResponse> {
    if (this.stopped) throw new StorageError('rpc.unreachable', `extent node ${this.nodeId} is stopping`, { retryable: true });
    const method = request.method;
    if (!isExtentNodeMethod(method)) throw new StorageError('config.invalid', `extent node has no method ${JSON.stringify(method)}`);
    try {
      return await this.dispatch(method, request, context);
    } catch (error) {
      if (isStorageError(error) && diskFailureCodes.has(error.code) && !this.failed) {
        this.ioFailed = true;
        this.logger.error({ err: error, method }, 'local disk failed; reporting failed to the manager');
        streamEvents.extentNodeFailed.publish({ nodeId: this.nodeId, code: error.code, message: error.message });
      }
      throw error;
    }
  }

  private dispatch(method: ExtentNodeMethod, request: RpcRequest, context: RpcContext): Promise<RpcResponse> {
    const { header, body } = request;
    switch (method) {
      case 'extent.create': return this.create(parseHeader(extentNodeRequests[method], header, method));
      case 'extent.append': return this.appendObserved(parseHeader(extentNodeRequests[method], header, method), body, context);
      case 'extent.replicate': return this.replicateObserved(parseHeader(extentNodeRequests[method], header, method), body, context);
      case 'extent.read': return this.readObserved(parseHeader(extentNodeRequests[method], header, method));
      case 'extent.info': return Promise.resolve(this.info(parseHeader(extentNodeRequests[method], header, method)));
      case 'extent.seal': return this.seal(parseHeader(extentNodeRequests[method], header, method));
      case 'extent.findAppend': return this.findAppend(parseHeader(extentNodeRequests[method], header, method), context);
      case 'extent.copyFrom': return this.copyFrom(parseHeader(extentNodeRequests[method], header, method), context);
      case 'extent.remove': return this.remove(parseHeader(extentNodeRequests[method], header, method));
      case 'extent.verify': return this.verify(parseHeader(extentNodeRequests[method], header, method));
      case 'node.status': return Promise.resolve(this.statusResponse());
      case 'node.wipe': return this.wipe(parseHeader(extentNodeRequests[method], header, method));
    }
  }

  // ---- published operations (src/util/stream-events.ts) ---------------------------------------

  private appendObserved(request: Header<'extent.append'>, body: Body, context: RpcContext): Promise<RpcResponse> {
    return observe(this.clock, streamEvents.extentAppend, () => this.append(request, body, context), (status, durationMs) => ({
      nodeId: this.nodeId, extentId: request.extentId, role: 'primary', bytes: body.length, durationMs, status,
    }));
  }

  private replicateObserved(request: Header<'extent.replicate'>, body: Body, context: RpcContext): Promise<RpcResponse> {
    return observe(this.clock, streamEvents.extentAppend, () => this.replicate(request, body, context), (status, durationMs) => ({
      nodeId: this.nodeId, extentId: request.extentId, role: 'secondary', bytes: body.length, durationMs, status,
    }));
  }

  private readObserved(request: Header<'extent.read'>): Promise<RpcResponse> {
    return observe(this.clock, streamEvents.extentRead, () => this.read(request), (status, durationMs) => ({
      nodeId: this.nodeId, extentId: request.extentId, bytes: request.length, durationMs, status,
    }));
  }

  // ---- create, info, remove, verify ----------------------------------------------------------

  private async create(request: Header<'extent.create'>): Promise<RpcResponse> {
    await this.fence.admit(request.epoch, 'extent.create');
    this.refuseWhileWiping('extent.create');
    const existing = this.store.info(request.extentId);
    if (existing !== null) {
      if (existing.streamId === request.streamId && existing.state.kind === 'open' && existing.length === 0) return respond({ created: false });
      throw new StorageError('extent.exists', `extent ${request.extentId} already exists on ${this.nodeId}`, { context: { extentId: request.extentId } });
    }
    await this.store.create({ streamId: request.streamId, extentId: request.extentId, epoch: request.epoch });
    this.logger.debug({ extentId: request.extentId, streamId: request.streamId }, 'extent created');
    return respond({ created: true });
  }

  private info(request: Header<'extent.info'>): RpcResponse {
    // For a seal: stop acknowledging first, so the length answered covers every ack (P1).
    if (request.seal === true && this.requireInfo(request.extentId).state.kind === 'open') this.openLog(request.extentId).freeze();
    const info = this.requireInfo(request.extentId);
    const damaged = this.store.damage(request.extentId) !== null;
    return respond({ ...info, state: { ...info.state }, ...(damaged ? { damaged: true } : {}) });
  }

  private async remove(request: Header<'extent.remove'>): Promise<RpcResponse> {
    await this.fence.admit(request.epoch, 'extent.remove');
    const removed = await this.removeLocal(request.extentId);
    return respond({ removed });
  }

  private async removeLocal(extentId: number): Promise<boolean> {
    const log = this.logs.get(extentId);
    if (log !== undefined) await log.seal();
    this.logs.delete(extentId);
    if (this.store.info(extentId) === null) return false;
    await this.store.remove(extentId);
    this.logger.info({ extentId }, 'extent removed');
    return true;
  }

  private async verify(request: Header<'extent.verify'>): Promise<RpcResponse> {
    this.requireInfo(request.extentId);
    const result = await this.store.verify(request.extentId);
    return respond({ extentId: request.extentId, blocks: result.blocks, corruptBlocks: result.corruptBlocks });
  }

  private requireInfo(extentId: number): ExtentInfo {
    const info = this.store.info(extentId);
    if (info === null) throw new StorageError('extent.not_found', `extent ${extentId} is not on node ${this.nodeId}`, { context: { extentId } });
    return info;
  }

  // ---- append (primary) and replicate (secondary) --------------------------------------------

  /** The append log of an open extent, created from the store's durable length on first use. */
  private openLog(extentId: number): ExtentAppendLog {
    const known = this.logs.get(extentId);
    if (known !== undefined) return known;
    const info = this.requireInfo(extentId);
    if (info.state.kind === 'sealed') throw new StorageError('extent.sealed', `extent ${extentId} is sealed`, { context: { extentId } });
    const log = new ExtentAppendLog({
      extentId,
      length: info.length,
      clock: this.clock,
      write: async (offset, data) => {
        await this.store.append(extentId, offset, data);
      },
    });
    this.logs.set(extentId, log);
    return log;
  }

  private async append(request: Header<'extent.append'>, body: Body, context: RpcContext): Promise<RpcResponse> {
    await this.fence.admit(request.epoch, 'extent.append');
    checkAppendSize(body.length);
    this.refuseDamaged(request.extentId);
    const [primary, ...secondaries] = request.replicas;
    if (primary?.nodeId !== this.nodeId) {
      throw new StorageError('config.invalid', `extent.append for extent ${request.extentId} sent to ${this.nodeId}, not its primary`);
    }
    const log = this.openLog(request.extentId);
    const known = log.lookup(request.appendId);
    if (known !== null) return respond({ ...(await known.ack) });
    log.checkAccepting();
    checkExtentRoom(request.extentId, log.nextOffset, body.length);
    const { offset, local } = log.writeNext(body);
    const deadlineMs = Math.min(appendReplicaTimeoutMs, remainingMs(this.clock, context.deadlineAtMs));
    const remote = secondaries.map((replica) => this.replicateTo(replica, { ...request, offset }, body, deadlineMs));
    // Test-only canary: acknowledge without the last secondary, so the suite proves it notices.
    const awaited = canary.ackBeforeLastReplica ? remote.slice(0, -1) : remote;
    for (const late of remote.slice(awaited.length)) late.catch((error: unknown) => this.onAppendFailure(log, error));
    const all = Promise.all([local, ...awaited]).then((): AppendResult => ({ offset, length: body.length }));
    all.catch((error: unknown) => this.onAppendFailure(log, error));
    const ack = log.unlessFrozen(log.inOrder(all));
    log.track(request.appendId, offset, ack);
    await failpoint('extent-node.append.before-ack');
    return respond({ ...(await ack) });
  }

  private async replicateTo(
    replica: ReplicaLocation,
    request: { readonly epoch: number; readonly extentId: number; readonly appendId: string; readonly offset: number },
    body: Body,
    deadlineMs: number,
  ): Promise<void> {
    const target = { network: this.options.network, address: replica.address, deadlineMs };
    const result = await callReplicate(target, { epoch: request.epoch, extentId: request.extentId, appendId: request.appendId, offset: request.offset }, body);
    if (result.offset !== request.offset || result.length !== body.length) {
      throw new StorageError('extent.offset_mismatch', `replica ${replica.nodeId} applied append ${request.appendId} at ${result.offset}, expected ${request.offset}`);
    }
  }

  private onAppendFailure(log: ExtentAppendLog, error: unknown): void {
    const failure = asStorageError(error);
    if (log.stateKind === 'accepting') {
      this.logger.warn({ extentId: log.extentId, code: failure.code, err: failure }, 'append failed; extent stops accepting appends until sealed');
    }
    log.fail(failure);
  }

  private async replicate(request: Header<'extent.replicate'>, body: Body, context: RpcContext): Promise<RpcResponse> {
    await this.fence.admit(request.epoch, 'extent.replicate');
    checkAppendSize(body.length);
    this.refuseDamaged(request.extentId);
    checkExtentRoom(request.extentId, request.offset, body.length);
    const log = this.openLog(request.extentId);
    const first = this.applyAt(log, request, body);
    if (first !== null) return this.answerReplicate(await first);
    await log.waitForOffset(request.offset, Math.min(appendReplicaTimeoutMs, remainingMs(this.clock, context.deadlineAtMs)));
    const second = this.applyAt(log, request, body);
    assert(second !== null, 'replicate still ahead of the log after its gap filled');
    return this.answerReplicate(await second);
  }

  private async answerReplicate(result: AppendResult): Promise<RpcResponse> {
    await failpoint('extent-node.replicate.before-answer');
    return respond({ ...result });
  }

  /** A secondary's step: the ack of a retry or of a write at the log's end; null while ahead. */
  private applyAt(log: ExtentAppendLog, request: Header<'extent.replicate'>, body: Body): Promise<AppendResult> | null {
    const known = log.lookup(request.appendId);
    if (known !== null) {
      if (known.offset !== request.offset) throw mismatch(log, request.offset, `append ${request.appendId} was applied at ${known.offset}`);
      return known.ack;
    }
    log.checkAccepting();
    if (request.offset > log.nextOffset) return null;
    if (request.offset < log.nextOffset) throw mismatch(log, request.offset, 'offset already written by another append');
    const { offset, local } = log.writeNext(body);
    const ack = log.unlessFrozen(local.then((): AppendResult => ({ offset, length: body.length })));
    log.track(request.appendId, offset, ack);
    return ack;
  }

  /** A damaged replica never takes an append (it may lack acknowledged bytes below its length's peers). */
  private refuseDamaged(extentId: number): void {
    const damage = this.store.damage(extentId);
    if (damage === null) return;
    throw new StorageError('extent.failed', `extent ${extentId} is damaged on ${this.nodeId} (${damage.reason}): it takes no appends`, {
      context: { extentId, damaged: true },
    });
  }

  // ---- read, seal, findAppend -----------------------------------------------------------------

  private async read(request: Header<'extent.read'>): Promise<RpcResponse> {
    if (request.length > readBytesMax) {
      throw new StorageError('config.invalid', `extent.read of ${request.length} bytes exceeds readBytesMax ${readBytesMax}`);
    }
    // A whole-block read answers the CRC its block check proved: no second pass over the bytes.
    const { data, crc32c: crc } = await this.store.readWithCrc(request.extentId, request.offset, request.length);
    assert(data.length === request.length, 'ExtentStore.read returned a short buffer');
    return respond({ crc32c: crc }, data);
  }

  private async seal(request: Header<'extent.seal'>): Promise<RpcResponse> {
    await this.fence.admit(request.epoch, 'extent.seal');
    const before = this.requireInfo(request.extentId);
    if (before.state.kind === 'sealed') {
      if (before.state.sealedLength === request.length) return respond({ sealedLength: request.length });
      throw new StorageError('extent.sealed', `extent ${request.extentId} is already sealed at ${before.state.sealedLength}, not ${request.length}`);
    }
    const log = this.openLog(request.extentId);
    await log.seal();
    const info = this.requireInfo(request.extentId);
    if (info.length < request.length) {
      throw new StorageError('extent.out_of_range', `extent ${request.extentId} holds ${info.length} bytes here, cannot seal at ${request.length}`, {
        context: { extentId: request.extentId, length: info.length, sealLength: request.length },
      });
    }
    await this.store.seal(request.extentId, request.length);
    this.retainSealedLog(request.extentId);
    this.logger.info({ extentId: request.extentId, sealedLength: request.length, truncated: info.length - request.length }, 'extent sealed');
    streamEvents.extentSeal.publish({ nodeId: this.nodeId, extentId: request.extentId, sealedLength: request.length, truncatedBytes: info.length - request.length });
    return respond({ sealedLength: request.length });
  }

  /** Keeps the append ids of recently sealed extents, dropping the oldest past the bound. */
  private retainSealedLog(extentId: number): void {
    const log = this.logs.get(extentId);
    if (log === undefined) return;
    this.logs.delete(extentId);
    this.logs.set(extentId, log);
    let sealed = [...this.logs.values()].filter((entry) => entry.stateKind === 'sealed');
    while (sealed.length > sealedAppendLogsRetainedMax) {
      const oldest = sealed[0];
      if (oldest === undefined) break;
      this.logs.delete(oldest.extentId);
      sealed = sealed.slice(1);
    }
  }

  private async findAppend(request: Header<'extent.findAppend'>, context: RpcContext): Promise<RpcResponse> {
    const info = this.requireInfo(request.extentId);
    const known = this.logs.get(request.extentId)?.lookup(request.appendId) ?? null;
    if (known === null) return respond({ found: false });
    let result: AppendResult;
    try {
      result = await withDeadline(this.clock, remainingMs(this.clock, context.deadlineAtMs), 'pending append', known.ack);
    } catch {
      return respond({ found: false });
    }
    const visible = info.state.kind === 'sealed' ? info.state.sealedLength : info.length;
    if (result.offset + result.length > visible) return respond({ found: false });
    return respond({ found: true, offset: result.offset, length: result.length });
  }

  // ---- copyFrom (re-replication) -------------------------------------------------------------

  private async copyFrom(request: Header<'extent.copyFrom'>, context: RpcContext): Promise<RpcResponse> {
    await this.fence.admit(request.epoch, 'extent.copyFrom');
    this.refuseWhileWiping('extent.copyFrom');
    if (request.sealedLength > extentBytesMax) throw new StorageError('extent.too_large', `copy of ${request.sealedLength} bytes exceeds extentBytesMax`);
    const existing = this.store.info(request.extentId);
    const intact = this.store.damage(request.extentId) === null;
    // A copy already here counts only if every block verifies: it may be an old replica that was
    // replaced because it went bad (found by the simulator: seed 204084518668 re-recorded a
    // bit-flipped orphan forever instead of copying).
    if (intact && existing?.state.kind === 'sealed' && existing.state.sealedLength === request.sealedLength
      && (await this.store.verify(request.extentId)).corruptBlocks.length === 0) {
      return respond({ sealedLength: request.sealedLength, bytesCopied: 0 });
    }
    if (existing !== null) await this.removeLocal(request.extentId);
    await this.store.create({ streamId: request.streamId, extentId: request.extentId, epoch: request.epoch });
    const startedAtMs = this.clock.monotonicMs();
    try {
      await this.copyBlocks(request, context.deadlineAtMs);
      await this.store.seal(request.extentId, request.sealedLength);
    } catch (error) {
      await this.removeLocal(request.extentId).catch(() => false);
      const durationMs = this.clock.monotonicMs() - startedAtMs;
      streamEvents.extentCopy.publish({ nodeId: this.nodeId, extentId: request.extentId, bytes: 0, durationMs, status: statusOf(error) });
      throw error;
    }
    const elapsedMs = this.clock.monotonicMs() - startedAtMs;
    this.logger.info({ extentId: request.extentId, bytes: request.sealedLength, elapsedMs }, 'extent copied');
    streamEvents.extentCopy.publish({ nodeId: this.nodeId, extentId: request.extentId, bytes: request.sealedLength, durationMs: elapsedMs, status: 'ok' });
    return respond({ sealedLength: request.sealedLength, bytesCopied: request.sealedLength });
  }

  /** Pulls [0, sealedLength) piece by piece within the copy's deadline and bandwidth bound. */
  private async copyBlocks(request: Header<'extent.copyFrom'>, deadlineAtMs: number): Promise<void> {
    const sources = request.sources.filter((source) => source.nodeId !== this.nodeId);
    if (sources.length === 0) throw new StorageError('config.invalid', `extent.copyFrom of ${request.extentId} names no other node as source`);
    for (let offset = 0; offset < request.sealedLength;) {
      const length = Math.min(rereplicationChunkBytes, request.sealedLength - offset);
      await this.copyLimiter.take(length);
      if (remainingMs(this.clock, deadlineAtMs) === 0) {
        throw new StorageError('rpc.timeout', `copy of extent ${request.extentId} passed its deadline at offset ${offset}`, { retryable: true });
      }
      const data = await this.readFromSources(sources, request.extentId, offset, length, deadlineAtMs);
      await this.store.append(request.extentId, offset, data);
      offset += length;
    }
  }

  /** Verified bytes from the first source that has them; a corrupt or absent source is skipped. */
  private async readFromSources(sources: readonly ReplicaLocation[], extentId: number, offset: number, length: number, deadlineAtMs: number): Promise<Buffer> {
    const failures: string[] = [];
    for (const source of sources) {
      const target = { network: this.options.network, address: source.address, deadlineMs: Math.min(rpcDeadlineMsDefault, remainingMs(this.clock, deadlineAtMs)) };
      try {
        return await callRead(target, { extentId, offset, length });
      } catch (error) {
        const failure = asStorageError(error);
        failures.push(`${source.nodeId}: ${failure.code}`);
        this.logger.warn({ extentId, offset, source: source.nodeId, code: failure.code }, 'copy source failed; trying the next');
      }
    }
    throw new StorageError('stream.unavailable', `no source could serve extent ${extentId} at ${offset}: ${failures.join(', ')}`, {
      retryable: true,
      context: { extentId, offset, length },
    });
  }

  // ---- node.wipe (P3) -------------------------------------------------------------------------

  private async wipe(request: Header<'node.wipe'>): Promise<RpcResponse> {
    const claims = unverifiedTokenClaims(request.token);
    if (claims?.nodeId !== this.nodeId || claims.disk !== this.options.disk.name) {
      throw new StorageError('node.protected', `wipe refused: the token does not name node ${this.nodeId} and disk ${this.options.disk.name}`);
    }
    this.refuseWhileWiping('node.wipe');
    this.wiping = true;
    try {
      const extentIds = this.store.list().map((extent) => extent.extentId);
      const valid = await withDeadline(this.clock, rpcDeadlineMsDefault, 'manager.checkToken', this.options.manager.checkToken(request.token));
      if (!valid) throw new StorageError('node.protected', `wipe refused: the stream manager did not confirm the release token for ${this.nodeId}`);
      for (const extentId of extentIds) await this.removeLocal(extentId);
      this.logger.warn({ removedExtents: extentIds.length }, 'node wiped with a valid release token');
      return respond({ removedExtents: extentIds.length });
    } finally {
      this.wiping = false;
    }
  }

  private refuseWhileWiping(what: string): void {
    if (this.wiping) throw new StorageError('node.protected', `${what} refused: node ${this.nodeId} is being wiped`, { retryable: true });
  }

  // ---- registration and heartbeats -----------------------------------------------------------

  /** One registration or heartbeat, then the next one is scheduled (with ±10% jitter). */
  private beat(): Promise<void> {
    const run = this.beatOnce().finally(() => this.scheduleBeat());
    this.heartbeatRun = run;
    return run;
  }

  private scheduleBeat(): void {
    if (this.stopped) return;
    const intervalMs = this.options.heartbeatIntervalMs ?? nodeHeartbeatIntervalMs;
    // Whole milliseconds: a virtual clock must stay integral (timestamps are stored as integers).
    const jitterMs = Math.round(intervalMs * 0.1 * (this.options.random.next() * 2 - 1));
    this.heartbeatTimer = this.clock.setTimer(intervalMs + jitterMs, () => {
      void this.beat();
    });
  }

  private async beatOnce(): Promise<void> {
    const manager = this.options.manager;
    try {
      const answer = this.registered
        ? await withDeadline(this.clock, rpcDeadlineMsDefault, 'manager.heartbeat', manager.heartbeat({ nodeId: this.nodeId, extentCount: this.store.list().length, failed: this.failed }))
        : await withDeadline(this.clock, rpcDeadlineMsDefault, 'manager.registerNode', manager.registerNode(this.registration()));
      if (!this.registered) this.logger.info({ epoch: answer.epoch }, 'registered with the stream manager');
      this.registered = true;
      await this.fence.observe(answer.epoch);
    } catch (error) {
      const failure = asStorageError(error);
      if (failure.code === 'node.not_found') this.registered = false;
      this.logger.warn({ code: failure.code, message: failure.message, registered: this.registered }, 'stream manager did not answer the heartbeat');
    }
  }

  private registration(): { nodeId: string; address: string; faultDomain: string; upgradeDomain: string; disk: string } {
    return {
      nodeId: this.nodeId,
      address: this.address,
      faultDomain: this.options.faultDomain,
      upgradeDomain: this.options.upgradeDomain,
      disk: this.options.disk.name,
    };
  }

  /**
   * Every damaged replica (its recovery, now or at an earlier start, could not prove it holds every
   * acknowledged append) is logged and reported to the manager, at every start: the manager seals
   * an open one over its undamaged replicas and replaces this one.
   */
  private reportDamage(): void {
    for (const extent of this.store.list()) {
      const damage = this.store.damage(extent.extentId);
      if (damage === null) continue;
      const extentId = extent.extentId;
      this.logger.error({ extentId, reason: damage.reason, length: extent.length, markedAtLength: damage.length }, 'local replica damaged: it may lack acknowledged appends; reporting it');
      const report = withDeadline(this.clock, rpcDeadlineMsDefault, 'manager.reportCorruption', this.options.manager.reportCorruption({ extentId, nodeId: this.nodeId }));
      report.catch((error: unknown) => this.logger.warn({ extentId, err: error }, 'damage report failed; the manager finds it when it reconciles this node'));
    }
  }

  /** A block of a local replica failed its check: log (no data bytes), publish, tell the manager. */
  private onLocalCorruption(event: CorruptionEvent): void {
    const extentId = event.extentId;
    // nodeId is bound by this.logger (child logger of the node).
    this.logger.error({ extentId, offset: event.offset, reason: event.reason }, 'corrupt block found in a local replica; reporting it');
    streamEvents.extentCorruption.publish({ nodeId: this.nodeId, extentId, offset: event.offset, reason: event.reason });
    const report = withDeadline(this.clock, rpcDeadlineMsDefault, 'manager.reportCorruption', this.options.manager.reportCorruption({ extentId, nodeId: this.nodeId }));
    report.catch((error: unknown) => this.logger.warn({ extentId, err: error }, 'corruption report failed'));
  }
}

function statusOf(error: unknown): OperationStatus {
  return isStorageError(error) ? error.code : 'internal';
}

/**
 * Runs `run` and publishes its outcome on `channel`. With no subscriber it only runs `run`: no
 * clock read, no payload (the hot path pays one boolean check).
 */
async function observe<T, E extends object>(
  clock: Clock,
  channel: EventChannel<E>,
  run: () => Promise<T>,
  toEvent: (status: OperationStatus, durationMs: number) => E,
): Promise<T> {
  if (!channel.hasSubscribers) return run();
  const startedMs = clock.monotonicMs();
  try {
    const result = await run();
    channel.publish(toEvent('ok', clock.monotonicMs() - startedMs));
    return result;
  } catch (error) {
    channel.publish(toEvent(statusOf(error), clock.monotonicMs() - startedMs));
    throw error;
  }
}

function checkAppendSize(bytes: number): void {
  if (bytes === 0 || bytes > dataAppendBytesMax) {
    throw new StorageError('config.invalid', `append of ${bytes} bytes: must be 1..${dataAppendBytesMax}`);
  }
}

/** An extent full to extentBytesMax answers extent.too_large: the client seals and extends. */
function checkExtentRoom(extentId: number, offset: number, bytes: number): void {
  if (offset + bytes > extentBytesMax) {
    throw new StorageError('extent.too_large', `extent ${extentId} would pass extentBytesMax at ${offset + bytes}`, { context: { extentId, offset } });
  }
}

function mismatch(log: ExtentAppendLog, offset: number, why: string): StorageError {
  return new StorageError('extent.offset_mismatch', `extent ${log.extentId}: replicate at ${offset} refused: ${why}`, {
    context: { extentId: log.extentId, offset, nextOffset: log.nextOffset },
  });
}

const tokenClaims = z.object({ nodeId: z.string(), disk: z.string() });

/**
 * The node and disk a release token names, read without checking its signature (the stream
 * manager checks that); a token for another node or disk is refused before asking it.
 * Format (src/stream/release-token.ts): base64url(JSON claims) "." base64url(HMAC).
 */
function unverifiedTokenClaims(token: string): z.infer<typeof tokenClaims> | null {
  const payload = token.split('.')[0] ?? '';
  try {
    const parsed = tokenClaims.safeParse(JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  }
}
