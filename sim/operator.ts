// The simulator's out-of-band tools (docs/simulation.md): what an operator, a scrubber and the
// checkers do from outside the stamp, over the network from a process that never fails
// ("operator"). It scrubs (extent.verify on every replica the map records, reporting corrupt or
// missing ones, the job of a background scrubber not built yet), waits for repair to converge,
// tries operator wipes (which P3 says must be refused while a node holds replicas) and reads
// the replica map for the checkers.
//
// Invariants: every call it makes is bounded (a deadline on the stamp clock); it never changes
// the stamp except through the public protocol (reportCorruption, releaseToken, node.wipe).
import { prefixEnd } from '../src/metastore/meta-store.ts';
import { StreamManagerProxy } from '../src/stream/stream-manager-proxy.ts';
import type { StreamView } from '../src/stream/protocol.ts';
import { isStorageError } from '../src/util/errors.ts';
import { describe } from './faults.ts';
import { MetaStoreProxy } from './meta-service.ts';
import type { SimProcess } from './process.ts';
import type { ExtentNodeRole, ManagerRole } from './roles.ts';
import { managerAddress } from './roles.ts';
import type { SimStamp } from './stamp.ts';

const noBody = Buffer.alloc(0);
/** Deadline of one tool call. */
const toolCallMs = 30_000;
/** Pause between repair checks while waiting for convergence. */
const repairPollMs = 5_000;
/** sm/streams/<id hex> (src/stream/protocol.ts streamKey). */
const streamPrefix = 'sm/streams/';
const streamsMax = 10_000;

export interface ScrubReport {
  readonly replicasVerified: number;
  readonly corruptReported: number;
  readonly unreachable: number;
}

export class StampOperator {
  readonly process: SimProcess;
  readonly manager: StreamManagerProxy;
  readonly violations: string[] = [];
  private readonly stamp: SimStamp;
  private readonly managerRole: ManagerRole;
  private readonly nodes: readonly ExtentNodeRole[];
  readonly metaStore: MetaStoreProxy;
  corruptReplicasFound = 0;
  wipesRefused = 0;
  wipesGranted = 0;

  constructor(stamp: SimStamp, options: { readonly manager: ManagerRole; readonly nodes: readonly ExtentNodeRole[] }) {
    this.stamp = stamp;
    this.managerRole = options.manager;
    this.nodes = options.nodes;
    this.process = stamp.newProcess('operator', 'operator');
    this.manager = new StreamManagerProxy({ network: this.process.network, address: managerAddress, deadlineMs: toolCallMs });
    this.metaStore = new MetaStoreProxy({ network: this.process.network, clock: this.process.clock });
  }

  /** Every stream the stream manager created (partition splits create more as the run goes). */
  async streamIds(): Promise<number[] | null> {
    const records = await this.within(this.metaStore.range(streamPrefix, { end: prefixEnd(streamPrefix), limit: streamsMax })).catch(() => null);
    return records === null ? null : records.map((record) => Number.parseInt(record.key.slice(streamPrefix.length), 16));
  }

  /** `promise`, or null if it did not settle within `ms` of virtual time. */
  async within<T>(promise: Promise<T>, ms: number = toolCallMs): Promise<T | null> {
    let timer: { cancel(): void } | null = null;
    const timeout = new Promise<null>((resolve) => {
      timer = this.stamp.clock.setTimer(ms, () => resolve(null));
    });
    try {
      return await Promise.race([promise, timeout]);
    } finally {
      (timer as { cancel(): void } | null)?.cancel();
    }
  }

  /** Every stream's view (null for one the manager did not answer). */
  async streamViews(): Promise<Array<StreamView | null>> {
    const views: Array<StreamView | null> = [];
    const streamIds = await this.streamIds();
    if (streamIds === null) return [null];
    for (const streamId of streamIds) views.push(await this.within(this.manager.getStream(streamId)).catch(() => null));
    return views;
  }

  /** extent.verify on every replica in the map; corrupt or missing ones are reported. */
  async scrub(): Promise<ScrubReport> {
    let replicasVerified = 0;
    let corruptReported = 0;
    let unreachable = 0;
    for (const view of await this.streamViews()) {
      for (const extent of view?.extents ?? []) {
        for (const replica of extent.replicas) {
          const verdict = await this.verifyReplica(replica.address, extent.extentId);
          if (verdict === 'unknown') {
            unreachable += 1;
            continue;
          }
          replicasVerified += 1;
          if (verdict === 'good') continue;
          corruptReported += 1;
          this.stamp.trace(`scrub: ${replica.nodeId} extent ${extent.extentId} ${verdict}`);
          await this.within(this.manager.reportCorruption({ extentId: extent.extentId, nodeId: replica.nodeId })).catch(() => null);
        }
      }
    }
    this.corruptReplicasFound += corruptReported;
    return { replicasVerified, corruptReported, unreachable };
  }

  private async verifyReplica(address: string, extentId: number): Promise<'good' | 'corrupt' | 'missing' | 'unknown'> {
    try {
      const answer = await this.within(this.process.network.call(address, { method: 'extent.verify', header: { extentId }, body: noBody }, { deadlineMs: toolCallMs }));
      if (answer === null) return 'unknown';
      const corrupt = answer.header['corruptBlocks'];
      return Array.isArray(corrupt) && corrupt.length > 0 ? 'corrupt' : 'good';
    } catch (error) {
      if (isStorageError(error, 'extent.not_found')) return 'missing';
      return 'unknown';
    }
  }

  /**
   * Scrubs and runs repair passes until a pass finds every extent at its target and the scrub
   * finds nothing; false if that did not happen within `budgetMs`.
   */
  async awaitRepair(budgetMs: number): Promise<boolean> {
    const deadlineMs = this.stamp.clock.monotonicMs() + budgetMs;
    while (this.stamp.clock.monotonicMs() < deadlineMs) {
      if (this.stamp.allRoles().every((role) => role.up)) {
        const scrub = await this.scrub();
        const report = await this.within(this.managerRole.callLeader((manager) => manager.repairOnce())).catch((error: unknown) => {
          this.stamp.trace(`repair pass failed: ${describe(error)}`);
          return null;
        });
        if (report !== null && scrub.corruptReported === 0 && scrub.unreachable === 0 && report.extentsBelowTarget === 0) return true;
      }
      await this.stamp.clock.sleep(repairPollMs);
    }
    return false;
  }

  /**
   * The operator asks to wipe a node: a release token, then node.wipe with it. P3: while the map
   * records a replica on the node, the token must be refused; a token that is still valid while
   * the node holds replicas is a violation.
   */
  async tryWipe(nodeId: string): Promise<boolean> {
    const node = this.nodes.find((candidate) => candidate.name === nodeId);
    let token: string;
    try {
      const granted = await this.within(this.manager.releaseToken(nodeId));
      if (granted === null) return false;
      token = granted;
    } catch {
      this.wipesRefused += 1;
      return false;
    }
    this.wipesGranted += 1;
    const held = await this.within(this.manager.liveReplicas(nodeId)).catch(() => null);
    if (held !== null && held.length > 0) {
      const stillValid = await this.within(this.manager.checkToken(token)).catch(() => null);
      if (stillValid === true) this.violations.push(`P3: release token for ${nodeId} is valid while it holds ${held.length} live replicas`);
    }
    if (node !== undefined) {
      const wiped = await this.within(this.process.network.call(node.address, { method: 'node.wipe', header: { token }, body: noBody })).catch(() => null);
      this.stamp.trace(`operator wipe of ${nodeId}: ${wiped === null ? 'refused' : `done (${JSON.stringify(wiped.header)})`}`);
    }
    return true;
  }
}
