// ClusterController: the `kura controller` role (docs/cluster.md, "Controller election"): the stream
// manager and the partition manager of a cluster, run by whichever controller process holds the
// lease-bound key controller/leader in the MetaStore (etcd). The others stand by. The same
// StreamManager and PartitionManager as the embedded stamp; only the wiring differs.
//
//   standby ── campaign (watch of controller/leader fired, or every recheckMs): absent? grant L_C, txn put ─┐
//      ▲                                                                                          │ won at revision R
//      │ step down: routing stops, PartitionManager stops (revokes pm/leader),                    ▼
//      │ StreamManager closes, L_C released                                 leading (term R): StreamManager.start()
//      └──── L_C lost (its expiry timer, at once), or the StreamManager fenced ◄── (sm/epoch + 1), repair loop,
//                                                                             PartitionManager campaigns pm/leader
//
// Every controller listens on its address from the start; manager.* calls are routed to the term's
// StreamManager only while L_C is confirmed valid (checked per call) and that manager is not
// fenced; otherwise they are answered manager.not_leader (retryable: nothing applied), so a
// StreamManagerProxy given every controller's address finds the leader.
//
// Invariants:
// - one owner of control flow: step() runs one at a time, on the injected clock's timer; events
//   (the watch, a lost lease) only move that timer to now, or ask for one more step after a running one;
// - a term's StreamManager takes its epoch (compare txn) before any call is routed to it, so every
//   routed answer comes from a manager whose epoch is above every earlier term's;
// - a standby writes nothing; a leader that steps down stops routing before anything else;
// - a term is the MetaStore revision of the txn that won it: terms only grow.
// Fault model: the MetaStore may fail (a step fails, is logged, and the next one tries again; a
// leader whose renewals fail loses its lease at validUntil and steps down); this process may be
// killed at any point (L_C expires after leaseTtlMs and a standby leads; the pm lease likewise);
// another manager may take sm/epoch (this one is fenced and steps down).
import { pino, type Logger } from 'pino';
import { z } from 'zod';
import { controllerLeaseMarginRatio, controllerLeaseTtlMs, controllerRecheckMs, controllerStepRetryMs, partitionMaintenanceIntervalMs, repairIntervalMs } from '../constants.ts';
import type { KeyValue, KeyWatch, MetaStore } from '../metastore/meta-store.ts';
import { PartitionManager } from '../partition/partition-manager.ts';
import { parseJson } from '../partition/partition-map.ts';
import { ServerLease } from '../partition/server-lease.ts';
import type { Network, RpcServer } from '../rpc/network.ts';
import type { StreamManagerApi } from '../stream/protocol.ts';
import { serveStreamManager } from '../stream/stream-manager-proxy.ts';
import { StreamManager } from '../stream/stream-manager.ts';
import { AssertionFailure } from '../util/assert.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import { StorageError } from '../util/errors.ts';
import type { Random } from '../util/random.ts';

export const controllerLeaderKey = 'controller/leader';

export const controllerLeaderSchema = z.object({
  controllerId: z.string().min(1).max(64).regex(/^[A-Za-z0-9._-]+$/),
  address: z.string().min(3).max(300),
});

/** Who leads, as read from controller/leader; term = the key's modRevision (the winning txn's). */
export interface LeaderInfo {
  readonly controllerId: string;
  readonly address: string;
  readonly term: number;
}

export interface ClusterControllerOptions {
  readonly controllerId: string;
  readonly metaStore: MetaStore;
  readonly network: Network;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger?: Logger;
  /** host:port to serve manager.* on (port 0 picks one). */
  readonly listenAddress: string;
  /** The address published in controller/leader, if it differs from the bound one. */
  readonly advertisedAddress?: string;
  readonly replicaCountDefault: number;
  readonly repairIntervalMs?: number;
  readonly leaseTtlMs?: number;
  /** Re-check beside the events (default controllerRecheckMs). */
  readonly recheckMs?: number;
  readonly partitionManagerTickMs?: number;
  readonly splitBytes?: number;
  readonly nodeHeartbeatTimeoutMs?: number;
}

/** What /readyz, metrics and tests see. */
export type ControllerRole =
  | { readonly kind: 'starting' }
  | { readonly kind: 'standby'; readonly leader: LeaderInfo | null }
  | { readonly kind: 'leading'; readonly term: number; readonly streamEpoch: number; readonly partitionEpoch: number | null }
  | { readonly kind: 'stopped' };

interface Term {
  readonly revision: number;
  readonly lease: ServerLease;
  readonly streamManager: StreamManager;
  readonly partitionManager: PartitionManager;
}

type State =
  | { readonly kind: 'starting' }
  | { readonly kind: 'standby'; readonly leader: LeaderInfo | null }
  | { readonly kind: 'leading'; readonly term: Term }
  | { readonly kind: 'stopped' };

export class ClusterController {
  private readonly options: ClusterControllerOptions;
  private readonly logger: Logger;
  private state: State = { kind: 'starting' };
  private server: RpcServer | null = null;
  private timer: TimerHandle | null = null;
  private running: Promise<void> | null = null;
  /** wake() during a step: step again as soon as it ends. */
  private stepAgain = false;
  private leaderWatch: KeyWatch | null = null;
  private stopping = false;
  private termsWon = 0;

  private constructor(options: ClusterControllerOptions) {
    this.options = options;
    this.logger = (options.logger ?? pino({ level: 'silent' })).child({ component: 'controller', controllerId: options.controllerId });
  }

  /** Listens (answering not_leader until it leads) and starts campaigning. */
  static async start(options: ClusterControllerOptions): Promise<ClusterController> {
    const controller = new ClusterController(options);
    controller.server = await serveStreamManager(options.network, options.listenAddress, () => controller.leaderApi());
    controller.logger.info({ address: controller.server.address, advertised: controller.advertisedAddress }, 'controller listening');
    controller.schedule(0);
    controller.leaderWatch = options.metaStore.watchKey(controllerLeaderKey, () => controller.wake());
    return controller;
  }

  /** The bound manager.* address. */
  get address(): string {
    return this.server?.address ?? this.options.listenAddress;
  }

  /** Terms this process has won since it started. */
  get terms(): number {
    return this.termsWon;
  }

  role(): ControllerRole {
    const state = this.state;
    switch (state.kind) {
      case 'starting':
      case 'standby':
      case 'stopped':
        return state;
      case 'leading':
        return { kind: 'leading', term: state.term.revision, streamEpoch: state.term.streamManager.epoch, partitionEpoch: state.term.partitionManager.epoch };
    }
  }

  /** The leading term's StreamManager (metrics read it), or null while standing by. */
  currentStreamManager(): StreamManager | null {
    return this.state.kind === 'leading' ? this.state.term.streamManager : null;
  }

  /** The partition manager of the term this controller leads (it campaigns for pm/leader itself). */
  currentPartitionManager(): PartitionManager | null {
    return this.state.kind === 'leading' ? this.state.term.partitionManager : null;
  }

  /** Steps down if leading (a standby takes over at once), stops campaigning, closes the port. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.leaderWatch?.close();
    this.timer?.cancel();
    await this.running;
    if (this.state.kind === 'leading') await this.stepDown(this.state.term, 'stopping');
    this.state = { kind: 'stopped' };
    await this.server?.close();
  }

  /** The manager a manager.* call is routed to; manager.not_leader unless this leads right now. */
  private leaderApi(): StreamManagerApi {
    const state = this.state;
    if (state.kind === 'leading' && state.term.lease.isValid() && !state.term.streamManager.fenced) return state.term.streamManager;
    const leader = state.kind === 'standby' ? state.leader : null;
    const hint = leader === null || leader.controllerId === this.options.controllerId ? '' : `; the leader is ${leader.controllerId} at ${leader.address}`;
    throw new StorageError('manager.not_leader', `controller ${this.options.controllerId} is not the leader${hint}`, { retryable: true });
  }

  private get advertisedAddress(): string {
    return this.options.advertisedAddress ?? this.address;
  }

  /** controller/leader was written or deleted (or its watch reconnected), or L_C was lost: step
   * now rather than at the next re-check. */
  private wake(): void {
    if (this.stopping) return;
    if (this.running !== null) {
      this.stepAgain = true;
      return;
    }
    this.timer?.cancel();
    this.schedule(0);
  }

  private schedule(delayMs: number): void {
    if (this.stopping) return;
    this.timer = this.options.clock.setTimer(delayMs, () => {
      let nextMs = this.options.recheckMs ?? controllerRecheckMs;
      this.running = this.step().catch((error: unknown) => {
        if (error instanceof AssertionFailure) throw error;
        this.logger.warn({ err: error, state: this.state.kind }, 'controller step failed; retried');
        nextMs = controllerStepRetryMs;
      }).finally(() => {
        this.running = null;
        if (this.stepAgain) nextMs = 0;
        this.stepAgain = false;
        this.schedule(nextMs);
      });
    });
  }

  /** Leading: check the lease and the epoch. Otherwise: campaign. */
  private async step(): Promise<void> {
    const state = this.state;
    if (state.kind === 'leading') {
      const term = state.term;
      if (!term.lease.isValid()) await this.stepDown(term, 'leader lease no longer confirmed valid');
      else if (term.streamManager.fenced) await this.stepDown(term, `a newer stream manager superseded epoch ${term.streamManager.epoch}`);
      return;
    }
    const current = await this.options.metaStore.get(controllerLeaderKey);
    if (current !== null) {
      const leader = parseLeader(current);
      if (state.kind !== 'standby' || state.leader?.term !== leader.term) this.logger.info({ leader }, 'controller standby');
      this.state = { kind: 'standby', leader };
      return;
    }
    await this.campaign();
  }

  private async campaign(): Promise<void> {
    const { metaStore, clock } = this.options;
    const ttlMs = this.options.leaseTtlMs ?? controllerLeaseTtlMs;
    const lease = await ServerLease.grant({
      metaStore, clock, ttlMs, renewMs: Math.floor(ttlMs / 4), marginMs: Math.max(1, Math.floor(ttlMs * controllerLeaseMarginRatio)),
      onLost: () => {
        this.logger.warn('controller lease no longer confirmed valid');
        this.wake();
      },
    });
    let revision: number;
    try {
      const value = JSON.stringify({ controllerId: this.options.controllerId, address: this.advertisedAddress });
      const result = await metaStore.txn({ compare: [{ key: controllerLeaderKey, modRevision: 0 }], success: [{ kind: 'put', key: controllerLeaderKey, value, lease: lease.id }] });
      if (!result.succeeded) {
        await lease.release();
        return;
      }
      revision = result.revision;
    } catch (error) {
      await lease.release();
      throw error;
    }
    await this.lead(revision, lease);
  }

  /** Won term `revision`: a new StreamManager takes the next epoch, then calls are routed to it. */
  private async lead(revision: number, lease: ServerLease): Promise<void> {
    const { options } = this;
    const streamManager = new StreamManager({
      metaStore: options.metaStore, network: options.network, clock: options.clock, random: options.random, logger: this.logger,
      replicaCountDefault: options.replicaCountDefault,
      ...(options.nodeHeartbeatTimeoutMs === undefined ? {} : { nodeHeartbeatTimeoutMs: options.nodeHeartbeatTimeoutMs }),
    });
    let epoch: number;
    try {
      ({ epoch } = await streamManager.start());
    } catch (error) {
      await lease.release();
      throw error;
    }
    streamManager.startRepairLoop(options.repairIntervalMs ?? repairIntervalMs);
    const partitionManager = new PartitionManager({
      managerId: options.controllerId, metaStore: options.metaStore, network: options.network, streamManager, clock: options.clock, logger: this.logger,
      leaseTtlMs: options.leaseTtlMs ?? controllerLeaseTtlMs, maintenanceIntervalMs: partitionMaintenanceIntervalMs,
      ...(options.partitionManagerTickMs === undefined ? {} : { tickMs: options.partitionManagerTickMs }),
      ...(options.splitBytes === undefined ? {} : { splitBytes: options.splitBytes }),
    });
    partitionManager.start();
    this.state = { kind: 'leading', term: { revision, lease, streamManager, partitionManager } };
    this.termsWon += 1;
    this.logger.info({ term: revision, epoch, address: this.advertisedAddress }, 'controller leading');
  }

  /** Routing stops first (state), then the managers stop and the lease goes (a standby leads). */
  private async stepDown(term: Term, reason: string): Promise<void> {
    this.state = { kind: 'standby', leader: null };
    this.logger.warn({ term: term.revision, reason }, 'controller stepping down');
    const steps: Array<[string, () => Promise<void>]> = [
      ['partitionManager', () => term.partitionManager.stop()],
      ['streamManager', () => term.streamManager.close()],
      ['lease', () => term.lease.release()],
    ];
    for (const [name, run] of steps) {
      try {
        await run();
      } catch (error) {
        this.logger.error({ err: error, step: name }, 'controller step-down step failed');
      }
    }
  }
}

/** A malformed value is partition.corrupt (the partition map's keys' parser; same MetaStore). */
function parseLeader(kv: KeyValue): LeaderInfo {
  return { ...parseJson(controllerLeaderSchema, kv), term: kv.modRevision };
}

/** Who leads the cluster's controllers, from the MetaStore (tools: `kura status`); null if nobody. */
export async function readControllerLeader(metaStore: MetaStore): Promise<LeaderInfo | null> {
  const kv = await metaStore.get(controllerLeaderKey);
  return kv === null ? null : parseLeader(kv);
}
