// Reconciliation and audit of replicas against the replica map (docs/stream-protocol.md,
// "Reconciliation" and "Damaged replicas"): the stream manager's check that what a node holds is
// what the map says it holds.
//
//   registerNode ──► requestReconcile(node) ──► background: reconcile(node)
//                                                  for each extent the map places on it:
//                                                  extent.info ─► replicaVerdict (seal-rule.ts)
//                                                  ─► ok | extent.seal at L | mark bad | seal extent
//   repair pass  ──► reconcilePending() (returned nodes, and nodes whose check did not finish)
//                └─► audit(): replicas that missed a seal, then a bounded, wrapping slice of
//                    sealed extents (repairAuditExtentsPerPassMax per pass)
//
// Invariants:
// - nothing is removed from the map or from a node here: a replica that cannot serve its recorded
//   extent is marked bad (in memory) and repair replaces it, only after a verified copy;
// - extent.seal is sent only at the map's recorded length, only to a replica that holds at least
//   that much and is not damaged (seal-rule.ts), and never truncates a replica of an extent sealed
//   over damage;
// - one reconciliation per node at a time; a registration during one runs it again after;
// - a node stays pending until a check of every replica the map places on it got an answer, and
//   a returned node goes back in service only after its check (its unanswered replicas are
//   marked bad, as it was away and may have missed anything).
//
// Fault model: nodes may not answer, answer late, restart again mid-check, or have lost data
// (short, missing, damaged replicas); the manager may be fenced mid-check (the error propagates
// and the check stops); the map may change under a check (each step re-reads the record).
import type { Logger } from 'pino';
import { repairAuditExtentsPerPassMax } from '../constants.ts';
import { StorageError, isStorageError } from '../util/errors.ts';
import { failpoint } from '../util/failpoints.ts';
import type { ManagerCommands } from './manager-commands.ts';
import type { ManagerStore, Versioned } from './manager-store.ts';
import type { NodeRegistry } from './node-registry.ts';
import { nodeKey } from './protocol.ts';
import type { ExtentRecord, NodeRecord } from './protocol.ts';
import { replicaVerdict } from './seal-rule.ts';
import type { RecordedState, ReplicaAnswer } from './seal-rule.ts';

export interface ReplicaReconcilerOptions {
  readonly store: ManagerStore;
  readonly registry: NodeRegistry;
  readonly commands: ManagerCommands;
  readonly logger: Logger;
  readonly sealAndExtend: (request: { streamId: number; extentId: number }) => Promise<unknown>;
  readonly markBad: (extentId: number, nodeId: string) => void;
  readonly isBad: (extentId: number, nodeId: string) => boolean;
}

export type ReconcileTrigger = 'registration' | 'repair' | 'request';

export interface ReconcileReport {
  readonly nodeId: string;
  readonly trigger: ReconcileTrigger;
  /** The node's lifecycle when the check started (a `returned` node is back in service after). */
  readonly lifecycle: NodeRecord['lifecycle'];
  /** Replicas now sealed at the map's recorded length (already, or by this check). */
  readonly sealed: readonly number[];
  /** Of `sealed`: the ones this check sent extent.seal to (they had missed the seal). */
  readonly resealed: readonly number[];
  /** Replicas the map records as open that the node holds undamaged (left open). */
  readonly open: readonly number[];
  /** Replicas the node lacks, holds short, damaged or sealed elsewhere: marked bad, to be replaced. */
  readonly missing: readonly number[];
  /** Replicas whose check got no answer: checked again by the next repair pass. */
  readonly unconfirmed: readonly number[];
  /** Extents the node holds that the map does not give it: reported, not deleted. */
  readonly orphaned: readonly number[];
}

export interface AuditReport {
  readonly replicasAudited: number;
  readonly replicasResealed: number;
  readonly replicasMarkedBad: number;
}

type CheckOutcome =
  | { readonly kind: 'sealed'; readonly resealed: boolean }
  | { readonly kind: 'open' }
  | { readonly kind: 'bad' }
  | { readonly kind: 'unconfirmed' }
  | { readonly kind: 'gone' };

interface ReplicaRef {
  readonly extentId: number;
  readonly nodeId: string;
}

/** Replicas remembered as having missed a seal; past it the oldest is dropped (the wrapping
 * audit still reaches it). A few per extent of a large failure's worth of seals. */
const sealSuspectsMax = 16 * repairAuditExtentsPerPassMax;
/** Verdict steps per replica: sealing an open extent re-reads it once. */
const checkStepsMax = 2;

export class ReplicaReconciler {
  private readonly options: ReplicaReconcilerOptions;
  private readonly pending = new Set<string>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  private readonly suspects = new Map<string, ReplicaRef>();
  private readonly reports = new Map<string, ReconcileReport>();
  private auditCursor = -1;

  constructor(options: ReplicaReconcilerOptions) {
    this.options = options;
  }

  /** The last finished check of a node, or null. */
  lastReport(nodeId: string): ReconcileReport | null {
    return this.reports.get(nodeId) ?? null;
  }

  /** A replica did not take a seal: the next audit checks it first. */
  noteSealMissed(extentId: number, nodeId: string): void {
    const key = `${extentId}/${nodeId}`;
    this.suspects.delete(key);
    this.suspects.set(key, { extentId, nodeId });
    while (this.suspects.size > sealSuspectsMax) {
      const oldest = this.suspects.keys().next();
      if (oldest.done === true) break;
      this.suspects.delete(oldest.value);
    }
  }

  /** Starts a check of the node in the background (again after the one running, if any). */
  requestReconcile(nodeId: string, trigger: ReconcileTrigger): void {
    this.pending.add(nodeId);
    if (this.running.has(nodeId)) {
      this.again.add(nodeId);
      return;
    }
    this.running.set(nodeId, this.runInBackground(nodeId, trigger));
  }

  /** Resolves when no background check is running. */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.all(this.running.values());
  }

  private async runInBackground(nodeId: string, trigger: ReconcileTrigger): Promise<void> {
    try {
      do {
        this.again.delete(nodeId);
        try {
          await this.reconcile(nodeId, trigger);
        } catch (error) {
          this.options.logger.warn({ nodeId, trigger, err: error }, 'reconciliation did not finish; the repair pass retries it');
          if (isStorageError(error, 'extent.stale_epoch')) return;
        }
      } while (this.again.has(nodeId));
    } finally {
      this.running.delete(nodeId);
    }
  }

  /** Checks returned nodes and nodes whose check did not finish; returns how many finished. */
  async reconcilePending(): Promise<number> {
    const { store, registry, logger } = this.options;
    let reconciled = 0;
    for (const node of await store.readNodes()) {
      const nodeId = node.value.nodeId;
      const due = node.value.lifecycle === 'returned' || this.pending.has(nodeId);
      if (!due || this.running.has(nodeId) || !registry.isAlive(nodeId)) continue;
      try {
        const report = await this.reconcile(nodeId, 'repair');
        if (report.unconfirmed.length === 0) reconciled += 1;
      } catch (error) {
        if (isStorageError(error, 'extent.stale_epoch')) throw error;
        logger.warn({ nodeId, err: error }, 'reconciliation failed; retried next pass');
      }
    }
    return reconciled;
  }

  /**
   * Checks every replica the map places on the node (seal-rule.ts, replicaVerdict). A returned
   * node has its open extents sealed first and goes back in service after the check.
   */
  async reconcile(nodeId: string, trigger: ReconcileTrigger): Promise<ReconcileReport> {
    const { store, registry, commands, logger } = this.options;
    const node = await store.readNode(nodeId);
    if (node === null) throw new StorageError('node.not_found', `node ${nodeId} is not registered`);
    if (!registry.isAlive(nodeId)) throw new StorageError('rpc.unreachable', `node ${nodeId} is not alive`, { retryable: true });
    const returned = node.value.lifecycle === 'returned';
    const held = await commands.heldExtents(node.value.address);
    const recorded = (await store.readExtents()).filter((e) => e.value.replicas.includes(nodeId)).map((e) => e.value.extentId);
    const lists = { sealed: [] as number[], resealed: [] as number[], open: [] as number[], missing: [] as number[], unconfirmed: [] as number[] };
    for (const extentId of recorded) {
      const outcome = await this.checkReplica(extentId, { nodeId, address: node.value.address }, returned);
      if (outcome.kind === 'unconfirmed' && returned) this.options.markBad(extentId, nodeId);
      sortOutcome(lists, extentId, outcome.kind === 'unconfirmed' && returned ? { kind: 'bad' } : outcome);
    }
    const recordedIds = new Set(recorded);
    const orphaned = held.filter((extentId) => !recordedIds.has(extentId));
    if (returned) {
      await failpoint('reconciler.before-return-to-service');
      await this.returnToService(nodeId);
    }
    if (lists.unconfirmed.length === 0) this.pending.delete(nodeId);
    const report: ReconcileReport = { nodeId, trigger, lifecycle: node.value.lifecycle, ...lists, orphaned };
    this.reports.set(nodeId, report);
    const level = report.missing.length + report.resealed.length + report.unconfirmed.length > 0 || returned ? 'warn' : 'info';
    logger[level]({ ...report, sealed: report.sealed.length, open: report.open.length }, 'node reconciled with the replica map');
    return report;
  }

  /**
   * One bounded audit: the replicas that missed a seal, then the sealed extents after the cursor
   * (wrapping), every replica of them on an alive node not already known bad.
   */
  async audit(extents: readonly Versioned<ExtentRecord>[]): Promise<AuditReport> {
    const nodes = new Map((await this.options.store.readNodes()).map((n) => [n.value.nodeId, n.value]));
    const checks = [...this.suspects.values()];
    for (const extent of this.auditSlice(extents)) {
      for (const nodeId of extent.replicas) checks.push({ extentId: extent.extentId, nodeId });
    }
    let replicasAudited = 0;
    let replicasResealed = 0;
    let replicasMarkedBad = 0;
    for (const check of checks) {
      const node = nodes.get(check.nodeId);
      if (node === undefined || !this.options.registry.isAlive(check.nodeId) || this.options.isBad(check.extentId, check.nodeId)) continue;
      const outcome = await this.checkReplica(check.extentId, { nodeId: check.nodeId, address: node.address }, false);
      replicasAudited += 1;
      if (outcome.kind !== 'unconfirmed') this.suspects.delete(`${check.extentId}/${check.nodeId}`);
      if (outcome.kind === 'sealed' && outcome.resealed) replicasResealed += 1;
      if (outcome.kind === 'bad') replicasMarkedBad += 1;
    }
    return { replicasAudited, replicasResealed, replicasMarkedBad };
  }

  /** Up to repairAuditExtentsPerPassMax sealed extents with ids after the cursor, wrapping. */
  private auditSlice(extents: readonly Versioned<ExtentRecord>[]): ExtentRecord[] {
    const sealed = extents.map((e) => e.value).filter((e) => e.state.kind === 'sealed').sort((a, b) => a.extentId - b.extentId);
    const after = sealed.filter((e) => e.extentId > this.auditCursor);
    const slice = [...after, ...sealed.filter((e) => e.extentId <= this.auditCursor)].slice(0, repairAuditExtentsPerPassMax);
    const last = slice.at(-1);
    if (last !== undefined) this.auditCursor = last.extentId;
    return slice;
  }

  /** Compares one replica with its record and acts on the verdict (seal-rule.ts). */
  private async checkReplica(extentId: number, node: { readonly nodeId: string; readonly address: string }, sealOpen: boolean): Promise<CheckOutcome> {
    let record = await this.currentRecord(extentId, sealOpen);
    for (let step = 0; step < checkStepsMax; step++) {
      if (record === null || !record.replicas.includes(node.nodeId)) return { kind: 'gone' };
      const answer = await this.ask(node.address, extentId);
      if (answer === 'unknown') return { kind: 'unconfirmed' };
      const verdict = replicaVerdict(recordedState(record), answer);
      switch (verdict.kind) {
        case 'ok':
          return record.state.kind === 'sealed' ? { kind: 'sealed', resealed: false } : { kind: 'open' };
        case 'seal':
          return this.sealReplica(extentId, node, verdict.length);
        case 'bad':
          this.options.markBad(extentId, node.nodeId);
          this.options.logger.warn({ extentId, nodeId: node.nodeId, why: verdict.why }, 'replica cannot serve its recorded extent; marked for repair');
          return { kind: 'bad' };
        case 'seal_extent':
          record = await this.currentRecord(extentId, true);
          break;
      }
    }
    return { kind: 'unconfirmed' };
  }

  private async sealReplica(extentId: number, node: { readonly nodeId: string; readonly address: string }, length: number): Promise<CheckOutcome> {
    try {
      await this.options.commands.seal(node.address, { extentId, length });
      this.options.logger.warn({ extentId, nodeId: node.nodeId, sealedLength: length }, 'replica had missed its seal; sealed now');
      return { kind: 'sealed', resealed: true };
    } catch (error) {
      if (isStorageError(error, 'extent.stale_epoch')) throw error;
      if (isStorageError(error, 'extent.out_of_range') || isStorageError(error, 'extent.sealed')) {
        this.options.markBad(extentId, node.nodeId);
        return { kind: 'bad' };
      }
      return { kind: 'unconfirmed' };
    }
  }

  /** The node's answer for its replica; null if it does not hold it; 'unknown' if it did not answer. */
  private async ask(address: string, extentId: number): Promise<ReplicaAnswer | null | 'unknown'> {
    try {
      const info = await this.options.commands.info(address, extentId);
      return { length: info.length, state: info.state ?? { kind: 'open' }, damaged: info.damaged === true };
    } catch (error) {
      if (isStorageError(error, 'extent.not_found')) return null;
      if (isStorageError(error, 'extent.stale_epoch')) throw error;
      return 'unknown';
    }
  }

  /** The extent's record; sealed first (sealAndExtend) if it is open and `sealOpen`. */
  private async currentRecord(extentId: number, sealOpen: boolean): Promise<ExtentRecord | null> {
    const extent = await this.options.store.readExtent(extentId);
    if (extent === null || extent.value.state.kind === 'sealed' || !sealOpen) return extent?.value ?? null;
    await this.options.sealAndExtend({ streamId: extent.value.streamId, extentId });
    return (await this.options.store.readExtent(extentId))?.value ?? null;
  }

  private async returnToService(nodeId: string): Promise<void> {
    const { store } = this.options;
    await store.commit('return to service', async () => {
      const current = await store.readNode(nodeId);
      if (current === null || current.value.lifecycle !== 'returned') return { compare: [], puts: [], result: undefined };
      const next: NodeRecord = { ...current.value, lifecycle: 'in_service', placementVersion: current.value.placementVersion + 1 };
      return { compare: [{ key: nodeKey(nodeId), modRevision: current.modRevision }], puts: [{ key: nodeKey(nodeId), value: next }], result: undefined };
    });
  }
}

function recordedState(record: ExtentRecord): RecordedState {
  if (record.state.kind === 'open') return { kind: 'open' };
  return { kind: 'sealed', sealedLength: record.state.sealedLength, overDamage: record.sealedOverDamage === true };
}

function sortOutcome(
  lists: { sealed: number[]; resealed: number[]; open: number[]; missing: number[]; unconfirmed: number[] },
  extentId: number,
  outcome: CheckOutcome,
): void {
  switch (outcome.kind) {
    case 'sealed':
      lists.sealed.push(extentId);
      if (outcome.resealed) lists.resealed.push(extentId);
      return;
    case 'open': lists.open.push(extentId); return;
    case 'bad': lists.missing.push(extentId); return;
    case 'unconfirmed': lists.unconfirmed.push(extentId); return;
    case 'gone': return;
  }
}
