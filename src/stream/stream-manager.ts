// The stream manager (docs/stream-protocol.md): the only writer of stream metadata. It registers
// extent nodes and tracks their liveness, checks every node that registers again against the
// replica map (missed seals are applied, short or damaged replicas replaced), creates streams,
// seals extents at the smallest length the answering undamaged replicas hold (seal-rule.ts) and
// extends streams with new extents, places replicas, repairs under-replicated extents, and
// answers the P3 questions: which replicas are on a node, and may it be wiped (release tokens).
//
// Invariants:
// - leadership is an epoch: start() increments sm/epoch by a compare txn; every command to a
//   node carries it and every MetaStore write compares it (ManagerStore), so a superseded
//   manager stops instead of overwriting;
// - durable first: a seal is recorded in the MetaStore before any node is told to seal; a new
//   extent is recorded (with its placement, bumping placementVersion of the chosen nodes in the
//   same txn) only after every chosen node created it; a copied replica is recorded only after
//   the copy succeeded;
// - a replica leaves the replica map only when a verified copy replaces it, so the map never
//   under-states what a node holds (release tokens are computed from it);
// - sealAndExtend runs one at a time per stream, so concurrent calls for one extent make one
//   new extent;
// - a decision that finds a record changed by another manager (a stream extended, an extent gone)
//   ends as fenced (extent.stale_epoch, the manager stops) when the epoch moved, or as a plain
//   conflict that sealAndExtend decides again on the current records; never as an assertion
//   (found by the simulator: seed 141941150494, a stale leader after a leader change); getStream
//   reads again when an extent the stream listed was dropped between its reads;
// - a seal never goes below what an undamaged answering replica holds, nor (when every answer is
//   damaged) below what any answering replica holds; a replica that did not take a seal is
//   checked again (registration, repair audit) until it is sealed or replaced;
// - no access to process, environment or wall-clock globals: clock, random, network and
//   MetaStore are injected, so a seeded simulation reproduces a run.
//
// Fault model: nodes may die, return, answer late or never, or have been fenced by a newer
// manager; the MetaStore may be unavailable or written by a newer leader; clients may call
// anything concurrently and repeat calls. Node and MetaStore failures are StorageErrors to the
// caller (retryable where a retry can succeed); a superseded manager answers extent.stale_epoch.
import { randomBytes } from 'node:crypto';
import { pino, type Logger } from 'pino';
import { dropExtentsPerCallMax, nodeHeartbeatTimeoutMs, releaseTokenValidityMs, repairIntervalMs } from '../constants.ts';
import type { MetaStore } from '../metastore/meta-store.ts';
import type { Network } from '../rpc/network.ts';
import { assert } from '../util/assert.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import { StorageError, isStorageError } from '../util/errors.ts';
import { failpoint } from '../util/failpoints.ts';
import type { Random } from '../util/random.ts';
import { streamEvents } from '../util/stream-events.ts';
import { ManagerCommands } from './manager-commands.ts';
import { ManagerStore, type CommitPlan, type Versioned } from './manager-store.ts';
import { NodeRegistry } from './node-registry.ts';
import { placeReplicas, type PlacementCandidate } from './placement.ts';
import { extentKey, nodeKey, removalKey, streamKey } from './protocol.ts';
import type {
  DropExtentsRequest, ExtentRecord, ExtentView, NodeRecord, NodeRegistration, RemovalRecord, SealAndExtendRequest, StreamManagerApi, StreamRecord, StreamView,
} from './protocol.ts';
import { protectionCanary, releaseTokenSecretBytes, signReleaseToken, verifyReleaseToken } from './release-token.ts';
import { Rereplicator, type ReconcileReport, type RepairReport } from './rereplication.ts';
import { sealDecision } from './seal-rule.ts';
import type { ReplicaLengthAnswer } from './seal-rule.ts';
import { KeyedLock } from './serial-lock.ts';

export interface StreamManagerOptions {
  readonly metaStore: MetaStore;
  readonly network: Network;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger?: Logger;
  readonly replicaCountDefault: number;
  readonly nodeHeartbeatTimeoutMs?: number;
}

/** Why a token is not (or no longer) valid; null when it is. */
export type TokenRefusal = 'signature' | 'epoch' | 'expired' | 'node' | 'disk' | 'placement' | 'replicas' | 'returned';

/** extent.create attempts on fresh nodes when a chosen node fails to create. */
const placementAttemptsMax = 3;

/** sealAndExtend attempts when another writer changed the stream under it (meta.conflict). */
const sealAndExtendAttemptsMax = 3;

/** getStream reads when an extent the stream lists is dropped between the reads. */
const streamViewAttemptsMax = 3;

/** An extent created on its nodes, not yet recorded. */
interface PlacedExtent {
  readonly extentId: number;
  readonly nodeIds: readonly string[];
}

type Settled<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

/** A promise that never rejects: its outcome is awaited later, after other work, without an unhandled rejection meanwhile. */
function settled<T>(promise: Promise<T>): Promise<Settled<T>> {
  return promise.then((value) => ({ ok: true as const, value }), (error: unknown) => ({ ok: false as const, error }));
}

export class StreamManager implements StreamManagerApi {
  private readonly options: StreamManagerOptions;
  private readonly logger: Logger;
  private readonly store: ManagerStore;
  private readonly registry: NodeRegistry;
  private readonly commands: ManagerCommands;
  private readonly streamLocks = new KeyedLock<number>();
  private readonly rereplicator: Rereplicator;
  private secret: Buffer | null = null;
  private removalTimer: TimerHandle | null = null;
  private removalPass: Promise<void> | null = null;
  private closing = false;

  constructor(options: StreamManagerOptions) {
    assert(Number.isInteger(options.replicaCountDefault) && options.replicaCountDefault >= 1, 'replicaCountDefault must be >= 1');
    this.options = options;
    this.logger = (options.logger ?? pino({ level: 'silent' })).child({ component: 'stream-manager' });
    this.store = new ManagerStore(options.metaStore);
    this.registry = new NodeRegistry({ clock: options.clock, heartbeatTimeoutMs: options.nodeHeartbeatTimeoutMs ?? nodeHeartbeatTimeoutMs });
    this.commands = new ManagerCommands({ network: options.network, epoch: () => this.store.epoch });
    this.rereplicator = new Rereplicator({
      store: this.store,
      registry: this.registry,
      commands: this.commands,
      clock: options.clock,
      random: options.random,
      logger: this.logger,
      sealAndExtend: (request) => this.sealAndExtend(request),
    });
  }

  /** Becomes the leader: takes the next epoch (compare txn) and loads the token secret. */
  async start(): Promise<{ epoch: number }> {
    assert(this.secret === null, 'stream manager started twice');
    const { epoch, secret } = await this.store.acquire(() => randomBytes(releaseTokenSecretBytes));
    this.secret = secret;
    this.logger.info({ epoch }, 'stream manager leading');
    return { epoch };
  }

  get epoch(): number {
    return this.store.epoch;
  }

  /** True once a newer manager took over; every call then fails with extent.stale_epoch. */
  get fenced(): boolean {
    return this.store.fenced;
  }

  /** Stops the repair loop (if running) and waits for a pass in progress. */
  async close(): Promise<void> {
    this.closing = true;
    this.removalTimer?.cancel();
    this.removalTimer = null;
    await this.rereplicator.stopLoop();
    if (this.removalPass !== null) await this.removalPass;
  }

  // ---- nodes ----------------------------------------------------------------------------------

  async registerNode(registration: NodeRegistration): Promise<{ epoch: number }> {
    this.ready();
    const lost = this.registry.isLost(registration.nodeId);
    const record = await this.store.commit('registerNode', async () => {
      const existing = await this.store.readNode(registration.nodeId);
      const next = registeredRecord(registration, existing?.value ?? null, lost);
      return { compare: [{ key: nodeKey(registration.nodeId), modRevision: existing?.modRevision ?? 0 }], puts: [{ key: nodeKey(registration.nodeId), value: next }], result: next };
    });
    this.registry.registered(registration.nodeId);
    this.logger.info({ nodeId: record.nodeId, lifecycle: record.lifecycle, faultDomain: record.faultDomain }, 'node registered');
    // Whatever it was away for (a restart inside the heartbeat timeout included), it may have
    // missed seals or lost unsynced bytes: check it against the map, in the background so the
    // node's registration call is not held up by calls back to it.
    if (record.lifecycle === 'returned' || (await this.liveReplicas(registration.nodeId)).length > 0) {
      this.rereplicator.requestReconcile(registration.nodeId, 'registration');
    }
    // Dropped extents it missed the extent.remove of: in the background, as the check above.
    void this.finishRemovals(registration.nodeId).catch((error: unknown) => {
      this.logger.warn({ nodeId: registration.nodeId, err: error }, 'pending extent removals of a registering node failed; retried at repair');
    });
    return { epoch: this.store.epoch };
  }

  async heartbeat(beat: { nodeId: string; extentCount: number; failed: boolean }): Promise<{ epoch: number }> {
    this.ready();
    const node = await this.store.readNode(beat.nodeId);
    if (node === null) throw new StorageError('node.not_found', `node ${beat.nodeId} is not registered`);
    // 'repair': a manager (maybe a previous leader) declared it lost, so the same applies.
    if (this.registry.heartbeat(beat.nodeId, beat) === 'lost' || node.value.lifecycle === 'repair') {
      // Its replicas may have been replaced while it was away: it must register again and be
      // reconciled as `returned` before it is trusted.
      throw new StorageError('node.not_found', `node ${beat.nodeId} was lost; it must register again`, { retryable: true });
    }
    return { epoch: this.store.epoch };
  }

  /**
   * Starts draining a node: it gets no new replicas and its replicas stop counting toward their
   * targets, so repair passes copy them elsewhere (it stays a copy source). Once the map records
   * nothing on it, releaseToken succeeds. Draining a node that holds the only live copy of
   * something is safe: nothing leaves the map until a verified copy replaces it.
   */
  async drainNode(nodeId: string): Promise<void> {
    this.ready();
    await this.store.commit('drainNode', async () => {
      const node = await this.store.readNode(nodeId);
      if (node === null) throw new StorageError('node.not_found', `node ${nodeId} is not registered`);
      if (node.value.lifecycle !== 'in_service') {
        throw new StorageError('config.invalid', `node ${nodeId} is ${node.value.lifecycle}, only an in-service node can drain`);
      }
      const next: NodeRecord = { ...node.value, lifecycle: 'draining' };
      return { compare: [{ key: nodeKey(nodeId), modRevision: node.modRevision }], puts: [{ key: nodeKey(nodeId), value: next }], result: undefined };
    });
    this.logger.warn({ nodeId }, 'node draining');
  }

  /** Checks a node against the replica map now (registration and the repair loop also do). */
  async reconcileNode(nodeId: string): Promise<ReconcileReport> {
    this.ready();
    return this.rereplicator.reconcile(nodeId, 'request');
  }

  /** Resolves when no background check (started by a registration) is running. */
  async reconciliationsIdle(): Promise<void> {
    await this.rereplicator.reconciliationsIdle();
  }

  /** The last finished check of a node against the map (e.g. the one its registration started). */
  lastReconcile(nodeId: string): ReconcileReport | null {
    return this.rereplicator.lastReconcile(nodeId);
  }

  // ---- streams --------------------------------------------------------------------------------

  async createStream(request: { name: string; replicaCount?: number }): Promise<StreamView> {
    this.ready();
    const replicaCount = request.replicaCount ?? this.options.replicaCountDefault;
    const streamId = await this.store.allocateId('stream');
    const placed = await this.placeNewExtent(streamId, replicaCount);
    await this.store.commit('createStream', async () => {
      const plan = await this.newExtentPlan(streamId, placed);
      const stream: StreamRecord = { streamId, name: request.name, replicaCount, extentIds: [placed.extentId] };
      return {
        compare: [...plan.compare, { key: streamKey(streamId), modRevision: 0 }],
        puts: [...plan.puts, { key: streamKey(streamId), value: stream }],
        result: undefined,
      };
    });
    this.rereplicator.noteCreated(placed.nodeIds);
    this.logger.info({ streamId, extentId: placed.extentId, replicas: placed.nodeIds }, 'stream created');
    return this.getStream(streamId);
  }

  async getStream(streamId: number): Promise<StreamView> {
    this.ready();
    for (let attempt = 1; attempt < streamViewAttemptsMax; attempt++) {
      const view = await this.readStreamView(streamId);
      if (view !== null) return view;
    }
    const view = await this.readStreamView(streamId);
    return view ?? this.store.conflict(`stream ${streamId} kept listing extents whose records were gone`, { streamId });
  }

  /** The stream's view, or null if an extent it lists was dropped between the reads (read again). */
  private async readStreamView(streamId: number): Promise<StreamView | null> {
    const stream = await this.requireStream(streamId);
    const nodes = new Map((await this.store.readNodes()).map((n) => [n.value.nodeId, n.value]));
    const extents: ExtentView[] = [];
    for (const extentId of stream.value.extentIds) {
      const extent = await this.store.readExtent(extentId);
      if (extent === null) return null; // dropped (dropExtents) after the stream record was read
      extents.push(this.extentView(extent.value, nodes));
    }
    const ownerEpoch = stream.value.ownerEpoch;
    return { streamId, name: stream.value.name, extents, ...(ownerEpoch === undefined ? {} : { ownerEpoch }) };
  }

  /**
   * Seals the extent at the smallest length its answering replicas hold and, if it was the
   * stream's tail, appends a new extent. Idempotent: a repeated or concurrent call for an extent
   * already sealed and extended returns the current stream. With an ownerEpoch (docs: "Owner
   * epochs"): below the stream's → stream.fenced; above it → takeover: the epoch is recorded
   * first, then the current tail (whatever extentId names) is sealed and the stream extended.
   */
  async sealAndExtend(request: SealAndExtendRequest): Promise<StreamView> {
    this.ready();
    for (let attempt = 1; ; attempt++) {
      try {
        await this.streamLocks.run(request.streamId, () => this.sealAndExtendLocked(request));
        break;
      } catch (error) {
        // Changed under us by a writer that did not fence us: decide again on what it wrote
        // (a stream already extended past the extent makes the next attempt a no-op).
        if (!isStorageError(error, 'meta.conflict') || attempt >= sealAndExtendAttemptsMax) throw error;
        this.logger.warn({ ...request, attempt, err: error }, 'sealAndExtend met a concurrent change; deciding again');
      }
    }
    return this.getStream(request.streamId);
  }

  /** One sealAndExtend under the stream's lock. */
  private async sealAndExtendLocked(request: SealAndExtendRequest): Promise<void> {
    let stream = await this.requireStream(request.streamId);
    if (!stream.value.extentIds.includes(request.extentId)) {
      throw new StorageError('extent.not_found', `extent ${request.extentId} is not in stream ${request.streamId}`);
    }
    let extentId = request.extentId;
    if (request.ownerEpoch !== undefined && request.ownerEpoch !== (stream.value.ownerEpoch ?? 0)) {
      stream = await this.recordOwnerEpoch(request.streamId, request.ownerEpoch);
      extentId = stream.value.extentIds.at(-1) ?? extentId;
    }
    if (stream.value.extentIds.at(-1) !== extentId) {
      await this.sealExtent(extentId, { isTail: false });
      return;
    }
    // A roll: the next extent is placed and created while the tail is sealed (both are waits on
    // replicas and the MetaStore, independent until the extend txn), so a stream waits for the
    // longer of the two, not their sum. It is recorded only after the seal, as before.
    const creating = settled(this.placeNewExtent(request.streamId, stream.value.replicaCount));
    try {
      await this.sealExtent(extentId, { isTail: true });
    } catch (error) {
      await this.discardUnrecorded(await creating);
      throw error;
    }
    const created = await creating;
    if (!created.ok) throw created.error;
    await this.extendStream(request.streamId, extentId, created.value);
  }

  /**
   * Removes an extent created for a roll whose seal then failed: it was never recorded, so
   * nothing refers to it. A replica that does not take the remove is an orphan, which
   * reconciliation reports (as after a crash between create and record).
   */
  private async discardUnrecorded(created: Settled<PlacedExtent>): Promise<void> {
    if (!created.ok) return;
    const addresses = await this.replicaAddresses(created.value.nodeIds);
    await Promise.allSettled(addresses.map((replica) => this.commands.remove(replica.address, created.value.extentId)));
  }

  /** Takeover by a newer owner: recorded before anything is sealed; an older owner is refused. */
  private async recordOwnerEpoch(streamId: number, ownerEpoch: number): Promise<Versioned<StreamRecord>> {
    await this.store.commit('ownerEpoch', async () => {
      const current = await this.requireStream(streamId);
      const recorded = current.value.ownerEpoch ?? 0;
      if (ownerEpoch < recorded) {
        throw new StorageError('stream.fenced', `stream ${streamId} is owned at epoch ${recorded}; epoch ${ownerEpoch} is fenced`, {
          context: { streamId, ownerEpoch, recorded },
        });
      }
      if (ownerEpoch === recorded) return { compare: [], puts: [], result: undefined };
      const next: StreamRecord = { ...current.value, ownerEpoch };
      return { compare: [{ key: streamKey(streamId), modRevision: current.modRevision }], puts: [{ key: streamKey(streamId), value: next }], result: undefined };
    });
    this.logger.info({ streamId, ownerEpoch }, 'stream owner epoch recorded');
    return this.requireStream(streamId);
  }

  /**
   * Garbage collection by the stream's owner (docs/stream-protocol.md, "Dropping extents"):
   * removes sealed, non-tail extents from the stream and deletes their records in one txn that
   * also records a removal entry per extent (durable first), then tells their replicas. Fenced by
   * the owner epoch; idempotent for extents already dropped.
   */
  async dropExtents(request: DropExtentsRequest): Promise<{ dropped: readonly number[] }> {
    this.ready();
    if (request.extentIds.length === 0 || request.extentIds.length > dropExtentsPerCallMax) {
      throw new StorageError('config.invalid', `dropExtents takes 1..${dropExtentsPerCallMax} extents, got ${request.extentIds.length}`);
    }
    const dropped = await this.streamLocks.run(request.streamId, () => this.store.commit('dropExtents', () => this.dropPlan(request)));
    if (dropped.length > 0) this.logger.info({ streamId: request.streamId, dropped, ownerEpoch: request.ownerEpoch }, 'extents dropped from stream');
    await Promise.all(dropped.map((extentId) => this.finishRemoval(extentId)));
    return { dropped };
  }

  /** The drop txn: stream record without the extents, their records deleted, removal entries put. */
  private async dropPlan(request: DropExtentsRequest): Promise<CommitPlan<number[]>> {
    const stream = await this.requireStream(request.streamId);
    checkDropOwner(stream.value, request.ownerEpoch);
    const compare = [{ key: streamKey(request.streamId), modRevision: stream.modRevision }];
    const puts: { key: string; value: unknown }[] = [];
    const deletes: string[] = [];
    const dropped: number[] = [];
    for (const extentId of new Set(request.extentIds)) {
      const extent = await this.store.readExtent(extentId);
      if (!stream.value.extentIds.includes(extentId)) {
        if (extent === null) continue; // dropped already: a retry
        throw new StorageError('config.invalid', `extent ${extentId} is not in stream ${request.streamId}`, { context: { extentId } });
      }
      // The stream and its extents' records go in one txn: a newer leader dropped it between the reads.
      if (extent === null) return this.store.conflict(`stream ${request.streamId} lists extent ${extentId}, which has no record`, { extentId });
      if (extent.value.state.kind !== 'sealed' || stream.value.extentIds.at(-1) === extentId) {
        throw new StorageError('config.invalid', `extent ${extentId} is open or the tail of stream ${request.streamId}: only sealed, non-tail extents are dropped`, { context: { extentId } });
      }
      compare.push({ key: extentKey(extentId), modRevision: extent.modRevision }, { key: removalKey(extentId), modRevision: 0 });
      deletes.push(extentKey(extentId));
      const removal: RemovalRecord = { extentId, streamId: request.streamId, nodeIds: [...extent.value.replicas] };
      puts.push({ key: removalKey(extentId), value: removal });
      dropped.push(extentId);
    }
    if (dropped.length === 0) return { compare: [], puts: [], result: [] };
    const next: StreamRecord = { ...stream.value, extentIds: stream.value.extentIds.filter((extentId) => !dropped.includes(extentId)) };
    return { compare, puts: [...puts, { key: streamKey(request.streamId), value: next }], deletes, result: dropped };
  }

  /**
   * Sends extent.remove for a dropped extent to every replica still in its removal entry and
   * takes each confirmed node out of it (the entry goes when empty). `onlyNodeId`: just that node
   * (it registered again). Failures leave the node in the entry for the next attempt.
   */
  private async finishRemoval(extentId: number, onlyNodeId?: string): Promise<void> {
    const removal = await this.store.readRemoval(extentId);
    if (removal === null) return;
    const confirmed = new Set<string>();
    const targets = removal.value.nodeIds.filter((nodeIdValue) => onlyNodeId === undefined || nodeIdValue === onlyNodeId);
    await Promise.all(targets.map(async (nodeIdValue) => {
      const node = await this.store.readNode(nodeIdValue);
      if (node === null) {
        confirmed.add(nodeIdValue); // deregistered: nothing left to tell
        return;
      }
      try {
        await this.commands.remove(node.value.address, extentId);
        confirmed.add(nodeIdValue);
      } catch (error) {
        this.logger.warn({ extentId, nodeId: nodeIdValue, err: error }, 'extent.remove of a dropped extent failed; retried at registration and repair');
      }
    }));
    if (confirmed.size === 0) return;
    await this.store.commit('removal confirmed', async () => {
      const current = await this.store.readRemoval(extentId);
      if (current === null) return { compare: [], puts: [], result: undefined };
      const nodeIds = current.value.nodeIds.filter((nodeIdValue) => !confirmed.has(nodeIdValue));
      const compare = [{ key: removalKey(extentId), modRevision: current.modRevision }];
      if (nodeIds.length === 0) return { compare, puts: [], deletes: [removalKey(extentId)], result: undefined };
      return { compare, puts: [{ key: removalKey(extentId), value: { ...current.value, nodeIds } }], result: undefined };
    });
  }

  /** Resends extent.remove for every pending removal (of one node, or all); errors are logged. */
  async finishRemovals(onlyNodeId?: string): Promise<number> {
    this.ready();
    const pending = (await this.store.readRemovals()).filter((r) => onlyNodeId === undefined || r.value.nodeIds.includes(onlyNodeId));
    for (const removal of pending) await this.finishRemoval(removal.value.extentId, onlyNodeId);
    return (await this.store.readRemovals()).length;
  }

  async reportCorruption(report: { extentId: number; nodeId: string }): Promise<void> {
    this.ready();
    const extent = await this.store.readExtent(report.extentId);
    if (extent === null) throw new StorageError('extent.not_found', `extent ${report.extentId} has no record`);
    if (!extent.value.replicas.includes(report.nodeId)) return; // already replaced
    this.rereplicator.markBad(report.extentId, report.nodeId);
    this.logger.warn(report, 'replica reported corrupt; scheduled for repair');
    if (extent.value.state.kind === 'open') await this.sealAndExtend({ streamId: extent.value.streamId, extentId: report.extentId });
  }

  // ---- repair ---------------------------------------------------------------------------------

  /** One re-replication pass (see Rereplicator.repairOnce), then pending extent removals. */
  async repairOnce(): Promise<RepairReport> {
    this.ready();
    const report = await this.rereplicator.repairOnce();
    await this.finishRemovals();
    return report;
  }

  /** Runs repair passes (and pending removals) every intervalMs on the injected clock until close(). */
  startRepairLoop(intervalMs: number = repairIntervalMs): void {
    this.ready();
    this.rereplicator.startLoop(intervalMs);
    this.scheduleRemovals(intervalMs);
  }

  private scheduleRemovals(intervalMs: number): void {
    this.removalTimer = this.options.clock.setTimer(intervalMs, () => {
      this.removalTimer = null;
      this.removalPass = this.finishRemovals()
        .then(() => undefined, (error: unknown) => { this.logger.warn({ err: error }, 'pending extent removals failed; retried next pass'); })
        .finally(() => {
          this.removalPass = null;
          if (!this.closing) this.scheduleRemovals(intervalMs);
        });
    });
  }

  /** Extents below their replica target at the last scan (kura_extents_below_target). */
  extentsBelowTarget(): number {
    return this.rereplicator.belowTarget;
  }

  /** Extents flagged sealedOverDamage at the last scan: P1 cannot be proven for them. */
  extentsSealedOverDamage(): number {
    return this.rereplicator.sealedOverDamage;
  }

  // ---- P3: protection ---------------------------------------------------------------------------

  /** Extents the replica map records on the node: its data is protected while this is non-empty,
   * whether or not the node is up (a down node's copy may be the last one). */
  async liveReplicas(nodeId: string): Promise<readonly number[]> {
    this.ready();
    const extents = await this.store.readExtents();
    return extents.filter((e) => e.value.replicas.includes(nodeId)).map((e) => e.value.extentId);
  }

  async releaseToken(nodeId: string): Promise<string> {
    this.ready();
    const node = await this.store.readNode(nodeId);
    if (node === null) throw new StorageError('node.not_found', `node ${nodeId} is not registered`);
    if (node.value.lifecycle === 'returned') {
      throw new StorageError('node.protected', `node ${nodeId} returned from repair and is not reconciled yet`, { context: { nodeId } });
    }
    const held = await this.liveReplicas(nodeId);
    if (held.length > 0 && !protectionCanary.skipLiveReplicaCheck) {
      throw new StorageError('node.protected', `node ${nodeId} holds ${held.length} live replicas`, { context: { nodeId, liveReplicas: held.length } });
    }
    await this.store.detectFencing();
    this.store.checkNotFenced();
    const claims = { nodeId, disk: node.value.disk, epoch: this.store.epoch, placementVersion: node.value.placementVersion, issuedAtMs: this.options.clock.nowMs() };
    this.logger.warn(claims, 'release token issued');
    return signReleaseToken(claims, this.requireSecret());
  }

  async checkToken(token: string): Promise<boolean> {
    const refusal = await this.tokenRefusal(token);
    if (refusal !== null) this.logger.warn({ refusal }, 'release token refused');
    return refusal === null;
  }

  /** Why a token does not permit a wipe now, or null if it does. */
  async tokenRefusal(token: string): Promise<TokenRefusal | null> {
    this.ready();
    const claims = verifyReleaseToken(token, this.requireSecret());
    if (claims === null) return 'signature';
    await this.store.detectFencing();
    if (this.store.fenced || claims.epoch !== this.store.epoch) return 'epoch';
    const ageMs = this.options.clock.nowMs() - claims.issuedAtMs;
    if (ageMs < 0 || ageMs > releaseTokenValidityMs) return 'expired';
    const node = await this.store.readNode(claims.nodeId);
    if (node === null) return 'node';
    if (node.value.disk !== claims.disk) return 'disk';
    if (node.value.placementVersion !== claims.placementVersion) return 'placement';
    if (node.value.lifecycle === 'returned') return 'returned';
    return (await this.liveReplicas(claims.nodeId)).length === 0 || protectionCanary.skipLiveReplicaCheck ? null : 'replicas';
  }

  // ---- internals --------------------------------------------------------------------------------

  private ready(): void {
    assert(this.secret !== null, 'stream manager used before start()');
    this.store.checkNotFenced();
  }

  private requireSecret(): Buffer {
    assert(this.secret !== null, 'stream manager used before start()');
    return this.secret;
  }

  private async requireStream(streamId: number): Promise<Versioned<StreamRecord>> {
    const stream = await this.store.readStream(streamId);
    if (stream === null) throw new StorageError('stream.not_found', `stream ${streamId} does not exist`);
    return stream;
  }

  private extentView(extent: ExtentRecord, nodes: ReadonlyMap<string, NodeRecord>): ExtentView {
    const replicas = extent.replicas.map((nodeIdValue) => {
      const node = nodes.get(nodeIdValue);
      assert(node !== undefined, `extent ${extent.extentId} names unknown node ${nodeIdValue}`);
      return { nodeId: node.nodeId, address: node.address };
    });
    return { extentId: extent.extentId, streamId: extent.streamId, replicas, state: extent.state, epoch: this.store.epoch };
  }

  /** Seal rule (seal-rule.ts): recorded before the nodes are told. */
  private async sealExtent(extentId: number, options: { readonly isTail: boolean }): Promise<number> {
    const extent = await this.store.readExtent(extentId);
    // Listed in the stream read under its lock: only another manager can have dropped it.
    if (extent === null) return this.store.conflict(`extent ${extentId} has no record: dropped by another manager`, { extentId });
    const addresses = await this.replicaAddresses(extent.value.replicas);
    if (extent.value.state.kind === 'sealed') {
      // Sealed but still the tail: a previous attempt stopped between seal and extend, so the
      // replicas may not all know yet. Tell them again before a new extent is published.
      if (options.isTail) await this.tellSealed(extentId, extent.value.state.sealedLength, addresses);
      return extent.value.state.sealedLength;
    }
    const { answers, silentAliveNodeIds } = await this.replicaLengths(extentId, addresses);
    if (answers.length === 0) {
      throw new StorageError('stream.unavailable', `no replica of extent ${extentId} answered extent.info`, { retryable: true, context: { extentId } });
    }
    const decision = sealDecision({ answers, silentAliveNodeIds });
    if (decision.kind === 'wait') {
      throw new StorageError('stream.unavailable', `extent ${extentId} not sealed: ${decision.reason}`, { retryable: true, context: { extentId } });
    }
    const sealedLength = await this.recordSeal(extentId, decision.length, decision.overDamage);
    await failpoint('stream-manager.seal.after-record');
    for (const nodeIdValue of decision.badNodeIds) this.rereplicator.markBad(extentId, nodeIdValue);
    const logFields = { extentId, sealedLength, answered: answers.length, replicas: addresses.length, damaged: answers.filter((a) => a.damaged).map((a) => a.nodeId) };
    if (decision.overDamage) this.logger.error(logFields, 'extent sealed over damaged replicas only: acknowledged bytes may be lost, verify it');
    else if (decision.badNodeIds.length > 0) this.logger.warn(logFields, 'extent sealed without its damaged replicas; they will be replaced');
    streamEvents.streamSeal.publish({
      streamId: extent.value.streamId, extentId, sealedLength, replicas: addresses.length, answered: answers.length,
      damage: decision.overDamage ? 'over_damage' : logFields.damaged.length > 0 ? 'excluded' : 'none',
    });
    await this.tellSealed(extentId, sealedLength, addresses);
    this.logger.info(logFields, 'extent sealed');
    return sealedLength;
  }

  /** extent.info of every replica: the answers, and the silent replicas on nodes still alive. */
  private async replicaLengths(extentId: number, replicas: readonly { nodeId: string; address: string }[]): Promise<{ answers: ReplicaLengthAnswer[]; silentAliveNodeIds: string[] }> {
    // seal: each replica stops acknowledging before it answers, so no append is acknowledged past
    // the length it reports (found by the simulator: seeds 935142667379, 204084518668).
    const settled = await Promise.allSettled(replicas.map((r) => this.commands.info(r.address, extentId, { seal: true })));
    const answers: ReplicaLengthAnswer[] = [];
    const silentAliveNodeIds: string[] = [];
    for (const [index, answer] of settled.entries()) {
      const replica = replicas[index];
      assert(replica !== undefined, 'one answer per replica');
      if (answer.status === 'fulfilled') answers.push({ nodeId: replica.nodeId, length: answer.value.length, damaged: answer.value.damaged === true });
      else if (this.registry.isAlive(replica.nodeId)) silentAliveNodeIds.push(replica.nodeId);
    }
    return { answers, silentAliveNodeIds };
  }

  /** Records the seal (durable first); a concurrent seal already recorded wins. */
  private async recordSeal(extentId: number, length: number, overDamage: boolean): Promise<number> {
    return this.store.commit('seal', async () => {
      const current = await this.store.readExtent(extentId);
      if (current === null) return this.store.conflict(`extent ${extentId} was dropped by another manager while being sealed`, { extentId });
      if (current.value.state.kind === 'sealed') return { compare: [], puts: [], result: current.value.state.sealedLength };
      const sealed: ExtentRecord = { ...current.value, state: { kind: 'sealed', sealedLength: length }, ...(overDamage ? { sealedOverDamage: true as const } : {}) };
      return { compare: [{ key: extentKey(extentId), modRevision: current.modRevision }], puts: [{ key: extentKey(extentId), value: sealed }], result: length };
    });
  }

  /**
   * Sends extent.seal to every replica and waits until one took it: an append needs every
   * replica, so one sealed replica already stops the old extent from acknowledging anything. The
   * others finish in the background; one that does not take it is remembered for the repair
   * audit, and is checked again when it registers.
   */
  private async tellSealed(extentId: number, length: number, replicas: readonly { nodeId: string; address: string }[]): Promise<void> {
    const attempts = replicas.map(async (replica) => {
      await this.commands.seal(replica.address, { extentId, length });
      return replica.nodeId;
    });
    for (const [index, attempt] of attempts.entries()) {
      attempt.catch((error: unknown) => {
        const nodeIdValue = replicas[index]?.nodeId;
        this.logger.warn({ extentId, nodeId: nodeIdValue, err: error }, 'replica did not take the seal; the repair audit checks it');
        if (nodeIdValue !== undefined) this.rereplicator.noteSealMissed(extentId, nodeIdValue);
      });
    }
    try {
      await Promise.any(attempts);
    } catch (error) {
      throw new StorageError('stream.unavailable', `no replica of extent ${extentId} took the seal`, { retryable: true, cause: error, context: { extentId } });
    }
  }

  /** Records `placed` (created on its nodes) as the stream's new tail after `sealedExtentId`. */
  private async extendStream(streamId: number, sealedExtentId: number, placed: PlacedExtent): Promise<void> {
    await failpoint('stream-manager.extend.after-create');
    await this.store.commit('extend', async () => {
      const current = await this.requireStream(streamId);
      if (current.value.extentIds.at(-1) !== sealedExtentId) {
        // Only another manager writes this stream while we hold its lock: a newer leader fences us.
        return this.store.conflict(`stream ${streamId} was extended by another manager`, { streamId, sealedExtentId, tail: current.value.extentIds.at(-1) });
      }
      const plan = await this.newExtentPlan(streamId, placed);
      const next: StreamRecord = { ...current.value, extentIds: [...current.value.extentIds, placed.extentId] };
      return {
        compare: [...plan.compare, { key: streamKey(streamId), modRevision: current.modRevision }],
        puts: [...plan.puts, { key: streamKey(streamId), value: next }],
        result: undefined,
      };
    });
    this.rereplicator.noteCreated(placed.nodeIds);
    this.logger.info({ streamId, sealedExtentId, extentId: placed.extentId, replicas: placed.nodeIds }, 'stream extended');
  }

  /** Chooses nodes, allocates an id and creates the extent on each; retries around failed nodes. */
  private async placeNewExtent(streamId: number, replicaCount: number): Promise<PlacedExtent> {
    const extentId = await this.store.allocateId('extent');
    const created = new Set<string>();
    const refused = new Set<string>();
    for (let attempt = 1; attempt <= placementAttemptsMax; attempt++) {
      const nodeIds = await this.choosePlacement(replicaCount, refused);
      const nodes = await this.replicaAddresses(nodeIds);
      const results = await Promise.allSettled(
        nodes.filter((n) => !created.has(n.nodeId)).map(async (n) => {
          await this.commands.create(n.address, { streamId, extentId });
          created.add(n.nodeId);
        }),
      );
      if (nodeIds.every((n) => created.has(n))) return { extentId, nodeIds };
      for (const n of nodeIds) {
        if (created.has(n)) continue;
        refused.add(n);
        this.registry.markUnreachable(n);
      }
      this.logger.warn({ extentId, refused: [...refused], failures: results.filter((r) => r.status === 'rejected').length }, 'extent.create failed; placing again, avoiding the refusing nodes until they heartbeat again');
    }
    throw new StorageError('stream.no_placement', `could not create extent ${extentId} on enough nodes`, { retryable: true, context: { extentId, refused: [...refused] } });
  }

  private async choosePlacement(replicaCount: number, refused: ReadonlySet<string>): Promise<readonly string[]> {
    const nodes = (await this.store.readNodes()).map((n) => n.value);
    const loads = await this.rereplicator.loads();
    const candidates: PlacementCandidate[] = nodes
      .filter((n) => this.registry.isPlacementEligible(n) && !refused.has(n.nodeId))
      .map((n) => ({ nodeId: n.nodeId, faultDomain: n.faultDomain, upgradeDomain: n.upgradeDomain, load: loads.get(n.nodeId) ?? 0 }));
    // Nodes a create failed on since their last heartbeat only when the others place fewer replicas.
    const reachable = candidates.filter((c) => !this.registry.isUnreachable(c.nodeId));
    const preferred = placeReplicas({ candidates: reachable, replicaCount }, this.options.random);
    const placement = preferred.nodeIds.length === replicaCount || reachable.length === candidates.length
      ? preferred
      : placeReplicas({ candidates, replicaCount }, this.options.random);
    if (placement.nodeIds.length === 0) {
      throw new StorageError('stream.no_placement', `no eligible node for a new extent (${nodes.length} registered)`, { retryable: true });
    }
    if (placement.shortfall > 0) {
      this.logger.warn({ replicaCount, placed: placement.nodeIds.length, shortfall: placement.shortfall }, 'fewer fault domains than replicas: extent placed with less redundancy');
    }
    return placement.nodeIds;
  }

  /** The extent record plus a placementVersion bump of each chosen node, compared on what was read. */
  private async newExtentPlan(streamId: number, placed: PlacedExtent): Promise<CommitPlan<undefined>> {
    const extent: ExtentRecord = { extentId: placed.extentId, streamId, replicas: [...placed.nodeIds], state: { kind: 'open' }, createdEpoch: this.store.epoch };
    const bump = await this.placementBump(placed.nodeIds);
    return {
      compare: [...bump.compare, { key: extentKey(placed.extentId), modRevision: 0 }],
      puts: [...bump.puts, { key: extentKey(placed.extentId), value: extent }],
      result: undefined,
    };
  }

  private async placementBump(nodeIds: readonly string[]): Promise<CommitPlan<undefined>> {
    const compare = [];
    const puts = [];
    for (const nodeIdValue of nodeIds) {
      const node = await this.store.readNode(nodeIdValue);
      assert(node !== null, `placed on unknown node ${nodeIdValue}`);
      compare.push({ key: nodeKey(nodeIdValue), modRevision: node.modRevision });
      puts.push({ key: nodeKey(nodeIdValue), value: { ...node.value, placementVersion: node.value.placementVersion + 1 } });
    }
    return { compare, puts, result: undefined };
  }

  private async replicaAddresses(nodeIds: readonly string[]): Promise<{ nodeId: string; address: string }[]> {
    const out = [];
    for (const nodeIdValue of nodeIds) {
      const node = await this.store.readNode(nodeIdValue);
      assert(node !== null, `replica on unknown node ${nodeIdValue}`);
      out.push({ nodeId: nodeIdValue, address: node.value.address });
    }
    return out;
  }
}

/** dropExtents is for the stream's current owner only (docs/stream-protocol.md, "Dropping extents"). */
function checkDropOwner(stream: StreamRecord, ownerEpoch: number): void {
  const recorded = stream.ownerEpoch ?? 0;
  if (ownerEpoch < recorded) {
    throw new StorageError('stream.fenced', `stream ${stream.streamId} is owned at epoch ${recorded}; epoch ${ownerEpoch} is fenced`, {
      context: { streamId: stream.streamId, ownerEpoch, recorded },
    });
  }
  if (ownerEpoch > recorded) {
    throw new StorageError('config.invalid', `stream ${stream.streamId} is owned at epoch ${recorded}: take it over (sealAndExtend) before dropping at ${ownerEpoch}`);
  }
}

/** The record after a registration: new nodes go in service; a lost or repaired one returns. */
function registeredRecord(registration: NodeRegistration, existing: NodeRecord | null, lost: boolean): NodeRecord {
  if (existing === null) return { ...registration, lifecycle: 'in_service', placementVersion: 0 };
  const away = lost || existing.lifecycle === 'repair' || existing.lifecycle === 'returned' || existing.disk !== registration.disk;
  const lifecycle = away && existing.lifecycle !== 'provisioning' ? 'returned' : existing.lifecycle === 'provisioning' ? 'in_service' : existing.lifecycle;
  return { ...registration, lifecycle, placementVersion: existing.placementVersion + 1 };
}
