// The blob workloads of issue 5, each run against one peer: Put Blob and Get Blob at every
// size × concurrency (SDK, and raw undici where asked), one large blob uploaded in blocks and
// downloaded, List Blobs over many blobs, and a mixed read/write run. Every timed loop goes
// through runClosedLoop (bounded in count and time); the server process is sampled around it;
// every write loop keeps a ledger of acknowledged blobs and ends with the durability check.
import { runClosedLoop } from '../lib/stats.ts';
import { SeededRandom } from '../../src/util/random.ts';
import { blockIdFor, type LargeBlobClient, type PutGetClient } from './blob-client.ts';
import { forEachBounded, sequenceName } from './bounded-parallel.ts';
import { checkDurability, type DurabilityOutcome } from './durability.ts';
import { BlockPayloads, expectedCrc32c, payloadFor, StreamChecksum, type LedgerEntry } from './payload.ts';
import type { BenchPeer } from './peer.ts';
import { ProcessSampler } from './proc-sample.ts';
import { goalCells, sizeLabel, type BlobProfile, type PutGetCell } from './profiles.ts';
import { RawBlobClient } from './raw-client.ts';
import type { WorkloadKind, WorkloadResult } from './results.ts';
import { SdkBlobClient } from './sdk-client.ts';

export type WorkloadSpec =
  | PutGetCell
  /** One large blob uploaded in blocks, then downloaded: with the SDK, and again raw. */
  | { readonly kind: 'big'; readonly client: 'sdk' | 'raw' }
  | { readonly kind: 'list' }
  | { readonly kind: 'mixed' };

/** Everything a workload needs about the peer it runs against. */
export interface PeerSession {
  readonly peer: BenchPeer;
  readonly profile: BlobProfile;
  /** The endpoint and account the raw client signs for (the SDK clients below were made from it). */
  readonly connectionString: string;
  /** The SDK client of the timed loops (no retries); the port survives restarts, so it does too. */
  readonly sdk: SdkBlobClient;
  /** An SDK client that retries, for untimed setup and cleanup right after a restart. */
  readonly setup: SdkBlobClient;
  /**
   * 'own-run' (default): a peer's own run; every write workload of a durable peer ends with the
   * kill -9 check, and every workload deletes its container. 'goal-round' (goal-rounds.ts): no
   * kill -9 (the peers stay up; the check is in each peer's own run) and the container is kept:
   * deleting one set Kura's CPU to 200-440 ms a second for ~1 s afterwards (a probe at load 10),
   * which would land in the next peer's cell; the peer's directory goes when the rounds stop it.
   */
  readonly phase?: 'own-run' | 'goal-round';
}

/** Starts the peer and makes the session's clients from the endpoint it printed. */
export async function startSession(peer: BenchPeer, profile: BlobProfile, options: { readonly phase?: 'own-run' | 'goal-round' } = {}): Promise<PeerSession> {
  const endpoint = await peer.start();
  const sdk = new SdkBlobClient({ connectionString: endpoint.spreadConnectionStrings ?? endpoint.connectionString, maxTries: 1 });
  const setup = new SdkBlobClient({ connectionString: endpoint.connectionString, maxTries: 4 });
  return { peer, profile, connectionString: endpoint.connectionString, sdk, setup, ...options };
}

/** The put/get loops of a profile: its own cells, or every size × concurrency. */
export function putGetCells(profile: BlobProfile): PutGetCell[] {
  if (profile.putGetCells !== 'matrix') return [...profile.putGetCells];
  const cells: PutGetCell[] = [];
  for (const kind of ['put', 'get'] as const) {
    for (const sizeBytes of profile.sizesBytes) {
      for (const concurrency of profile.concurrencies) cells.push({ kind, client: 'sdk', sizeBytes, concurrency });
      for (const concurrency of profile.rawConcurrencies) cells.push({ kind, client: 'raw', sizeBytes, concurrency });
    }
  }
  return cells;
}

export function workloadSpecs(profile: BlobProfile): WorkloadSpec[] {
  return [...putGetCells(profile), { kind: 'big', client: 'sdk' }, { kind: 'big', client: 'raw' }, { kind: 'list' }, { kind: 'mixed' }];
}

export function specLabel(spec: WorkloadSpec, profile: BlobProfile): string {
  switch (spec.kind) {
    case 'put':
    case 'get':
      return `${spec.kind} ${sizeLabel(spec.sizeBytes)} ×${spec.concurrency}${spec.client === 'raw' ? ' raw' : ''}`;
    case 'big':
      return `${sizeLabel(profile.bigBlobBytes)} in ${sizeLabel(profile.bigBlockBytes)} blocks${spec.client === 'raw' ? ' raw' : ''}`;
    case 'list':
      return `list ${profile.listBlobCount} blobs`;
    case 'mixed':
      return `mixed ${Math.round(profile.mixedReadFraction * 100)}/${Math.round((1 - profile.mixedReadFraction) * 100)} ${sizeLabel(profile.mixedSizeBytes)} ×${profile.mixedConcurrency}`;
  }
}

/** A goal cell of issue 5 (goalCells, and the large upload and download): reserved first by the budget, full-length loops. */
export function isGoalSpec(spec: WorkloadSpec): boolean {
  if (spec.kind === 'big') return true;
  if (spec.kind !== 'put' && spec.kind !== 'get') return false;
  return goalCells.some((cell) => cell.kind === spec.kind && cell.client === spec.client && cell.sizeBytes === spec.sizeBytes && cell.concurrency === spec.concurrency);
}

/** The time bound of a put/get loop: the profile's own for goal cells, the shorter matrix one for the rest. */
export function loopMsFor(spec: WorkloadSpec, profile: BlobProfile): number {
  return isGoalSpec(spec) ? profile.durationMs : Math.min(profile.durationMs, profile.matrixDurationMs);
}

/** Runs one workload on a started peer; its container is deleted afterwards (but in a goal round: PeerSession.phase). */
export async function runWorkload(session: PeerSession, spec: WorkloadSpec, container: string): Promise<WorkloadResult[]> {
  await session.setup.createContainer(container);
  try {
    return await runInContainer(session, spec, container);
  } finally {
    if (session.phase !== 'goal-round') await session.setup.deleteContainer(container).catch(() => undefined);
  }
}

async function runInContainer(session: PeerSession, spec: WorkloadSpec, container: string): Promise<WorkloadResult[]> {
  switch (spec.kind) {
    case 'put':
      return [await runPut(session, spec, container)];
    case 'get':
      return [await runGet(session, spec, container)];
    case 'big':
      return await runBig(session, spec, container);
    case 'list':
      return await runList(session, container);
    case 'mixed':
      return [await runMixed(session, container)];
  }
}

interface MeasureOptions {
  readonly label: string;
  readonly kind: WorkloadKind;
  readonly client: 'sdk' | 'raw';
  readonly sizeBytes: number;
  readonly concurrency: number;
  readonly durationMs: number;
  readonly operationsMax: number;
  readonly bytesPerOperation: number;
  readonly operation: (sequence: number) => Promise<void>;
}

type Measured = Omit<WorkloadResult, 'durability'>;

/** One timed closed loop with the server sampled around it; failed operations are counted. */
async function measure(session: PeerSession, options: MeasureOptions): Promise<Measured> {
  let errors = 0;
  const sampler = new ProcessSampler({ read: () => session.peer.sample(), intervalMs: session.profile.sampleIntervalMs });
  const throughput = await runClosedLoop({
    concurrency: options.concurrency,
    durationMs: options.durationMs,
    operationsMax: options.operationsMax,
    bytesPerOperation: options.bytesPerOperation,
    operation: async (_worker, sequence) => {
      try {
        await options.operation(sequence);
      } catch {
        errors += 1;
      }
    },
  });
  const { cpuSeconds, peakRssBytes } = sampler.stop();
  return {
    peer: session.peer.name,
    workload: options.label,
    kind: options.kind,
    client: options.client,
    sizeBytes: options.sizeBytes,
    concurrency: options.concurrency,
    throughput,
    errors,
    itemsPerSecond: null,
    server: { cpuSeconds, cpuSecondsPerOperation: cpuSeconds / Math.max(1, throughput.operations), peakRssBytes },
  };
}

function writeOperationsMax(profile: BlobProfile, sizeBytes: number): number {
  return Math.max(1, Math.min(profile.operationsMax, Math.floor(profile.workloadBytesMax / sizeBytes)));
}

async function readBack(session: PeerSession, ledger: readonly LedgerEntry[]): Promise<DurabilityOutcome> {
  if (session.phase === 'goal-round') return { result: { kind: 'not-applicable', why: 'goal round: the kill -9 check is in the peer\'s own run' }, lost: [] };
  const profile = session.profile;
  return await checkDurability({ peer: session.peer, ledger, concurrency: profile.checkConcurrency, deadlineMs: profile.longOperationMs, method: 'read-back', listPageSize: profile.listPageSize });
}

/**
 * Writes again, untimed, what a restart lost, so the read loop that follows measures intact
 * blobs; the container is created again first, since a restart can lose it too.
 */
async function rewriteLost(session: PeerSession, container: string, lost: readonly LedgerEntry[]): Promise<void> {
  if (lost.length === 0) return;
  await session.setup.createContainer(container);
  await forEachBounded(lost.length, session.profile.checkConcurrency, async (index) => {
    const entry = lost[index];
    if (entry === undefined) return;
    if (entry.blockCount > 1) await uploadInBlocks(session.setup, entry, { blockConcurrency: session.profile.bigBlockConcurrency, payloads: new BlockPayloads(entry.sizeBytes / entry.blockCount, session.profile.bigBlockConcurrency) });
    else await session.setup.putBlob(entry.container, entry.name, payloadFor(entry.name, entry.sizeBytes));
  });
}

async function withClient<T>(session: PeerSession, kind: 'sdk' | 'raw', connections: number, use: (client: LargeBlobClient) => Promise<T>): Promise<T> {
  if (kind === 'sdk') return use(session.sdk);
  const raw = new RawBlobClient({ connectionString: session.connectionString, connections });
  try {
    return await use(raw);
  } finally {
    await raw.close();
  }
}

async function runPut(session: PeerSession, spec: WorkloadSpec & { kind: 'put' | 'get' }, container: string): Promise<WorkloadResult> {
  const ledger: LedgerEntry[] = [];
  const measured = await withClient(session, spec.client, spec.concurrency, (client) =>
    measure(session, {
      label: specLabel(spec, session.profile), kind: 'put', client: spec.client, sizeBytes: spec.sizeBytes, concurrency: spec.concurrency,
      durationMs: loopMsFor(spec, session.profile), operationsMax: writeOperationsMax(session.profile, spec.sizeBytes), bytesPerOperation: spec.sizeBytes,
      operation: async (sequence) => {
        const name = sequenceName('p', sequence);
        await client.putBlob(container, name, payloadFor(name, spec.sizeBytes));
        ledger.push({ container, name, sizeBytes: spec.sizeBytes, blockCount: 1 });
      },
    }),
  );
  return { ...measured, durability: (await readBack(session, ledger)).result };
}

/** Writes `count` blobs named prefix/<i> of `sizeBytes` (untimed setup); returns their ledger. */
async function populate(client: PutGetClient, container: string, options: { readonly prefix: string; readonly count: number; readonly sizeBytes: number }): Promise<LedgerEntry[]> {
  const ledger: LedgerEntry[] = [];
  await forEachBounded(options.count, 16, async (index) => {
    const name = sequenceName(options.prefix, index);
    await client.putBlob(container, name, payloadFor(name, options.sizeBytes));
    ledger.push({ container, name, sizeBytes: options.sizeBytes, blockCount: 1 });
  });
  return ledger;
}

/** Blobs written and read once, untimed, right after a peer started (warmUp). */
export const warmUpBlobCount = 64;

/**
 * Untimed warm-up right after a peer started: 64 Put Blob 64 KiB at 16 clients, each read once,
 * in a container deleted afterwards. A fresh server (and even more a fresh dev cluster: eight
 * cold processes, its first extents and partition just placed) is several times slower for its
 * first second, which in a 1 s quick loop would be charged to whichever workload runs first.
 */
export async function warmUp(session: PeerSession, options: { readonly readMs?: number } = {}): Promise<void> {
  const container = 'warm-up';
  await session.setup.createContainer(container);
  try {
    const ledger = await populate(session.setup, container, { prefix: 'w', count: warmUpBlobCount, sizeBytes: 64 * 1024 });
    await forEachBounded(ledger.length, 16, async (index) => {
      const entry = ledger[index];
      if (entry !== undefined) await session.setup.getBlob(container, entry.name);
    });
    // Before a Get loop on a server the previous workload's kill -9 check restarted: its Get path
    // is still interpreted code (profile-serve.ts, Get 64 KiB ×16 from a fresh server: 1.94-2.11
    // ms of server CPU per Get over 2 s against 1.15 over 20 s, its compiler threads 2× busier),
    // while the null server it is held to never restarts. Reads until readMs have passed.
    const readMs = options.readMs ?? 0;
    if (readMs > 0) {
      const until = performance.now() + readMs;
      await forEachBounded(16, 16, async (worker) => {
        for (let index = worker; performance.now() < until; index += 16) await session.setup.getBlob(container, sequenceName('w', index % warmUpBlobCount));
      });
    }
  } finally {
    await session.setup.deleteContainer(container).catch(() => undefined);
  }
}

async function runGet(session: PeerSession, spec: WorkloadSpec & { kind: 'put' | 'get' }, container: string): Promise<WorkloadResult> {
  const setSize = session.profile.getSetSize;
  await populate(session.setup, container, { prefix: 's', count: setSize, sizeBytes: spec.sizeBytes });
  const measured = await withClient(session, spec.client, spec.concurrency, (client) =>
    measure(session, {
      label: specLabel(spec, session.profile), kind: 'get', client: spec.client, sizeBytes: spec.sizeBytes, concurrency: spec.concurrency,
      durationMs: loopMsFor(spec, session.profile), operationsMax: session.profile.operationsMax, bytesPerOperation: spec.sizeBytes,
      operation: async (sequence) => {
        const body = await client.getBlob(container, sequenceName('s', sequence % setSize));
        if (body?.length !== spec.sizeBytes) throw new Error(`Get Blob returned ${body?.length ?? 'no'} bytes, expected ${spec.sizeBytes}`);
      },
    }),
  );
  return { ...measured, durability: null };
}

async function uploadInBlocks(client: LargeBlobClient, entry: LedgerEntry, options: { readonly blockConcurrency: number; readonly payloads: BlockPayloads }): Promise<void> {
  const ids = Array.from({ length: entry.blockCount }, (_, index) => blockIdFor(index));
  await forEachBounded(entry.blockCount, options.blockConcurrency, async (index) => {
    await options.payloads.with(`${entry.name}#${index}`, (body) => client.stageBlock(entry.container, entry.name, ids[index] ?? '', body));
  });
  await client.commitBlockList(entry.container, entry.name, ids);
}

async function runBig(session: PeerSession, spec: WorkloadSpec & { kind: 'big' }, container: string): Promise<WorkloadResult[]> {
  const profile = session.profile;
  const label = specLabel(spec, profile);
  const blockCount = profile.bigBlobBytes / profile.bigBlockBytes;
  const common = { client: spec.client, sizeBytes: profile.bigBlobBytes, concurrency: 1, durationMs: profile.longOperationMs, operationsMax: profile.bigRepeats, bytesPerOperation: profile.bigBlobBytes } as const;
  const ledger: LedgerEntry[] = [];
  // The block bodies are made before the timing (every peer's client alike), not 8 MiB per block inside it.
  const payloads = new BlockPayloads(profile.bigBlockBytes, profile.bigBlockConcurrency);
  // The raw client's pool has a connection per block in flight (the SDK manages its own); a new
  // pool after the kill -9 check, so no request goes out on a connection to the killed server.
  const upload = await withClient(session, spec.client, profile.bigBlockConcurrency, (client) =>
    measure(session, {
      ...common, label: `upload ${label}`, kind: 'big-upload',
      operation: async (sequence) => {
        const entry = { container, name: `big-${sequence}`, sizeBytes: profile.bigBlobBytes, blockCount };
        await uploadInBlocks(client, entry, { blockConcurrency: profile.bigBlockConcurrency, payloads });
        ledger.push(entry);
      },
    }),
  );
  const durability = await readBack(session, ledger);
  await rewriteLost(session, container, durability.lost);
  // The expected checksums, untimed; every peer's download then costs its client one CRC pass.
  const expected = ledger.map((entry) => expectedCrc32c(entry));
  const download = await withClient(session, spec.client, 1, (client) =>
    measure(session, {
      ...common, operationsMax: profile.bigDownloadRepeats, label: `download ${label}`, kind: 'big-download',
      operation: async (sequence) => {
        const index = sequence % Math.max(1, ledger.length);
        const entry = ledger[index];
        if (entry === undefined) throw new Error('nothing was uploaded');
        const checksum = new StreamChecksum();
        const bytes = await client.readBlobStream(container, entry.name, (chunk) => checksum.push(chunk));
        // A peer that discards uploads (the null server) can only be held to the length.
        const intact = session.peer.persistence.kind === 'discards' ? bytes === entry.sizeBytes : checksum.matches(entry.sizeBytes, expected[index] ?? 0);
        if (!intact) throw new Error(`download of ${entry.name} differs from what was uploaded`);
      },
    }),
  );
  return [{ ...upload, durability: durability.result }, { ...download, durability: null }];
}

async function runList(session: PeerSession, container: string): Promise<WorkloadResult[]> {
  const profile = session.profile;
  const label = specLabel({ kind: 'list' }, profile);
  const ledger: LedgerEntry[] = [];
  const concurrency = profile.listPopulateConcurrency;
  const client = profile.listPopulateClient;
  // The population is set-up for the listing (reported as its own write row): the full profile
  // makes it with the raw client, whose own CPU per Put is about half the SDK's, so 100,000 Put
  // Blobs cost the shared 2 cores less and the listing is reached sooner.
  const populated = await withClient(session, client, concurrency, (writer) =>
    measure(session, {
      label: `populate ${profile.listBlobCount} blobs ×${concurrency}${client === 'raw' ? ' raw' : ''}`, kind: 'list-populate', client, sizeBytes: profile.listBlobBytes, concurrency,
      durationMs: profile.listPopulateMs, operationsMax: profile.listBlobCount, bytesPerOperation: profile.listBlobBytes,
      operation: async (sequence) => {
        const name = sequenceName('l', sequence);
        await writer.putBlob(container, name, payloadFor(name, profile.listBlobBytes));
        ledger.push({ container, name, sizeBytes: profile.listBlobBytes, blockCount: 1 });
      },
    }),
  );
  const durability = await checkDurability({ peer: session.peer, ledger, concurrency: 1, deadlineMs: profile.longOperationMs, method: 'listing', listPageSize: profile.listPageSize });
  await rewriteLost(session, container, durability.lost);
  let marker: string | undefined;
  let items = 0;
  const listed = await measure(session, {
    label, kind: 'list', client: 'sdk', sizeBytes: 0, concurrency: 1,
    durationMs: profile.longOperationMs, operationsMax: profile.listRepeats * Math.ceil(Math.max(1, ledger.length) / profile.listPageSize), bytesPerOperation: 0,
    operation: async () => {
      const page = await session.sdk.listPage(container, marker, profile.listPageSize);
      items += page.blobs.length;
      marker = page.nextMarker;
    },
  });
  return [{ ...populated, durability: durability.result }, { ...listed, itemsPerSecond: items / listed.throughput.seconds, durability: null }];
}

async function runMixed(session: PeerSession, container: string): Promise<WorkloadResult> {
  const profile = session.profile;
  const sizeBytes = profile.mixedSizeBytes;
  const ledger = await populate(session.setup, container, { prefix: 's', count: profile.mixedSetSize, sizeBytes });
  const random = new SeededRandom(70);
  const measured = await measure(session, {
    label: specLabel({ kind: 'mixed' }, profile), kind: 'mixed', client: 'sdk', sizeBytes, concurrency: profile.mixedConcurrency,
    durationMs: profile.mixedDurationMs, operationsMax: writeOperationsMax(profile, sizeBytes), bytesPerOperation: sizeBytes,
    operation: async (sequence) => {
      if (random.next() < profile.mixedReadFraction) {
        const body = await session.sdk.getBlob(container, sequenceName('s', random.int(profile.mixedSetSize)));
        if (body?.length !== sizeBytes) throw new Error('mixed read returned the wrong length');
        return;
      }
      const name = sequenceName('m', sequence);
      await session.sdk.putBlob(container, name, payloadFor(name, sizeBytes));
      ledger.push({ container, name, sizeBytes, blockCount: 1 });
    },
  });
  return { ...measured, durability: (await readBack(session, ledger)).result };
}
