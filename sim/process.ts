// A simulated process (docs/simulation.md, "Process model"): the clock, network and disks one
// role's code sees. kill() is kill -9: from then on none of its timers fire, none of its calls,
// disk operations or sleeps settle, and its servers are closed, so its code stops wherever it
// was awaiting; un-synced disk writes stay in the (simulated) page cache, as after a real
// process crash. Power loss is SimDisk.crash() on top of it.
//
// Code of a process runs in its async context (AsyncLocalStorage): timers and RPC handlers
// enter it, awaits keep it. A failpoint with the `crash` action uses it to kill exactly the
// process that hit it.
//
// Disk faults that SimDisk does not have live here: slow disks (every operation waits on the
// virtual clock) and misdirected writes (a write lands a few sectors away from its target).
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Disk, DiskFile, OpenOptions } from '../src/io/disk.ts';
import { simSectorBytes } from '../src/io/sim-disk.ts';
import type { SimDisk, SimDiskFile } from '../src/io/sim-disk.ts';
import type { Network, RpcCallOptions, RpcHandler, RpcRequest, RpcResponse, RpcServer } from '../src/rpc/network.ts';
import type { SimNetwork } from '../src/rpc/sim-network.ts';
import type { Clock, TimerHandle } from '../src/util/clock.ts';
import type { SimClock } from './sim-clock.ts';

const context = new AsyncLocalStorage<SimProcess>();

/** The simulated process whose code is running now, or null (the driver, the workload). */
export function currentProcess(): SimProcess | null {
  return context.getStore() ?? null;
}

const never = new Promise<never>(() => undefined);

/** A promise that settles like `promise` while `alive()` holds at settle time, else never. */
function whileAlive<T>(alive: () => boolean, promise: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    promise.then(
      (value) => {
        if (alive()) resolve(value);
      },
      (error: unknown) => {
        if (alive()) reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

export interface DiskFaultState {
  /** Extra latency of every operation, ms (0: not slow). */
  latencyMs: number;
  /** Writes still to be misdirected, and by how many sectors. */
  misdirectedWrites: number;
  misdirectSectors: number;
  /** Misdirected writes done (figure). */
  misdirected: number;
}

export class SimProcess {
  readonly name: string;
  readonly clock: ProcessClock;
  readonly network: ProcessNetwork;
  private alive = true;

  constructor(options: { readonly name: string; readonly clock: SimClock; readonly fabric: SimNetwork; readonly address: string; readonly wallOffsetMs: number }) {
    this.name = options.name;
    this.clock = new ProcessClock(this, options.clock, options.wallOffsetMs);
    this.network = new ProcessNetwork(this, options.fabric.endpoint(options.address));
  }

  get isAlive(): boolean {
    return this.alive;
  }

  /** Runs `work` as this process's code (its async context). */
  run<T>(work: () => T): T {
    return context.run(this, work);
  }

  /** This process's view of a disk (dies with it; slow and misdirected writes per `faults`). */
  disk(inner: SimDisk, faults: DiskFaultState): Disk {
    return new ProcessDisk(this, inner, faults);
  }

  /** kill -9. */
  kill(): void {
    if (!this.alive) return;
    this.alive = false;
    this.network.closeServers();
  }

  /**
   * Starts `work` only while this process lives, and settles like it only while it still lives
   * (a dead process starts nothing and learns nothing).
   */
  guard<T>(work: () => Promise<T>): Promise<T> {
    if (!this.alive) return never;
    return whileAlive(() => this.alive, work());
  }
}

export class ProcessClock implements Clock {
  private readonly owner: SimProcess;
  private readonly base: SimClock;
  /** Wall-clock offset of this process (clock jumps and skew); monotonic time is shared. */
  wallOffsetMs: number;

  constructor(owner: SimProcess, base: SimClock, wallOffsetMs: number) {
    this.owner = owner;
    this.base = base;
    this.wallOffsetMs = wallOffsetMs;
  }

  nowMs(): number {
    return this.base.nowMs() + this.wallOffsetMs;
  }

  monotonicMs(): number {
    return this.base.monotonicMs();
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.setTimer(ms, resolve);
    });
  }

  setTimer(ms: number, callback: () => void): TimerHandle {
    const owner = this.owner;
    if (!owner.isAlive) return { cancel: () => undefined };
    return this.base.setTimer(ms, () => {
      if (owner.isAlive) owner.run(callback);
    });
  }
}

export class ProcessNetwork implements Network {
  private readonly owner: SimProcess;
  private readonly inner: SimNetwork;
  private readonly servers: RpcServer[] = [];

  constructor(owner: SimProcess, inner: SimNetwork) {
    this.owner = owner;
    this.inner = inner;
  }

  async listen(address: string, handler: RpcHandler): Promise<RpcServer> {
    const owner = this.owner;
    const server = await owner.guard(() => this.inner.listen(address, (request, rpcContext) => {
      if (!owner.isAlive) return never;
      return owner.run(() => handler(request, rpcContext));
    }));
    this.servers.push(server);
    return server;
  }

  call(address: string, request: RpcRequest, options?: RpcCallOptions): Promise<RpcResponse> {
    return this.owner.guard(() => this.inner.call(address, request, options));
  }

  close(): Promise<void> {
    return this.owner.guard(() => this.inner.close());
  }

  closeServers(): void {
    for (const server of this.servers.splice(0)) void server.close();
  }
}

class ProcessDisk implements Disk {
  readonly name: string;
  private readonly owner: SimProcess;
  private readonly inner: SimDisk;
  private readonly faults: DiskFaultState;

  constructor(owner: SimProcess, inner: SimDisk, faults: DiskFaultState) {
    this.owner = owner;
    this.inner = inner;
    this.faults = faults;
    this.name = inner.name;
  }

  /** Waits the slow-disk latency, runs the operation, and settles only while the process lives. */
  async step<T>(operation: () => Promise<T>): Promise<T> {
    if (this.faults.latencyMs > 0) await this.owner.guard(() => this.owner.clock.sleep(this.faults.latencyMs));
    return this.owner.guard(operation);
  }

  async open(path: string, options: OpenOptions): Promise<DiskFile> {
    const file = await this.step(() => this.inner.open(path, options));
    return new ProcessFile(this, file, this.faults);
  }

  list(directory: string): Promise<string[]> {
    return this.step(() => this.inner.list(directory));
  }

  makeDirectory(directory: string): Promise<void> {
    return this.step(() => this.inner.makeDirectory(directory));
  }

  rename(from: string, to: string): Promise<void> {
    return this.step(() => this.inner.rename(from, to));
  }

  remove(path: string): Promise<void> {
    return this.step(() => this.inner.remove(path));
  }

  syncDirectory(directory: string): Promise<void> {
    return this.step(() => this.inner.syncDirectory(directory));
  }

  exists(path: string): Promise<boolean> {
    return this.step(() => this.inner.exists(path));
  }

  freeBytes(): Promise<number> {
    return this.step(() => this.inner.freeBytes());
  }
}

class ProcessFile implements DiskFile {
  readonly path: string;
  private readonly disk: ProcessDisk;
  private readonly inner: SimDiskFile;
  private readonly faults: DiskFaultState;

  constructor(disk: ProcessDisk, inner: SimDiskFile, faults: DiskFaultState) {
    this.disk = disk;
    this.inner = inner;
    this.faults = faults;
    this.path = inner.path;
  }

  size(): Promise<number> {
    return this.disk.step(() => this.inner.size());
  }

  read(position: number, length: number): Promise<Buffer> {
    return this.disk.step(() => this.inner.read(position, length));
  }

  write(position: number, data: Uint8Array): Promise<void> {
    return this.disk.step(() => this.inner.write(this.target(position), data));
  }

  writev(position: number, parts: readonly Uint8Array[]): Promise<void> {
    return this.disk.step(() => this.inner.writev(this.target(position), parts));
  }

  async writevSynced(position: number, parts: readonly Uint8Array[]): Promise<void> {
    // Two steps, so a crash can fall between the write and its O_DSYNC completion (a torn or
    // dropped record); the completion makes only this write durable, not the file's other writes.
    const write = await this.disk.step(() => this.inner.startSyncedWrite(this.target(position), parts));
    await this.disk.step(() => write.complete());
  }

  truncate(length: number): Promise<void> {
    return this.disk.step(() => this.inner.truncate(length));
  }

  sync(): Promise<void> {
    return this.disk.step(() => this.inner.sync());
  }

  close(): Promise<void> {
    return this.disk.step(() => this.inner.close());
  }

  /** Where a write really lands: its position, or a few sectors further if one is misdirected. */
  private target(position: number): number {
    if (this.faults.misdirectedWrites <= 0) return position;
    this.faults.misdirectedWrites -= 1;
    this.faults.misdirected += 1;
    return position + this.faults.misdirectSectors * simSectorBytes;
  }
}
