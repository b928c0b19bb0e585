// A real in-process stamp for the Blob service tests: EmbeddedMetaStore, StreamManager and three
// ExtentNodes (three fault domains) on RealDisks in a temporary directory, a PartitionServer (with
// the blob tables' schema: data GC on, splits at blob boundaries) and
// PartitionManager, all over LocalNetwork; a PartitionClient as the BlobTables of
// PartitionBlobBackend; the real FrontendServer on 127.0.0.1 with the development account; the
// official SDK as the client. The backend gets a ShiftedClock so lease tests can move its time
// without waiting (the stamp and the HTTP edge keep the system clock).

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlobServiceClient, RestError, StorageSharedKeyCredential, newPipeline, type RequestPolicyFactory } from '@azure/storage-blob';
import { Authorizer } from '../../../../src/frontend/auth/authorizer.ts';
import { blobTableSchema } from '../../../../src/frontend/blob-service/blob-table-schema.ts';
import { PartitionBlobBackend, type PartitionBlobBackendOptions } from '../../../../src/frontend/blob-service/partition-blob-backend.ts';
import { FrontendServer } from '../../../../src/frontend/http-server.ts';
import { RealDisk } from '../../../../src/io/real-disk.ts';
import { EmbeddedMetaStore } from '../../../../src/metastore/embedded-meta-store.ts';
import { PartitionClient } from '../../../../src/partition/partition-client.ts';
import type { MaintenancePolicy } from '../../../../src/partition/partition-balance.ts';
import { PartitionManager } from '../../../../src/partition/partition-manager.ts';
import { readMap } from '../../../../src/partition/partition-map.ts';
import type { PartitionLimits } from '../../../../src/partition/partition.ts';
import { PartitionServer } from '../../../../src/partition/partition-server.ts';
import { LocalNetwork } from '../../../../src/rpc/local-network.ts';
import { ExtentNode } from '../../../../src/stream/extent-node.ts';
import { StreamManager } from '../../../../src/stream/stream-manager.ts';
import { SystemClock, type Clock, type TimerHandle } from '../../../../src/util/clock.ts';
import { SeededRandom, type Random } from '../../../../src/util/random.ts';
import { account, accountKey, accountKeyBase64, apiVersionLatest } from '../helpers.ts';

/** The system clock, moved forward by `offsetMs` (lease and expiry tests). */
export class ShiftedClock implements Clock {
  readonly #inner = new SystemClock();
  offsetMs = 0;

  nowMs(): number {
    return this.#inner.nowMs() + this.offsetMs;
  }

  monotonicMs(): number {
    return this.#inner.monotonicMs() + this.offsetMs;
  }

  sleep(ms: number): Promise<void> {
    return this.#inner.sleep(ms);
  }

  setTimer(ms: number, callback: () => void): TimerHandle {
    return this.#inner.setTimer(ms, callback);
  }
}

export interface BlobStampOptions {
  /** Limits of every partition (GC tests: no grace, small tail seals). */
  readonly partitionLimits?: Partial<PartitionLimits>;
  /** The manager splits partitions past this many bytes (split tests). */
  readonly splitBytes?: number;
  /** The manager's merge / hot-split / balancing thresholds (merge tests). */
  readonly managerPolicy?: Partial<MaintenancePolicy>;
  /** Request bytes each in-process server admits at once (admission tests; default rpcInFlightBytesMax). */
  readonly networkInFlightBytesMax?: number;
  /** The front end's PartitionClient admission (default partitionClientBodyBytesMax). */
  readonly clientBodyBytesMax?: number;
  /** Copy sources outside Kura: policy and limits (remote copy tests). */
  readonly copySource?: PartitionBlobBackendOptions['copySource'];
  /** Put Blob bodies inlined in the blob row up to this size (default: the backend's; 0 = off). */
  readonly inlineBodyBytesMax?: number;
  /** Partition servers' lease TTL (crash tests: a crashed owner's partitions move after it). */
  readonly leaseTtlMs?: number;
}

export class BlobStamp {
  readonly backendClock = new ShiftedClock();
  client!: BlobServiceClient;
  backend!: PartitionBlobBackend;
  tables!: PartitionClient;
  server!: PartitionServer;
  manager!: PartitionManager;
  metaStore!: EmbeddedMetaStore;
  network!: LocalNetwork;
  port = 0;
  readonly #stops: (() => Promise<void>)[] = [];
  readonly #options: BlobStampOptions;
  #root = '';
  #serverCount = 0;
  #partitionWiring: { metaStore: EmbeddedMetaStore; network: LocalNetwork; streamManager: StreamManager; clock: SystemClock; random: SeededRandom } | null = null;

  private constructor(options: BlobStampOptions) {
    this.#options = options;
  }

  static async start(options: BlobStampOptions = {}): Promise<BlobStamp> {
    const stamp = new BlobStamp(options);
    await stamp.#start();
    return stamp;
  }

  /** An SDK client whose requests carry x-ms-version `version` (set before they are signed): Azure's
   * answers that differ by version. */
  clientAtVersion(version: string): BlobServiceClient {
    return this.clientWithHeaders({ 'x-ms-version': version });
  }

  /** An SDK client that sets `headers` on every request before it is signed (headers the SDK has no option for). */
  clientWithHeaders(headers: Readonly<Record<string, string>>): BlobServiceClient {
    const pipeline = newPipeline(new StorageSharedKeyCredential(account, accountKeyBase64), { retryOptions: { maxTries: 1 } });
    const setHeaders: RequestPolicyFactory = {
      create: (next) => ({
        sendRequest: (request) => {
          for (const [name, value] of Object.entries(headers)) request.headers.set(name, value);
          return next.sendRequest(request);
        },
      }),
    };
    // The SDK runs added factories before its Sign phase, so the signature covers these headers.
    pipeline.factories.push(setHeaders);
    return new BlobServiceClient(this.endpoint, pipeline);
  }

  /** Rows (live) whose key starts with `prefix` (a string of the blob tables' keys). */
  async rowCount(prefix: string): Promise<number> {
    let count = 0;
    let continuation: string | undefined;
    do {
      const page = await this.tables.scan({ prefix: Buffer.from(prefix), limit: 1000, ...(continuation === undefined ? {} : { continuation }) });
      count += page.items.filter((item) => item.kind === 'row').length;
      continuation = page.continuation ?? undefined;
    } while (continuation !== undefined);
    return count;
  }

  /** The stamp's directory (three disks d0..d2; the MetaStore is d0/meta). */
  get root(): string {
    return this.#root;
  }

  async #start(): Promise<void> {
    const clock = new SystemClock();
    const random = new SeededRandom(20_260_101n);
    this.#root = await mkdtemp(join(tmpdir(), 'kura-blob-'));
    const metaStore = await EmbeddedMetaStore.open({ disk: new RealDisk({ root: join(this.#root, 'd0') }), directory: 'meta', clock });
    this.metaStore = metaStore;
    this.#stops.push(() => metaStore.close());
    const network = new LocalNetwork({ clock, localAddress: 'stamp', ...(this.#options.networkInFlightBytesMax === undefined ? {} : { inFlightBytesMax: this.#options.networkInFlightBytesMax }) });
    this.network = network;
    this.#stops.push(() => network.close());
    const streamManager = new StreamManager({ metaStore, network: network.endpoint('stream-manager'), clock, random, replicaCountDefault: 3 });
    await streamManager.start();
    this.#stops.push(() => streamManager.close());
    for (let index = 0; index < 3; index++) {
      const nodeId = `en${index}`;
      const node = await ExtentNode.start({
        nodeId, disk: new RealDisk({ root: join(this.#root, `d${index}`) }), clock, random, network: network.endpoint(nodeId),
        listenAddress: `${nodeId}:1`, manager: streamManager, faultDomain: `fd${index}`, upgradeDomain: `ud${index}`, groupCommit: true,
      });
      this.#stops.push(() => node.stop());
    }
    await this.#startPartitions(metaStore, network, streamManager, clock, random);
    await this.#startFrontend(clock);
  }

  async #startPartitions(metaStore: EmbeddedMetaStore, network: LocalNetwork, streamManager: StreamManager, clock: SystemClock, random: SeededRandom): Promise<void> {
    this.#partitionWiring = { metaStore, network, streamManager, clock, random };
    await this.#startServer();
    this.#stops.push(() => this.server.stop());
    const manager = new PartitionManager({
      managerId: 'pm-1', metaStore, network: network.endpoint('partition-manager'), streamManager, clock,
      ...(this.#options.splitBytes === undefined ? {} : { splitBytes: this.#options.splitBytes }),
      ...(this.#options.managerPolicy === undefined ? {} : { policy: this.#options.managerPolicy }),
    });
    this.manager = manager;
    manager.start();
    this.#stops.push(() => manager.stop());
    await this.#waitServing();
    this.tables = new PartitionClient({
      metaStore, network: network.endpoint('frontend'), clock, ...(this.#options.clientBodyBytesMax === undefined ? {} : { bodyBytesMax: this.#options.clientBodyBytesMax }),
    });
  }

  async #startFrontend(clock: SystemClock): Promise<void> {
    const backend = new PartitionBlobBackend({
      tables: this.tables, clock: this.backendClock, ...(this.#options.copySource === undefined ? {} : { copySource: this.#options.copySource }),
      ...(this.#options.inlineBodyBytesMax === undefined ? {} : { inlineBodyBytesMax: this.#options.inlineBodyBytesMax }),
    });
    this.backend = backend;
    this.#stops.push(() => backend.copies.stop());
    const authorizer = new Authorizer({
      clock, accountKeys: (name) => (name === account ? [accountKey] : null), storedPolicy: this.backend.storedPolicy, publicAccess: this.backend.publicAccess,
    });
    const frontend = new FrontendServer({ backend: this.backend, authorizer, clock, corsRules: this.backend.corsRules, apiVersionLatest });
    this.port = await frontend.listen(0, '127.0.0.1');
    this.#stops.push(async () => { await frontend.close(); });
    this.client = new BlobServiceClient(this.endpoint, new StorageSharedKeyCredential(account, accountKeyBase64), { retryOptions: { maxTries: 1 } });
  }

  async #startServer(): Promise<void> {
    const wiring = this.#partitionWiring;
    if (wiring === null) throw new Error('partition layer not started');
    this.#serverCount += 1;
    const serverId = `ps-${this.#serverCount}`;
    const server = new PartitionServer({
      serverId, metaStore: wiring.metaStore, network: wiring.network.endpoint(`partition-server-${this.#serverCount}`), listenAddress: `partition-server-${this.#serverCount}:1`,
      streamManager: wiring.streamManager, clock: wiring.clock, random: wiring.random, table: blobTableSchema,
      ...(this.#options.partitionLimits === undefined ? {} : { partitionLimits: this.#options.partitionLimits }),
      ...(this.#options.leaseTtlMs === undefined ? {} : { leaseTtlMs: this.#options.leaseTtlMs }),
    });
    this.server = server;
    await server.start();
  }

  async #waitServing(): Promise<void> {
    const wiring = this.#partitionWiring;
    if (wiring === null) throw new Error('partition layer not started');
    for (let waited = 0; ; waited += 20) {
      const map = await readMap(wiring.metaStore);
      const serverId = `ps-${this.#serverCount}`;
      const serving = new Set(this.server.servingPartitions());
      if (map !== null && map.map.partitions.every((entry) => serving.has(entry.partitionId) && entry.owner?.serverId === serverId)) return;
      if (waited > 60_000) throw new Error('the partition layer did not start serving');
      await wiring.clock.sleep(20);
    }
  }

  /** The partition server dies (kill -9: 'crash', its lease expires) or stops ('stop': a move), and a
   * new one takes every partition over, loading each from its streams (checkpoint + log replay). */
  async replaceServer(how: 'crash' | 'stop'): Promise<void> {
    const old = this.server;
    if (how === 'crash') await old.crash();
    else await old.stop();
    await this.#startServer();
    await this.#waitServing();
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}/${account}`;
  }

  /** Checkpoints, compacts and runs one GC pass on every partition served; the passes' totals. */
  async collect(): Promise<{ partitions: number; bytesCopied: number; extentsDropped: number; opaqueRows: number }> {
    const totals = { partitions: 0, bytesCopied: 0, extentsDropped: 0, opaqueRows: 0 };
    for (const partitionId of this.server.servingPartitions()) {
      const partition = this.server.servedPartition(partitionId);
      if (partition === null) continue;
      await partition.checkpoint();
      await partition.compact();
      const report = await partition.collectGarbage();
      totals.partitions += 1;
      totals.bytesCopied += report?.bytesCopied ?? 0;
      totals.extentsDropped += report?.extentsDropped ?? 0;
      totals.opaqueRows += report?.opaqueRows ?? 0;
    }
    return totals;
  }

  async stop(): Promise<void> {
    for (const stop of this.#stops.reverse()) await stop();
    await rm(this.#root, { recursive: true, force: true });
  }
}

/** The RestError a call fails with (or throws if it succeeds). */
export async function restError(call: () => Promise<unknown>): Promise<RestError> {
  try {
    await call();
  } catch (error) {
    if (error instanceof RestError) return error;
    throw error;
  }
  throw new Error('expected the call to fail');
}

export async function expectError(call: () => Promise<unknown>, status: number, code: string | undefined): Promise<void> {
  const error = await restError(call);
  const actual = error.code ?? error.response?.headers.get('x-ms-error-code');
  if (error.statusCode !== status || (code !== undefined && actual !== code)) {
    throw new Error(`expected ${status} ${code ?? ''}, got ${error.statusCode ?? '?'} ${actual ?? ''}: ${error.message}`);
  }
}

/** One of `items`, chosen by the seeded random (model tests: reproducible by seed). */
export function pick<T>(random: Random, items: readonly T[]): T {
  const item = items[random.int(items.length)];
  if (item === undefined) throw new Error('pick from an empty list');
  return item;
}
