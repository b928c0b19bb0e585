// Re-replication and reconciliation (docs/stream-protocol.md, "Re-replication" and "Node
// protection"): the stream manager's repair of extents below their replica target, and the
// check of a node that returns after being lost.
//
// A repair pass: mark nodes lost since the last pass as `repair` (durably), reconcile returned
// nodes and nodes whose registration-time check did not finish (ReplicaReconciler), audit a
// bounded slice of sealed replicas' lengths (replicas that missed a seal first), scan every
// extent, count its live replicas (node alive and in service, replica not known bad), and for
// each one below target (bounded per pass): seal it first if it is open and that helps (a
// replica of it is not live, or a better placement exists now: never just to make another
// equally short extent, which would churn one new extent per stream per pass; at most
// repairSealsPerPassMax seals per pass), pick a source set
// (alive nodes that hold it) and a target node obeying the placement rules against the replicas
// that stay, plan which not-live replica the copy replaces (replica-record.ts), send
// extent.copyFrom to the target, and only after it succeeded record the new replica in place of
// that one (one txn, bumping the target's placementVersion). The record re-checks the plan on the
// current map and node records in that txn: if the planned replica is live again (or gone), or
// the copy would share a domain or exceed the target, the copy is not recorded and is removed
// from the target (extent.remove).
//
// Invariants:
// - a replica leaves the map only in the txn that records its verified replacement (never on
//   suspicion), so a failed copy leaves the map exactly as it was;
// - a recorded copy never shares a fault or upgrade domain with another replica of its extent,
//   and never takes the extent past its replica target (decided on the map the txn compares);
// - one pass at a time; a pass touches at most repairExtentsPerPassMax extents;
// - known-bad replicas are remembered in memory only: after a manager restart they count as live
//   again until a read reports them (safe: they are still in the map, so still protected);
// - reconciliation (replica-reconciler.ts) seals what the map says is sealed, marks short,
//   missing or damaged replicas bad, reports (never deletes) extents the map does not give a
//   node, and only then puts a returned node back in service.
//
// Fault model: copies fail or time out (the target may even have written part: it is not in
// the map, so it is an orphan, reported on reconciliation); sources may be bad (the target
// verifies every block); the replica a copy was to replace may come back live while the copy
// runs (the copy is dropped); the manager may be fenced mid-pass (the pass stops, and a fenced
// manager removes no copy).
import type { Logger } from 'pino';
import { repairExtentsPerPassMax, repairSealsPerPassMax, rereplicationBytesPerSecondMax } from '../constants.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import { isStorageError } from '../util/errors.ts';
import { failpoint } from '../util/failpoints.ts';
import type { Random } from '../util/random.ts';
import { streamEvents } from '../util/stream-events.ts';
import type { ManagerCommands } from './manager-commands.ts';
import type { CommitPlan, ManagerStore, Versioned } from './manager-store.ts';
import type { NodeRegistry } from './node-registry.ts';
import { placeReplicas } from './placement.ts';
import { extentKey, nodeKey } from './protocol.ts';
import type { ExtentRecord, NodeRecord, ReplicaLocation } from './protocol.ts';
import { plannedVictim, recordDecision } from './replica-record.ts';
import type { DomainsOf, RecordDecision } from './replica-record.ts';
import { ReplicaReconciler } from './replica-reconciler.ts';
import type { ReconcileReport, ReconcileTrigger } from './replica-reconciler.ts';

export type { ReconcileReport, ReconcileTrigger } from './replica-reconciler.ts';

export interface RereplicatorOptions {
  readonly store: ManagerStore;
  readonly registry: NodeRegistry;
  readonly commands: ManagerCommands;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  readonly sealAndExtend: (request: { streamId: number; extentId: number }) => Promise<unknown>;
}

export interface RepairReport {
  readonly extentsScanned: number;
  readonly extentsBelowTarget: number;
  readonly extentsRepaired: number;
  readonly replicasCopied: number;
  readonly bytesCopied: number;
  /** Extents with no readable replica on an alive node: nothing to copy from now. */
  readonly extentsUnrecoverable: number;
  /** Extents no eligible target could be found for (too few domains). */
  readonly extentsWithoutTarget: number;
  /** Fault domains with a node eligible for placement (alive, in service) at this pass. */
  readonly faultDomainsEligible: number;
  readonly copyFailures: number;
  /** Copies not recorded (and removed from their target): the map changed while they ran. */
  readonly copiesDropped: number;
  /** Open extents this pass sealed (a replica lost, or a better placement now exists). */
  readonly extentsSealed: number;
  /** Open extents left for the next pass by repairSealsPerPassMax. */
  readonly extentsSealDeferred: number;
  readonly nodesMarkedLost: number;
  /** Nodes whose check against the map finished this pass (returned, or pending since registration). */
  readonly nodesReconciled: number;
  /** Sealed replicas whose length this pass's audit checked; of them, sealed now / marked bad. */
  readonly replicasAudited: number;
  readonly replicasResealed: number;
  readonly replicasMarkedBad: number;
  /** Extents flagged sealedOverDamage in the map (P1 cannot be proven for them). */
  readonly extentsSealedOverDamage: number;
  /** Time the pass took on the injected clock. */
  readonly durationMs: number;
  /** Lower bound of the copy time at rereplicationBytesPerSecondMax per target node. */
  readonly bandwidthBoundMs: number;
}

/** A finished copy to record: the extent, its new replica, and the replica it was planned to replace. */
interface RecordCopy {
  readonly extentId: number;
  readonly targetId: string;
  readonly victim: string | null;
  readonly replicaTarget: number;
}

type ExtentOutcome = 'healthy' | 'repaired' | 'unrecoverable' | 'no_target' | 'copy_failed' | 'copy_dropped' | 'seal_deferred';

interface PassState {
  nodes: Map<string, Versioned<NodeRecord>>;
  replicasCopied: number;
  bytesCopied: number;
  bytesPerTarget: Map<string, number>;
  /** Open extents this pass sealed (at most repairSealsPerPassMax). */
  seals: number;
}

export class Rereplicator {
  private readonly options: RereplicatorOptions;
  private readonly bad = new Map<number, Set<string>>();
  private readonly reconciler: ReplicaReconciler;
  private loadByNode: Map<string, number> | null = null;
  private belowTargetCount = 0;
  private sealedOverDamageCount = 0;
  /** extentsWithoutTarget and faultDomainsEligible last logged: the warning is logged when they change. */
  private shortfallLogged = '0';
  private loopTimer: TimerHandle | null = null;
  private loopIntervalMs = 0;
  private pass: Promise<RepairReport> | null = null;
  private stopped = false;

  constructor(options: RereplicatorOptions) {
    this.options = options;
    this.reconciler = new ReplicaReconciler({
      store: options.store,
      registry: options.registry,
      commands: options.commands,
      logger: options.logger,
      sealAndExtend: options.sealAndExtend,
      markBad: (extentId, nodeId) => this.markBad(extentId, nodeId),
      isBad: (extentId, nodeId) => this.isBad(extentId, nodeId),
    });
  }

  get belowTarget(): number {
    return this.belowTargetCount;
  }

  /** Extents flagged sealedOverDamage at the last scan. */
  get sealedOverDamage(): number {
    return this.sealedOverDamageCount;
  }

  /** Checks a node against the map now (see ReplicaReconciler.reconcile). */
  async reconcile(nodeId: string, trigger: ReconcileTrigger = 'request'): Promise<ReconcileReport> {
    return this.reconciler.reconcile(nodeId, trigger);
  }

  /** Starts a background check of a node (on registration); the repair pass retries it. */
  requestReconcile(nodeId: string, trigger: ReconcileTrigger): void {
    this.reconciler.requestReconcile(nodeId, trigger);
  }

  async reconciliationsIdle(): Promise<void> {
    await this.reconciler.idle();
  }

  lastReconcile(nodeId: string): ReconcileReport | null {
    return this.reconciler.lastReport(nodeId);
  }

  /** A replica did not take a seal: the next pass's audit checks it first. */
  noteSealMissed(extentId: number, nodeId: string): void {
    this.reconciler.noteSealMissed(extentId, nodeId);
  }

  markBad(extentId: number, nodeId: string): void {
    const set = this.bad.get(extentId) ?? new Set<string>();
    set.add(nodeId);
    this.bad.set(extentId, set);
  }

  isBad(extentId: number, nodeId: string): boolean {
    return this.bad.get(extentId)?.has(nodeId) ?? false;
  }

  /** Replicas per node, from the last scan plus placements since (placement load). */
  async loads(): Promise<ReadonlyMap<string, number>> {
    if (this.loadByNode === null) this.loadByNode = countLoads(await this.options.store.readExtents());
    return this.loadByNode;
  }

  noteCreated(nodeIds: readonly string[]): void {
    if (this.loadByNode === null) return;
    for (const nodeId of nodeIds) this.loadByNode.set(nodeId, (this.loadByNode.get(nodeId) ?? 0) + 1);
  }

  /** One pass; concurrent callers share the pass in progress. */
  async repairOnce(): Promise<RepairReport> {
    if (this.pass !== null) return this.pass;
    const pass = this.runPass().finally(() => {
      this.pass = null;
    });
    this.pass = pass;
    return pass;
  }

  startLoop(intervalMs: number): void {
    if (this.loopTimer !== null || this.stopped) return;
    this.loopIntervalMs = intervalMs;
    this.scheduleLoop();
  }

  async stopLoop(): Promise<void> {
    this.stopped = true;
    this.loopTimer?.cancel();
    this.loopTimer = null;
    if (this.pass !== null) await this.pass.catch(() => undefined);
    await this.reconciler.idle();
  }

  private scheduleLoop(): void {
    if (this.stopped) return;
    this.loopTimer = this.options.clock.setTimer(this.loopIntervalMs, () => {
      this.repairOnce().then(
        (report) => {
          if (report.extentsBelowTarget > 0) this.options.logger.info(report, 'repair pass');
          this.warnShortfall(report);
          this.scheduleLoop();
        },
        (error: unknown) => {
          this.options.logger.error({ err: error }, 'repair pass failed');
          if (isStorageError(error, 'extent.stale_epoch')) this.stopped = true;
          this.scheduleLoop();
        },
      );
    });
  }

  /** Says once per change why extents stay below target when placement has nowhere to put a copy. */
  private warnShortfall(report: RepairReport): void {
    const shortfall = report.extentsWithoutTarget === 0 ? '0' : `${report.extentsWithoutTarget}/${report.faultDomainsEligible}`;
    if (shortfall === this.shortfallLogged) return;
    this.shortfallLogged = shortfall;
    if (report.extentsWithoutTarget === 0) return;
    this.options.logger.warn(
      { extents: report.extentsWithoutTarget, faultDomainsEligible: report.faultDomainsEligible },
      'extents stay below their replica target: no eligible node in a fault domain they do not already use (add nodes in another fault domain, or bring the lost ones back)',
    );
  }

  private async runPass(): Promise<RepairReport> {
    const startedMs = this.options.clock.monotonicMs();
    const nodesMarkedLost = await this.markLostNodes();
    // Returned nodes first: a replica confirmed by reconciliation need not be copied.
    const nodesReconciled = await this.reconciler.reconcilePending();
    const { store } = this.options;
    // The audit before the count: a replica it marks bad is replaced in this same pass.
    const audit = await this.reconciler.audit(await store.readExtents());
    const state: PassState = { nodes: await this.readNodeMap(), replicasCopied: 0, bytesCopied: 0, bytesPerTarget: new Map(), seals: 0 };
    const extents = await store.readExtents();
    this.loadByNode = countLoads(extents);
    this.sealedOverDamageCount = extents.filter((e) => e.value.sealedOverDamage === true).length;
    const targets = await this.replicaTargets(extents);
    const below = extents.filter((e) => this.liveReplicaIds(e.value, state.nodes).length < (targets.get(e.value.streamId) ?? 0));
    const outcomes = new Map<ExtentOutcome, number>();
    for (const extent of below.slice(0, repairExtentsPerPassMax)) {
      const outcome = await this.repairExtent(extent.value.extentId, targets.get(extent.value.streamId) ?? 0, state);
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    const repaired = outcomes.get('repaired') ?? 0;
    this.belowTargetCount = below.length - repaired;
    const report: RepairReport = {
      extentsScanned: extents.length,
      extentsBelowTarget: below.length,
      extentsRepaired: repaired,
      replicasCopied: state.replicasCopied,
      bytesCopied: state.bytesCopied,
      extentsUnrecoverable: outcomes.get('unrecoverable') ?? 0,
      extentsWithoutTarget: outcomes.get('no_target') ?? 0,
      faultDomainsEligible: new Set([...state.nodes.values()].filter((n) => this.options.registry.isPlacementEligible(n.value)).map((n) => n.value.faultDomain)).size,
      copyFailures: outcomes.get('copy_failed') ?? 0,
      copiesDropped: outcomes.get('copy_dropped') ?? 0,
      extentsSealed: state.seals,
      extentsSealDeferred: outcomes.get('seal_deferred') ?? 0,
      nodesMarkedLost,
      nodesReconciled,
      ...audit,
      extentsSealedOverDamage: this.sealedOverDamageCount,
      durationMs: this.options.clock.monotonicMs() - startedMs,
      bandwidthBoundMs: Math.max(0, ...[...state.bytesPerTarget.values()].map((b) => (b / rereplicationBytesPerSecondMax) * 1000)),
    };
    publishPass(report);
    return report;
  }

  /** Replicas counting toward the target: node serving, replica not known bad. */
  private liveReplicaIds(extent: ExtentRecord, nodes: ReadonlyMap<string, Versioned<NodeRecord>>): string[] {
    return extent.replicas.filter((nodeId) => {
      const node = nodes.get(nodeId);
      return node !== undefined && this.options.registry.isServing(node.value) && !this.isBad(extent.extentId, nodeId);
    });
  }

  /** Brings one extent up to target, one copy at a time. */
  private async repairExtent(extentId: number, target: number, state: PassState): Promise<ExtentOutcome> {
    let outcome: ExtentOutcome = 'healthy';
    for (let step = 0; step < target; step++) {
      const current = await this.options.store.readExtent(extentId);
      if (current !== null && current.value.state.kind === 'open') {
        if (!this.sealHelps(current.value, state)) return 'no_target';
        if (state.seals >= repairSealsPerPassMax) return 'seal_deferred';
        state.seals += 1;
      }
      const extent = await this.sealedRecord(extentId);
      if (extent === null) return outcome;
      if (this.liveReplicaIds(extent.value, state.nodes).length >= target) return outcome;
      const stepOutcome = await this.addReplica(extent.value, target, state);
      if (stepOutcome !== 'repaired') return stepOutcome;
      outcome = 'repaired';
    }
    return outcome;
  }

  /**
   * Whether sealing an open extent below target helps: yes if a recorded replica is not live (it
   * cannot take appends anyway: seal once, the new tail goes to live nodes only), or if a target
   * exists now. No if every replica is live and placement has nowhere better (a placement
   * shortfall): sealing would only create another equally short extent, every pass (churn), so
   * the shortfall is reported instead (no_target, kura_extents_below_target).
   */
  private sealHelps(extent: ExtentRecord, state: PassState): boolean {
    if (this.liveReplicaIds(extent, state.nodes).length < extent.replicas.length) return true;
    return this.chooseTarget(extent, state) !== undefined;
  }

  /** The extent's record, sealed first if it was open (an open extent cannot be copied). */
  private async sealedRecord(extentId: number): Promise<Versioned<ExtentRecord> | null> {
    const extent = await this.options.store.readExtent(extentId);
    if (extent === null || extent.value.state.kind === 'sealed') return extent;
    await this.options.sealAndExtend({ streamId: extent.value.streamId, extentId });
    return this.options.store.readExtent(extentId);
  }

  private async addReplica(extent: ExtentRecord, replicaTarget: number, state: PassState): Promise<ExtentOutcome> {
    const { commands, logger } = this.options;
    if (extent.state.kind !== 'sealed') return 'copy_failed';
    const sealedLength = extent.state.sealedLength;
    const sources = this.sourcesOf(extent, state.nodes);
    if (sources.length === 0) {
      logger.error({ extentId: extent.extentId, replicas: extent.replicas }, 'no readable replica of an extent on any alive node');
      return 'unrecoverable';
    }
    const targetNode = this.chooseTarget(extent, state);
    if (targetNode === undefined) return 'no_target';
    const live = new Set(this.liveReplicaIds(extent, state.nodes));
    const victim = plannedVictim({ replicas: extent.replicas, live, domainsOf: domainsIn(state.nodes), targetId: targetNode.nodeId, replicaTarget });
    try {
      await commands.copyFrom(targetNode.address, { streamId: extent.streamId, extentId: extent.extentId, sealedLength, sources });
    } catch (error) {
      logger.warn({ extentId: extent.extentId, target: targetNode.nodeId, err: error }, 'extent copy failed');
      return 'copy_failed';
    }
    await failpoint('rereplication.copy.after-copy');
    const decision = await this.recordReplica({ extentId: extent.extentId, targetId: targetNode.nodeId, victim, replicaTarget });
    if (decision.kind === 'drop') {
      await this.dropCopy(extent.extentId, targetNode, decision.reason);
      return 'copy_dropped';
    }
    if (decision.kind === 'present') return 'copy_failed';
    state.replicasCopied += 1;
    state.bytesCopied += sealedLength;
    state.bytesPerTarget.set(targetNode.nodeId, (state.bytesPerTarget.get(targetNode.nodeId) ?? 0) + sealedLength);
    state.nodes = await this.readNodeMap();
    return 'repaired';
  }

  /** A node for one more replica, keeping the fault- and upgrade-domain rules against the live ones. */
  private chooseTarget(extent: ExtentRecord, state: PassState): NodeRecord | undefined {
    const { registry } = this.options;
    const live = this.liveReplicaIds(extent, state.nodes).map((id) => state.nodes.get(id)?.value).filter((n) => n !== undefined);
    const candidates = [...state.nodes.values()].map((n) => n.value).filter((n) => registry.isPlacementEligible(n));
    const loads = this.loadByNode ?? new Map<string, number>();
    const placement = placeReplicas({
      candidates: candidates.map((n) => ({ nodeId: n.nodeId, faultDomain: n.faultDomain, upgradeDomain: n.upgradeDomain, load: loads.get(n.nodeId) ?? 0 })),
      replicaCount: 1,
      takenFaultDomains: live.map((n) => n.faultDomain),
      takenUpgradeDomains: live.map((n) => n.upgradeDomain),
      excludedNodeIds: extent.replicas,
    }, this.options.random);
    const targetId = placement.nodeIds[0];
    return targetId === undefined ? undefined : state.nodes.get(targetId)?.value;
  }

  /** Alive holders (in service or draining) not known bad, primary first. */
  private sourcesOf(extent: ExtentRecord, nodes: ReadonlyMap<string, Versioned<NodeRecord>>): ReplicaLocation[] {
    return extent.replicas.flatMap((nodeId) => {
      const node = nodes.get(nodeId)?.value;
      if (node === undefined || !this.options.registry.isSource(node) || this.isBad(extent.extentId, nodeId)) return [];
      return [{ nodeId, address: node.address }];
    });
  }

  /**
   * Records the copied replica in place of the planned victim (or adds it), bumping the target's
   * placementVersion, if recordDecision allows it on the current map: the extent and the node
   * records of its replicas and the target are read fresh and compared in the same txn.
   */
  private async recordReplica(copy: RecordCopy): Promise<RecordDecision> {
    const { store, logger } = this.options;
    const { extentId, targetId } = copy;
    const decision = await store.commit('record replica', () => this.recordPlan(copy));
    if (decision.kind !== 'record') return decision;
    const victim = decision.victim ?? '';
    this.bad.get(extentId)?.delete(victim);
    this.adjustLoad(targetId, 1);
    if (victim !== '') this.adjustLoad(victim, -1);
    logger.info({ extentId, target: targetId, replaced: victim }, 'replica re-replicated');
    return decision;
  }

  /** The record txn: decided on the extent and node records read now, compared on all of them. */
  private async recordPlan(copy: RecordCopy): Promise<CommitPlan<RecordDecision>> {
    const { store } = this.options;
    const { extentId, targetId } = copy;
    const unchanged = (result: RecordDecision): CommitPlan<RecordDecision> => ({ compare: [], puts: [], result });
    const extent = await store.readExtent(extentId);
    if (extent === null || extent.value.state.kind !== 'sealed') return unchanged({ kind: 'drop', reason: 'the extent is no longer in the map as sealed' });
    const nodes = await this.readNodesOf([...extent.value.replicas, targetId]);
    const live = new Set(this.liveReplicaIds(extent.value, nodes));
    const decided = recordDecision({ ...copy, replicas: extent.value.replicas, live, domainsOf: domainsIn(nodes) });
    const target = nodes.get(targetId);
    if (decided.kind !== 'record') return unchanged(decided);
    if (target === undefined) return unchanged({ kind: 'drop', reason: `target ${targetId} has no record` });
    return {
      compare: [{ key: extentKey(extentId), modRevision: extent.modRevision }, ...[...nodes.values()].map((n) => ({ key: nodeKey(n.value.nodeId), modRevision: n.modRevision }))],
      puts: [
        { key: extentKey(extentId), value: { ...extent.value, replicas: [...decided.replicas] } },
        { key: nodeKey(targetId), value: { ...target.value, placementVersion: target.value.placementVersion + 1 } },
      ],
      result: decided,
    };
  }

  /**
   * A finished copy that may not be recorded: removed from its target (it is in no map, so
   * nothing depends on it). A fenced manager removes nothing (a newer one may have recorded that
   * copy); a failed remove leaves an orphan that reconciliation reports.
   */
  private async dropCopy(extentId: number, target: NodeRecord, reason: string): Promise<void> {
    const { store, commands, logger } = this.options;
    logger.warn({ extentId, target: target.nodeId, reason }, 'copied replica not recorded; removing it from its target');
    await store.detectFencing();
    store.checkNotFenced();
    try {
      await commands.remove(target.address, extentId);
    } catch (error) {
      logger.warn({ extentId, target: target.nodeId, err: error }, 'unrecorded copy not removed: an orphan for reconciliation to report');
    }
  }

  /** The node records of these nodes (those that have one), read now. */
  private async readNodesOf(nodeIds: readonly string[]): Promise<Map<string, Versioned<NodeRecord>>> {
    const nodes = new Map<string, Versioned<NodeRecord>>();
    for (const nodeId of new Set(nodeIds)) {
      const node = await this.options.store.readNode(nodeId);
      if (node !== null) nodes.set(nodeId, node);
    }
    return nodes;
  }

  private adjustLoad(nodeId: string, delta: number): void {
    if (this.loadByNode === null) return;
    this.loadByNode.set(nodeId, Math.max(0, (this.loadByNode.get(nodeId) ?? 0) + delta));
  }

  /** In-service nodes that missed their heartbeats become `repair` (durably), once. */
  private async markLostNodes(): Promise<number> {
    const { store, registry, logger } = this.options;
    let marked = 0;
    for (const node of await store.readNodes()) {
      if (node.value.lifecycle !== 'in_service' || !registry.isLost(node.value.nodeId)) continue;
      const changed = await store.commit('mark lost', async () => {
        const current = await store.readNode(node.value.nodeId);
        if (current === null || current.value.lifecycle !== 'in_service') return { compare: [], puts: [], result: false };
        return { compare: [{ key: nodeKey(node.value.nodeId), modRevision: current.modRevision }], puts: [{ key: nodeKey(node.value.nodeId), value: { ...current.value, lifecycle: 'repair' } }], result: true };
      });
      if (changed) {
        marked += 1;
        logger.warn({ nodeId: node.value.nodeId }, 'node lost: its replicas no longer count');
      }
    }
    return marked;
  }

  private async readNodeMap(): Promise<Map<string, Versioned<NodeRecord>>> {
    return new Map((await this.options.store.readNodes()).map((n) => [n.value.nodeId, n]));
  }

  /** Each stream's replica count, the target of its extents. */
  private async replicaTargets(extents: readonly Versioned<ExtentRecord>[]): Promise<Map<number, number>> {
    const targets = new Map<number, number>();
    for (const streamId of new Set(extents.map((e) => e.value.streamId))) {
      const stream = await this.options.store.readStream(streamId);
      targets.set(streamId, stream?.value.replicaCount ?? 0);
    }
    return targets;
  }
}

/** What a pass found and fixed, for kura_repair_* counters (src/util/stream-events.ts). */
function publishPass(report: RepairReport): void {
  streamEvents.repairPass.publish({
    extentsFound: report.extentsBelowTarget,
    extentsFixed: report.extentsRepaired,
    extentsWithoutTarget: report.extentsWithoutTarget,
    extentsUnrecoverable: report.extentsUnrecoverable,
    copyFailures: report.copyFailures,
    extentsSealed: report.extentsSealed,
    replicasCopied: report.replicasCopied,
    bytesCopied: report.bytesCopied,
    durationMs: report.durationMs,
  });
}

function domainsIn(nodes: ReadonlyMap<string, Versioned<NodeRecord>>): DomainsOf {
  return (nodeId) => nodes.get(nodeId)?.value;
}

function countLoads(extents: readonly Versioned<ExtentRecord>[]): Map<string, number> {
  const loads = new Map<string, number>();
  for (const extent of extents) {
    for (const nodeId of extent.value.replicas) loads.set(nodeId, (loads.get(nodeId) ?? 0) + 1);
  }
  return loads;
}
