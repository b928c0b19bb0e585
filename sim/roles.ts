// The stream layer's roles (docs/simulation.md, "What runs"): the stream manager with its
// embedded MetaStore (served to every other role over the network), and extent nodes. Each runs
// the real code of src/ in a SimProcess; start() after kill() is a process restart from the same
// disks. The partition layer's roles are in sim/partition-roles.ts.
//
// Invariants: a role's process is replaced on every start (the old one is dead first); what a
// role keeps across restarts is only what a real process keeps: its disks; every other role
// reaches the manager and the MetaStore only over the network (sm:1, sm:2), as in a cluster.
// The MetaStore forgets its leases when it opens (an embedded store's documented choice, made for
// holders in its own process); here its holders are other processes, so the manager process stays
// down at least a lease TTL after it died: every lease it forgets has lapsed at its holder too,
// which is what etcd (whose leases outlive a member restart) guarantees in a cluster.
import type { Logger } from 'pino';
import { SimDisk } from '../src/io/sim-disk.ts';
import { EmbeddedMetaStore } from '../src/metastore/embedded-meta-store.ts';
import { partitionLeaseTtlMs } from '../src/constants.ts';
import type { RpcServer } from '../src/rpc/network.ts';
import { ExtentNode } from '../src/stream/extent-node.ts';
import { StreamManager } from '../src/stream/stream-manager.ts';
import { StreamManagerProxy, serveStreamManager } from '../src/stream/stream-manager-proxy.ts';
import { StorageError } from '../src/util/errors.ts';
import { metaAddress, serveMetaStore } from './meta-service.ts';
import type { OwnershipMonitor } from './ownership.ts';
import type { DiskFaultState, SimProcess } from './process.ts';
import type { RoleKind, SimRole, SimStamp } from './stamp.ts';

export const managerAddress = 'sm:1';

export function noDiskFaults(): DiskFaultState {
  return { latencyMs: 0, misdirectedWrites: 0, misdirectSectors: 0, misdirected: 0 };
}

/** The stream manager and its embedded MetaStore: one process, one disk (embedded mode). */
export class ManagerRole implements SimRole {
  readonly name = 'manager';
  readonly kind: RoleKind = 'manager';
  readonly faultDomain = null;
  readonly disk: SimDisk;
  readonly diskFaults = noDiskFaults();
  private readonly stamp: SimStamp;
  private readonly logger: Logger | undefined;
  process: SimProcess | null = null;
  private metaStore: EmbeddedMetaStore | null = null;
  private server: RpcServer | null = null;
  /** Every manager of the current process, newest last (older ones are stale leaders). */
  private managers: StreamManager[] = [];
  private incarnation = 0;
  private readonly monitor: OwnershipMonitor;
  /** When the last live process of this role died (null: never). */
  private diedAtMs: number | null = null;

  constructor(stamp: SimStamp, monitor: OwnershipMonitor, logger?: Logger) {
    this.stamp = stamp;
    this.monitor = monitor;
    this.logger = logger;
    this.disk = new SimDisk({ random: stamp.random('disk:meta'), name: 'sim:meta' });
  }

  get up(): boolean {
    return this.process?.isAlive === true && this.server !== null;
  }

  /** The leading manager (tests and checkers use it in-process, as an operator tool would). */
  get leader(): StreamManager | null {
    return this.up ? this.managers.at(-1) ?? null : null;
  }

  /** Runs `work` on the leading manager as the manager process's code (it dies with it). */
  callLeader<T>(work: (manager: StreamManager) => Promise<T>): Promise<T> {
    const process = this.process;
    const leader = this.leader;
    if (process === null || leader === null) return Promise.reject(new StorageError('rpc.unreachable', 'the stream manager is down', { retryable: true }));
    return process.guard(() => process.run(() => work(leader)));
  }

  async start(): Promise<void> {
    this.kill();
    const process = this.stamp.newProcess('manager', 'sm');
    this.process = process;
    // Wait out the leases the store is about to forget (header comment).
    const waitMs = this.diedAtMs === null ? 0 : this.diedAtMs + partitionLeaseTtlMs - this.stamp.clock.monotonicMs();
    if (waitMs > 0) await process.guard(() => process.clock.sleep(waitMs));
    const metaStore = await process.guard(() => process.run(() => EmbeddedMetaStore.open({ disk: process.disk(this.disk, this.diskFaults), directory: 'meta', clock: process.clock })));
    this.metaStore = metaStore;
    this.monitor.storeOpened(this.stamp.clock.monotonicMs());
    await process.guard(() => process.run(() => serveMetaStore({ network: process.network, address: metaAddress, store: metaStore, monitor: this.monitor, nowMs: () => process.clock.monotonicMs() })));
    await this.lead(process);
  }

  /** A new StreamManager takes the next epoch; the old one keeps running until it is fenced. */
  async changeLeader(): Promise<void> {
    const process = this.process;
    if (process === null || !process.isAlive) return;
    await this.lead(process);
  }

  private async lead(process: SimProcess): Promise<void> {
    const metaStore = this.metaStore;
    if (metaStore === null) throw new StorageError('meta.unavailable', 'manager role has no MetaStore');
    this.incarnation += 1;
    const manager = new StreamManager({
      metaStore, network: process.network, clock: process.clock, random: this.stamp.random(`manager:${this.incarnation}`), replicaCountDefault: 3,
      ...(this.logger === undefined ? {} : { logger: this.logger }),
    });
    await process.guard(() => process.run(() => manager.start()));
    const previous = this.server;
    this.server = null;
    if (previous !== null) await process.guard(() => previous.close());
    this.server = await process.guard(() => process.run(() => serveStreamManager(process.network, managerAddress, manager)));
    this.managers.push(manager);
    process.run(() => manager.startRepairLoop());
    this.stamp.trace(`manager leads epoch=${manager.epoch}`);
  }

  kill(): void {
    if (this.process?.isAlive === true) this.diedAtMs = this.stamp.clock.monotonicMs();
    this.process?.kill();
    this.process = null;
    this.server = null;
    this.metaStore = null;
    this.managers = [];
  }

  powerLoss(): void {
    this.disk.crash({ tornWrites: true });
  }
}

export interface ExtentNodeRoleOptions {
  readonly index: number;
  readonly faultDomain: string;
  readonly upgradeDomain: string;
  readonly groupCommit: boolean;
  readonly logger?: Logger;
}

/** One extent node on one SimDisk. */
export class ExtentNodeRole implements SimRole {
  readonly name: string;
  readonly kind: RoleKind = 'extent-node';
  readonly faultDomain: string;
  readonly upgradeDomain: string;
  readonly groupCommit: boolean;
  readonly diskFaults = noDiskFaults();
  disk: SimDisk;
  process: SimProcess | null = null;
  node: ExtentNode | null = null;
  private readonly stamp: SimStamp;
  private readonly logger: Logger | undefined;
  private diskGeneration = 0;

  constructor(stamp: SimStamp, options: ExtentNodeRoleOptions) {
    this.stamp = stamp;
    this.name = `en${options.index}`;
    this.faultDomain = options.faultDomain;
    this.upgradeDomain = options.upgradeDomain;
    this.groupCommit = options.groupCommit;
    this.logger = options.logger;
    this.disk = this.newDisk();
  }

  get up(): boolean {
    return this.process?.isAlive === true && this.node !== null;
  }

  get address(): string {
    return `${this.name}:1`;
  }

  async start(): Promise<void> {
    this.kill();
    const process = this.stamp.newProcess(this.name, this.name);
    this.process = process;
    const manager = new StreamManagerProxy({ network: process.network, address: managerAddress });
    this.node = await process.guard(() => process.run(() => ExtentNode.start({
      nodeId: this.name, disk: process.disk(this.disk, this.diskFaults), clock: process.clock, random: this.stamp.random(`node:${this.name}`),
      network: process.network, listenAddress: this.address, manager, faultDomain: this.faultDomain, upgradeDomain: this.upgradeDomain,
      groupCommit: this.groupCommit, ...(this.logger === undefined ? {} : { logger: this.logger }),
    })));
  }

  kill(): void {
    this.process?.kill();
    this.process = null;
    this.node = null;
  }

  powerLoss(): void {
    this.disk.crash({ tornWrites: true });
  }

  /** The node comes back with a blank disk (replaced hardware): a new disk name. */
  replaceDisk(): void {
    this.disk = this.newDisk();
  }

  private newDisk(): SimDisk {
    this.diskGeneration += 1;
    const suffix = this.diskGeneration === 1 ? '' : `-r${this.diskGeneration}`;
    return new SimDisk({ random: this.stamp.random(`disk:${this.name}:${this.diskGeneration}`), name: `sim:${this.name}${suffix}` });
  }
}
