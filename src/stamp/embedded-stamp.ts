// EmbeddedStamp: a whole stamp in one process (DESIGN.md §3 "Modes", `kura serve`). It only wires
// the real components together; all logic lives in the layers it assembles:
//
//   FrontendServer (HTTP, Azure REST) ── BlobBackend ── PartitionClient ─┐        AccountStore
//        │ Authorizer: account keys (AccountStore), stored policies,      │ LocalNetwork (rows A<name>)
//        │ public access, CORS (the backend's rows)                       ▼
//   PartitionManager (leader, map) ─── MetaStore ─── PartitionServer "ps-1" ── StreamClient
//                                   (Embedded, fsync'd log                      │
//                                    on the first disk: <disk0>/meta)           ▼
//   StreamManager (placement, seal, repair) ◄── register/heartbeat ── ExtentNode per disk
//                                                                    (fault domain = upgrade domain = disk index)
//
// Replicas per extent = min(3, disks): one fault domain per disk, so a single-disk stamp keeps
// one copy of everything (said clearly by redundancy()). All roles talk through one LocalNetwork
// (no sockets, bodies passed by reference); only the front end listens on a real port.
//
// Start order and why: lock every disk (one stamp per data directory) → MetaStore (its open()
// drops the leases of the previous incarnation, so nothing waits out a TTL after kill -9) →
// stream manager (new epoch) → extent nodes (journal replay, register) → partition server →
// partition manager → wait until every partition of the map is served → accounts → front end
// listens last, so a client that can connect is served. Stop is the reverse and bounded: the
// front end drains (requests in flight get stampStopDrainMs, then their connections are cut),
// then each role's step runs with at most stampStopStepMsMax and the whole stop within
// stampStopTimeoutMs; a failed or overdue step is logged and the next one runs (every extent
// node is stopped even if another one fails, e.g. when its directory was deleted under it).
// Abandoning a step is safe: kill -9 at any point is survived by the journals, the MetaStore log
// and the partition commit logs.
//
// Fault model: a disk directory may be unwritable or belong to another node (its node.json); a
// start may find a crashed predecessor's state (stale lock taken over, leases dropped, logs
// replayed). Start-up that cannot serve every partition within stampReadyTimeoutMs fails loudly.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import type { Registry } from 'prom-client';
import {
  replicaCountDefault, repairIntervalMs, stampReadyPollMs, stampReadyTimeoutMs, stampStopDrainMs, stampStopStepMsMax, stampStopTimeoutMs, extentReadCacheBlockBytesMax, directReadBuffersPerStamp, directWriteBuffers, directWriteBuffersPerStamp, readBufferPoolBytesDefault, readBufferPoolLengthMin,
} from '../constants.ts';
import { blobTableSchema } from '../frontend/blob-service/blob-table-schema.ts';
import type { FrontendServer } from '../frontend/http-server.ts';
import type { AlignedBuffers } from '../io/aligned-buffers.ts';
import { directReadStaging, directWriteStaging, RealDisk } from '../io/real-disk.ts';
import { EmbeddedMetaStore } from '../metastore/embedded-meta-store.ts';
import { ExtentNodeMetrics } from '../observability/extent-node-metrics.ts';
import { StreamManagerMetrics } from '../observability/stream-manager-metrics.ts';
import { registerBlobRaceMetrics, type BlobRaceCounts } from '../observability/blob-race-metrics.ts';
import { registerBlobSweepMetrics } from '../observability/blob-sweep-metrics.ts';
import { registerStagingMetrics } from '../observability/staging-metrics.ts';
import { PartitionClient } from '../partition/partition-client.ts';
import { PartitionManager } from '../partition/partition-manager.ts';
import { readMap } from '../partition/partition-map.ts';
import { PartitionServer } from '../partition/partition-server.ts';
import { LocalNetwork } from '../rpc/local-network.ts';
import { ExtentNode } from '../stream/extent-node.ts';
import { blockHeaderBytes } from '../wire/extent-format.ts';
import { StreamManager } from '../stream/stream-manager.ts';
import { assert } from '../util/assert.ts';
import { settledWithin, type Clock } from '../util/clock.ts';
import { StorageError } from '../util/errors.ts';
import { ReadBufferPool } from '../util/read-buffer-pool.ts';
import { SeededRandom } from '../util/random.ts';
import { AccountStore } from './account-store.ts';
import { DataDirLock } from './data-dir-lock.ts';
import type { CopySourceOptions } from '../frontend/blob-service/remote-source.ts';
import { assembleFrontend, listenFrontend, type BackendFactory, type BackgroundTask } from './frontend-assembly.ts';

export interface EmbeddedStampOptions {
  /** Data directories, one fault domain each; the first also holds the MetaStore. */
  readonly disks: readonly string[];
  readonly clock: Clock;
  readonly logger?: Logger;
  /** Where the Blob endpoint listens; null: no front end (the account CLI). */
  readonly blob: { readonly host: string; readonly port: number } | null;
  readonly createBackend?: BackendFactory;
  /** Registry for the stream layer's metrics (the --admin port); none if absent. */
  readonly registry?: Registry;
  /** Who holds the data directories' lock (shown to a second process). */
  readonly role?: string;
  /** Front-end API version ceiling (x-ms-version). */
  readonly apiVersionLatest?: string;
  /** Copy sources outside Kura (docs/copy-sources.md); default: public hosts only. */
  readonly copySource?: CopySourceOptions;
  /** Put Blob bodies inlined in the blob row up to this size (docs/blob-schema.md, "Inline bodies"); 0 = off; default inlineBodyBytesDefault. */
  readonly inlineBodyBytesMax?: number;
  /** Bytes of the front end's cache of small data-stream pieces (docs/blob-schema.md "Bytes"); 0 = off; default frontendDataCacheBytes. */
  readonly dataCacheBytes?: number;
  /** Free-list bytes of the pool the disks read large blocks into and the front end gives back
   * (src/util/read-buffer-pool.ts); 0 = off; default readBufferPoolBytesDefault. */
  readonly readBufferPoolBytes?: number;
  /** O_DIRECT staging buffers for large writes, one pool for every disk (8.06 MiB each, made on
   * first need); 0 = O_DIRECT writes off; default min(directWriteBuffers × disks, directWriteBuffersPerStamp). */
  readonly directWriteBuffers?: number;
  /** O_DIRECT staging buffers for large reads, one pool for every disk; 0 = O_DIRECT reads off;
   * default directReadBuffersPerStamp. */
  readonly directReadBuffers?: number;
}

export interface StartupReport {
  readonly totalMs: number;
  /** Milliseconds spent in each start phase, in order. */
  readonly phasesMs: Readonly<Record<string, number>>;
  readonly partitions: number;
}

export const metaDirectory = 'meta';

export interface Redundancy {
  readonly faultDomains: number;
  readonly replicas: number;
  readonly statement: string;
}

/** What the stamp promises for the given number of disks, in words for the operator. */
export function redundancy(diskCount: number): Redundancy {
  assert(diskCount >= 1, 'a stamp needs at least one disk');
  const replicas = Math.min(replicaCountDefault, diskCount);
  if (diskCount === 1) {
    return {
      faultDomains: 1, replicas,
      statement: 'NO REDUNDANCY: one --disk is one fault domain, so every byte is stored once; losing or corrupting that disk loses data. Give three --disk directories on three different disks for three replicas.',
    };
  }
  const survives = replicas - 1 === 1 ? 'the loss of one disk' : `the loss of any ${replicas - 1} disks`;
  return { faultDomains: diskCount, replicas, statement: `${replicas} replicas of every extent in ${replicas} distinct fault domains (${diskCount} disks): survives ${survives}.` };
}

interface Parts {
  lock: DataDirLock | null;
  metaStore: EmbeddedMetaStore | null;
  network: LocalNetwork | null;
  streamManager: StreamManager | null;
  nodes: ExtentNode[];
  partitionServer: PartitionServer | null;
  partitionManager: PartitionManager | null;
  frontend: FrontendServer | null;
  background: BackgroundTask | null;
  raceCounts: (() => BlobRaceCounts) | null;
  readBuffers: ReadBufferPool | null;
  directWrites: AlignedBuffers | null;
  directReads: AlignedBuffers | null;
}

export class EmbeddedStamp {
  readonly startup: StartupReport;
  readonly accounts: AccountStore;
  readonly partitions: PartitionClient;
  readonly redundancy: Redundancy;
  /** The Blob endpoint's port (null without a front end). */
  readonly blobPort: number | null;
  private readonly parts: Parts;
  private readonly logger: Logger;
  private readonly clock: Clock;
  private stopping: Promise<StopReport> | null = null;

  private constructor(init: StampInit) {
    this.parts = init.parts;
    this.startup = init.startup;
    this.accounts = init.accounts;
    this.partitions = init.partitions;
    this.blobPort = init.blobPort;
    this.logger = init.logger;
    this.clock = init.clock;
    this.redundancy = redundancy(init.diskCount);
  }

  static async start(options: EmbeddedStampOptions): Promise<EmbeddedStamp> {
    if (options.disks.length === 0) throw new StorageError('config.invalid', 'a stamp needs at least one --disk directory');
    if (new Set(options.disks).size !== options.disks.length) throw new StorageError('config.invalid', 'a --disk directory is given twice');
    const logger = options.logger ?? pino({ level: 'silent' });
    const parts: Parts = { lock: null, metaStore: null, network: null, streamManager: null, nodes: [], partitionServer: null, partitionManager: null, frontend: null, background: null, raceCounts: null, readBuffers: null, directWrites: null, directReads: null };
    const phases = new Phases(options.clock);
    try {
      return new EmbeddedStamp(await startParts(options, parts, phases, logger));
    } catch (error) {
      await stopParts(parts, { clock: options.clock, logger, drainMs: 0 });
      throw error;
    }
  }

  /** Graceful, bounded stop (within stampStopTimeoutMs): the front end first (drain, then cut),
   * then every role, then the lock. A second call returns the first's outcome. */
  stop(options: { readonly drainMs?: number } = {}): Promise<StopReport> {
    this.stopping ??= stopParts(this.parts, { clock: this.clock, logger: this.logger, drainMs: options.drainMs ?? stampStopDrainMs });
    return this.stopping;
  }

  /** The pool of large read buffers the front end gives back (null without a front end). */
  get readBuffers(): ReadBufferPool | null {
    return this.parts.readBuffers;
  }

  /** The O_DIRECT staging buffers every disk of the stamp shares (null before the start made them). */
  get directWrites(): AlignedBuffers | null {
    return this.parts.directWrites;
  }

  /** The O_DIRECT read staging buffers every disk of the stamp shares (null before the start made them). */
  get directReads(): AlignedBuffers | null {
    return this.parts.directReads;
  }

  /** The extent nodes, one per disk in --disk order (tests and the admin port). */
  get extentNodes(): readonly ExtentNode[] {
    return this.parts.nodes;
  }
}

/** Measures the start phases on the stamp's clock. */
class Phases {
  private readonly clock: Clock;
  private readonly startMs: number;
  private lastMs: number;
  readonly phasesMs: Record<string, number> = {};

  constructor(clock: Clock) {
    this.clock = clock;
    this.startMs = clock.monotonicMs();
    this.lastMs = this.startMs;
  }

  done(name: string): void {
    const nowMs = this.clock.monotonicMs();
    this.phasesMs[name] = Math.round(nowMs - this.lastMs);
    this.lastMs = nowMs;
  }

  get totalMs(): number {
    return Math.round(this.clock.monotonicMs() - this.startMs);
  }
}

/** What a stop did: steps that failed or ran past their bound (abandoned), requests cut. */
export interface StopReport {
  readonly totalMs: number;
  readonly requestsCut: number;
  readonly failedSteps: readonly string[];
  readonly overdueSteps: readonly string[];
}

interface StampInit {
  readonly clock: Clock;
  readonly parts: Parts;
  readonly startup: StartupReport;
  readonly accounts: AccountStore;
  readonly partitions: PartitionClient;
  readonly blobPort: number | null;
  readonly logger: Logger;
  readonly diskCount: number;
}

async function startParts(options: EmbeddedStampOptions, parts: Parts, phases: Phases, logger: Logger): Promise<StampInit> {
  const { clock } = options;
  const random = new SeededRandom(randomBytes(8).readBigUInt64BE(0));
  parts.lock = await DataDirLock.acquire(options.disks, options.role ?? 'serve');
  // One pool of O_DIRECT staging buffers for every disk: the process's bound, whatever --disk count.
  const writeStagingBuffers = options.directWriteBuffers ?? Math.min(directWriteBuffers * options.disks.length, directWriteBuffersPerStamp);
  parts.directWrites = writeStagingBuffers === 0 ? null : directWriteStaging(writeStagingBuffers);
  // Likewise one pool of O_DIRECT read staging buffers (docs/formats/extent-file.md, "Reading").
  const readStagingBuffers = options.directReadBuffers ?? directReadBuffersPerStamp;
  parts.directReads = readStagingBuffers === 0 ? null : directReadStaging(readStagingBuffers);
  const firstDisk = options.disks[0] ?? '';
  parts.metaStore = await EmbeddedMetaStore.open({ disk: new RealDisk({ root: firstDisk, directWrites: parts.directWrites, directReads: parts.directReads, logger }), directory: metaDirectory, clock });
  phases.done('metaStore');
  const network = new LocalNetwork({ clock, localAddress: 'stamp' });
  parts.network = network;
  const { replicas } = redundancy(options.disks.length);
  const streamManager = new StreamManager({ metaStore: parts.metaStore, network: network.endpoint('stream-manager'), clock, random, logger, replicaCountDefault: replicas });
  parts.streamManager = streamManager;
  await streamManager.start();
  streamManager.startRepairLoop(repairIntervalMs);
  phases.done('streamManager');
  parts.readBuffers = readBufferPool(options);
  await startExtentNodes(options, parts, { streamManager, network, random, logger });
  phases.done('extentNodes');
  const partitions = await startPartitionLayer(options, parts, { streamManager, network, random, logger });
  phases.done('partitions');
  const accounts = await AccountStore.open({ tables: partitions.client, clock });
  phases.done('accounts');
  const blobPort = options.blob === null ? null : await startFrontend(options, parts, { accounts, client: partitions.client, logger });
  phases.done('frontend');
  if (options.registry !== undefined) watchMetrics(options.registry, parts);
  const startup: StartupReport = { totalMs: phases.totalMs, phasesMs: phases.phasesMs, partitions: partitions.count };
  logger.info({ ...startup, disks: options.disks.length, replicas, blobPort }, 'stamp ready');
  return { clock, parts, startup, accounts, partitions: partitions.client, blobPort, logger, diskCount: options.disks.length };
}

/**
 * The extent nodes' disks and the front end share one pool in a stamp with a Blob endpoint: the
 * front end is then the last holder of what the disks read for a Get Blob. None without one (no
 * holder ever gives a buffer back), or when switched off.
 */
function readBufferPool(options: EmbeddedStampOptions): ReadBufferPool | null {
  const bytesMax = options.readBufferPoolBytes ?? readBufferPoolBytesDefault;
  if (options.blob === null || bytesMax === 0) return null;
  // A pooled buffer must never be a cached block body (shared by every reader that hits it).
  assert(readBufferPoolLengthMin > extentReadCacheBlockBytesMax + blockHeaderBytes, 'pooled reads are larger than cached blocks');
  return new ReadBufferPool({ bytesMax, lengthMin: readBufferPoolLengthMin });
}

interface Wiring {
  readonly streamManager: StreamManager;
  readonly network: LocalNetwork;
  readonly random: SeededRandom;
  readonly logger: Logger;
}

async function startExtentNodes(options: EmbeddedStampOptions, parts: Parts, wiring: Wiring): Promise<void> {
  for (const [index, directory] of options.disks.entries()) {
    const nodeId = (await storedNodeId(directory)) ?? `en-${index}-${randomBytes(4).toString('hex')}`;
    const node = await ExtentNode.start({
      nodeId, disk: new RealDisk({ root: directory, directWrites: parts.directWrites, directReads: parts.directReads, logger: wiring.logger, ...(parts.readBuffers === null ? {} : { readBuffers: parts.readBuffers }) }), clock: options.clock, random: wiring.random,
      network: wiring.network.endpoint(nodeId), listenAddress: `${nodeId}:1`, manager: wiring.streamManager,
      faultDomain: `fd${index}`, upgradeDomain: `ud${index}`, groupCommit: true, logger: wiring.logger,
    });
    parts.nodes.push(node);
  }
}

/** The node id a disk was first used with (its node.json), so a disk keeps its identity even
 * when the --disk order changes; null for a new disk. */
async function storedNodeId(directory: string): Promise<string | null> {
  try {
    const parsed: unknown = JSON.parse(await readFile(join(directory, 'node.json'), 'utf8'));
    const nodeId = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>)['nodeId'] : undefined;
    return typeof nodeId === 'string' && nodeId !== '' ? nodeId : null;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new StorageError('config.invalid', `${directory}/node.json is unreadable; is this a Kura disk?`, { cause: error });
  }
}

async function startPartitionLayer(options: EmbeddedStampOptions, parts: Parts, wiring: Wiring): Promise<{ client: PartitionClient; count: number }> {
  const { clock } = options;
  const metaStore = parts.metaStore;
  assert(metaStore !== null, 'MetaStore opened before the partition layer');
  const server = new PartitionServer({
    serverId: 'ps-1', metaStore, network: wiring.network.endpoint('partition-server'), listenAddress: 'partition-server:1',
    streamManager: wiring.streamManager, clock, random: wiring.random, logger: wiring.logger,
    clientId: `ps-1-${process.pid}-${clock.nowMs().toString(36)}`,
    // The partitions hold the blob tables: their schema turns data GC on and keeps splits at blob boundaries.
    table: blobTableSchema,
  });
  parts.partitionServer = server;
  await server.start();
  const manager = new PartitionManager({
    managerId: 'pm-1', metaStore, network: wiring.network.endpoint('partition-manager'), streamManager: wiring.streamManager, clock, logger: wiring.logger,
  });
  parts.partitionManager = manager;
  manager.start();
  const count = await waitUntilServed(metaStore, server, clock);
  return { client: new PartitionClient({ metaStore, network: wiring.network.endpoint('frontend'), clock }), count };
}

/** Waits (bounded) until the map exists and this stamp's server serves every partition in it. */
async function waitUntilServed(metaStore: EmbeddedMetaStore, server: PartitionServer, clock: Clock): Promise<number> {
  const deadlineMs = clock.monotonicMs() + stampReadyTimeoutMs;
  for (;;) {
    const current = await readMap(metaStore);
    const serving = new Set(server.servingPartitions());
    if (current !== null && current.map.partitions.every((entry) => serving.has(entry.partitionId))) return current.map.partitions.length;
    if (clock.monotonicMs() > deadlineMs) {
      throw new StorageError('partition.unavailable', `the partition layer did not serve every partition within ${stampReadyTimeoutMs} ms (map ${current === null ? 'absent' : `version ${current.map.version}`}, serving ${serving.size})`, { retryable: true });
    }
    await clock.sleep(stampReadyPollMs);
  }
}

async function startFrontend(options: EmbeddedStampOptions, parts: Parts, wiring: { accounts: AccountStore; client: PartitionClient; logger: Logger }): Promise<number> {
  const blob = options.blob;
  assert(blob !== null, 'startFrontend without a blob endpoint');
  const frontend = assembleFrontend({
    tables: wiring.client, accounts: wiring.accounts, clock: options.clock, logger: wiring.logger,
    ...(options.createBackend === undefined ? {} : { createBackend: options.createBackend }),
    ...(options.apiVersionLatest === undefined ? {} : { apiVersionLatest: options.apiVersionLatest }),
    ...(options.copySource === undefined ? {} : { copySource: options.copySource }),
    ...(options.inlineBodyBytesMax === undefined ? {} : { inlineBodyBytesMax: options.inlineBodyBytesMax }),
    ...(options.dataCacheBytes === undefined ? {} : { dataCacheBytes: options.dataCacheBytes }),
    ...(parts.readBuffers === null ? {} : { readBuffers: parts.readBuffers }),
    onBackground: (task) => { parts.background = task; },
    onRaceCounts: (read) => { parts.raceCounts = read; },
  });
  parts.frontend = frontend;
  const port = await listenFrontend(frontend, blob);
  // The deleted-container sweep runs while the endpoint serves; stopParts stops it first.
  parts.background?.start();
  return port;
}

function watchMetrics(registry: Registry, parts: Parts): void {
  const nodeMetrics = new ExtentNodeMetrics({ registry });
  for (const node of parts.nodes) nodeMetrics.watch(node);
  if (parts.streamManager !== null) new StreamManagerMetrics({ registry, manager: parts.streamManager });
  registerBlobSweepMetrics(registry, () => parts.background?.counts?.() ?? null);
  registerBlobRaceMetrics(registry, () => parts.raceCounts?.() ?? null);
  registerStagingMetrics(registry, () => ({ write: parts.directWrites, read: parts.directReads }));
}

/** Stops whatever was started, in reverse order; every step runs even if an earlier one failed or
 * ran past its bound (min(stampStopStepMsMax, what is left of stampStopTimeoutMs)). */
async function stopParts(parts: Parts, options: { readonly clock: Clock; readonly logger: Logger; readonly drainMs: number }): Promise<StopReport> {
  const { clock, logger } = options;
  const startMs = clock.monotonicMs();
  const deadlineMs = startMs + stampStopTimeoutMs;
  let requestsCut = 0;
  const steps: Array<[string, () => Promise<void>]> = [
    ['background', async () => { await parts.background?.stop(); }],
    ['frontend', async () => { requestsCut = (await parts.frontend?.close({ drainMs: options.drainMs }))?.cut ?? 0; }],
    ['partitionManager', async () => { await parts.partitionManager?.stop(); }],
    ['partitionServer', async () => { await parts.partitionServer?.stop(); }],
    ['extentNodes', () => stopAll(parts.nodes.map((node) => () => node.stop()))],
    ['streamManager', async () => { await parts.streamManager?.close(); }],
    ['network', async () => { await parts.network?.close(); }],
    ['metaStore', async () => { await parts.metaStore?.close(); }],
    ['lock', async () => { await parts.lock?.release(); }],
  ];
  const failedSteps: string[] = [];
  const overdueSteps: string[] = [];
  for (const [name, step] of steps) {
    // The front end's own bound (drain + settle) is longer than a role's step.
    const boundMs = Math.max(0, Math.min(name === 'frontend' ? options.drainMs + stampStopStepMsMax : stampStopStepMsMax, deadlineMs - clock.monotonicMs()));
    const running = step().catch((error: unknown) => {
      failedSteps.push(name);
      logger.error({ err: error, step: name }, 'stamp stop step failed');
    });
    if (!(await settledWithin(clock, [running], boundMs))) {
      overdueSteps.push(name);
      logger.error({ step: name, boundMs }, 'stamp stop step ran past its bound; abandoned');
    }
  }
  const report: StopReport = { totalMs: Math.round(clock.monotonicMs() - startMs), requestsCut, failedSteps, overdueSteps };
  logger.info(report, 'stamp stopped');
  return report;
}

/** Runs every stop at once and waits for all (one failing never keeps another from running). */
async function stopAll(stops: readonly (() => Promise<void>)[]): Promise<void> {
  const outcomes = await Promise.allSettled(stops.map((stop) => stop()));
  const reasons = outcomes.flatMap((outcome) => (outcome.status === 'rejected' ? [outcome.reason as unknown] : []));
  if (reasons.length > 0) throw new AggregateError(reasons, `${reasons.length} of ${stops.length} stops failed`);
}
