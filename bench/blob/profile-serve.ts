// Profiles `kura serve` under one blob workload: starts the server with `node --cpu-prof`, runs
// one Put Blob or Get Blob closed loop against it (SDK or raw undici, bounded in count and time),
// or large blobs (`--kind upload`: Put Block of `--size` bytes, `--concurrency` blocks in flight,
// then Put Block List, `--blob-mib` per blob, repeated; `--kind download`: Get Blob of such blobs:
// one blob uploaded first and downloaded again and again (its pages cached after the first), or
// with `--fresh N` N blobs uploaded first and each downloaded once, as the bench's download round
// reads what its upload round just wrote),
// stops it with SIGTERM so V8 writes the profile, and prints throughput, the server's CPU per
// operation and the hottest functions and files of the server process. No kill -9 here: a killed
// process writes no profile. Loopback only; the server is killed on failure or Ctrl-C.
//
//   node bench/blob/profile-serve.ts --kind put --size 65536 --concurrency 16 --seconds 8 [--disks 1] [--client sdk|raw] [--out DIR] [--top 25]
//   node bench/blob/profile-serve.ts --kind upload --size 8388608 --concurrency 4 --blob-mib 64 --seconds 20
//   node bench/blob/profile-serve.ts --kind download --blob-mib 256 --fresh 4 --no-profile   (each blob read once, just after its upload)
//   [--serve-arg=--inline-body-bytes --serve-arg=0] [--node-arg=--max-semi-space-size=64] [--no-profile]
//   [--node-arg=--trace-gc-nvp --server-output FILE]   (the server's stdout and stderr appended to FILE)
//
// Besides the profile (the main thread only), it prints the server's CPU per operation by thread
// (main thread, V8's GC and compiler workers, libuv's thread pool, workers): V8's concurrent GC
// work is invisible in a --cpu-prof profile but is billed to the process.
import { mkdtemp, readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { headerUsage, parseBenchArgs, positiveIntegerOption } from '../lib/cli-args.ts';
import { parseCpuProfile, summariseProfile, type ProfileRow } from '../lib/cpu-profile.ts';
import { runClosedLoop } from '../lib/stats.ts';
import type { LargeBlobClient } from './blob-client.ts';
import { uploadInBlocks } from './block-upload.ts';
import { forEachBounded, sequenceName } from './bounded-parallel.ts';
import { installChildCleanup, killAllChildren } from './child-server.ts';
import { BlockPayloads, payloadFor } from './payload.ts';
import { devAccountKey, type BenchPeer } from './peer.ts';
import { kuraServePeer } from './peers.ts';
import { ProcessSampler, readThreadCpu, threadCpuDelta, type ThreadCpu } from './proc-sample.ts';
import { RawBlobClient } from './raw-client.ts';
import { SdkBlobClient } from './sdk-client.ts';

const repositoryRoot = join(import.meta.dirname, '..', '..');
const operationsMax = 50_000;
const getSetSize = 64;
const MiB = 1024 * 1024;

type Kind = 'put' | 'get' | 'upload' | 'download';
const kinds: readonly Kind[] = ['put', 'get', 'upload', 'download'];

interface Options {
  readonly kind: Kind;
  /** Blob size (put, get) or block size (upload, download). */
  readonly sizeBytes: number;
  /** Size of each large blob (upload, download). */
  readonly blobBytes: number;
  readonly concurrency: number;
  readonly seconds: number;
  readonly disks: number;
  readonly client: 'sdk' | 'raw';
  readonly out: string | undefined;
  /** Rows per table of the profile summary. */
  readonly top: number;
  readonly serveArgs: readonly string[];
  readonly nodeArgs: readonly string[];
  /** --server-output FILE: the server's stdout and stderr, appended (for --node-arg=--trace-gc-nvp). */
  readonly serverOutput: string | undefined;
  /** Without --cpu-prof (its sampling thread costs CPU too): figures only. */
  readonly profile: boolean;
  /** --fresh N (download): N blobs uploaded before the timing, each downloaded once; 0: one blob, downloaded repeatedly. */
  readonly freshBlobs: number;
}

function parseOptions(): Options {
  const values = parseBenchArgs(headerUsage(import.meta.url), { kind: { type: 'string' }, size: { type: 'string' }, concurrency: { type: 'string' }, seconds: { type: 'string' }, disks: { type: 'string' }, client: { type: 'string' }, out: { type: 'string' }, top: { type: 'string' }, 'blob-mib': { type: 'string' }, 'serve-arg': { type: 'string', multiple: true }, 'node-arg': { type: 'string', multiple: true }, 'server-output': { type: 'string' }, 'no-profile': { type: 'boolean' }, fresh: { type: 'string' } });
  const kind = kinds.find((candidate) => candidate === (values.kind ?? 'put'));
  const client = values.client ?? 'sdk';
  if (kind === undefined) throw new Error(`--kind must be one of ${kinds.join(', ')}`);
  if (client !== 'sdk' && client !== 'raw') throw new Error('--client must be sdk or raw');
  const large = kind === 'upload' || kind === 'download';
  const seconds = Math.min(60, positiveIntegerOption(values.seconds, 8, 'seconds'));
  const sizeBytes = positiveIntegerOption(values.size, large ? 8 * MiB : 65_536, 'size');
  const blobBytes = positiveIntegerOption(values['blob-mib'], 64, 'blob-mib') * MiB;
  if (large && blobBytes % sizeBytes !== 0) throw new Error('--blob-mib must be a whole number of blocks of --size');
  return { kind, client, sizeBytes, blobBytes, concurrency: positiveIntegerOption(values.concurrency, large ? 4 : 16, 'concurrency'), seconds, disks: positiveIntegerOption(values.disks, 1, 'disks'), out: values.out, top: positiveIntegerOption(values.top, 25, 'top'), serveArgs: values['serve-arg'] ?? [], nodeArgs: values['node-arg'] ?? [], serverOutput: values['server-output'], profile: values['no-profile'] !== true, freshBlobs: values.fresh === undefined ? 0 : Math.min(16, positiveIntegerOption(values.fresh, 1, 'fresh')) };
}

function port(connectionString: string): number {
  return Number(/127\.0\.0\.1:(\d+)\//.exec(connectionString)?.[1] ?? Number.NaN);
}

async function load(peer: BenchPeer, pid: number, options: Options, client: LargeBlobClient): Promise<void> {
  const container = 'profile';
  await client.createContainer(container);
  if (options.kind === 'get') await forEachBounded(getSetSize, 16, (index) => client.putBlob(container, sequenceName('s', index), payloadFor(sequenceName('s', index), options.sizeBytes)));
  const sampler = new ProcessSampler({ read: () => peer.sample(), intervalMs: 100 });
  const threadsBefore = readThreadCpu(pid);
  const result = await runClosedLoop({
    concurrency: options.concurrency, durationMs: options.seconds * 1000, operationsMax, bytesPerOperation: options.sizeBytes,
    operation: async (_worker, sequence) => {
      if (options.kind === 'put') await client.putBlob(container, sequenceName('p', sequence), payloadFor(sequenceName('p', sequence), options.sizeBytes));
      else await client.getBlob(container, sequenceName('s', sequence % getSetSize));
    },
  });
  const { cpuSeconds, peakRssBytes } = sampler.stop();
  printThreadCpu(threadCpuDelta(threadsBefore, readThreadCpu(pid)), result.operations, 'op');
  console.log(`${options.kind} ${options.sizeBytes} B ×${options.concurrency} (${options.client}, ${options.disks} disk): ${result.opsPerSecond.toFixed(0)} ops/s, p50 ${result.latency.p50Ms.toFixed(1)} ms, p99 ${result.latency.p99Ms.toFixed(1)} ms, server CPU ${((cpuSeconds / Math.max(1, result.operations)) * 1000).toFixed(2)} ms/op (${((cpuSeconds / result.seconds) * 100).toFixed(0)}% of a core), peak RSS ${(peakRssBytes / MiB).toFixed(0)} MiB`);
}

/** Large blobs: each operation uploads (or downloads) one blob of `blobBytes` in blocks. */
async function loadLarge(peer: BenchPeer, pid: number, options: Options, client: LargeBlobClient): Promise<void> {
  const container = 'profile';
  await client.createContainer(container);
  const blockCount = options.blobBytes / options.sizeBytes;
  // Block bodies made before the timing, as the bench's large upload does (payload.ts BlockPayloads).
  const payloads = new BlockPayloads(options.sizeBytes, options.concurrency);
  const upload = (name: string): Promise<void> => uploadInBlocks(client, payloads, { container, blockCount, concurrency: options.concurrency }, name);
  const blobCount = Math.max(1, options.freshBlobs);
  if (options.kind === 'download') for (let index = 0; index < blobCount; index++) await upload(sequenceName('big', index));
  const sampler = new ProcessSampler({ read: () => peer.sample(), intervalMs: 100 });
  const threadsBefore = readThreadCpu(pid);
  const result = await runClosedLoop({
    concurrency: 1, durationMs: options.seconds * 1000, operationsMax: options.freshBlobs > 0 ? options.freshBlobs : operationsMax, bytesPerOperation: options.blobBytes,
    operation: async (_worker, sequence) => {
      if (options.kind === 'upload') {
        await upload(sequenceName('big', sequence));
        return;
      }
      const bytes = await client.readBlobStream(container, sequenceName('big', sequence % blobCount), () => undefined);
      if (bytes !== options.blobBytes) throw new Error(`downloaded ${bytes ?? 'no'} bytes, expected ${options.blobBytes}`);
    },
  });
  const { cpuSeconds, peakRssBytes } = sampler.stop();
  const mib = (result.operations * options.blobBytes) / MiB;
  printThreadCpu(threadCpuDelta(threadsBefore, readThreadCpu(pid)), mib, 'MiB');
  console.log(`${options.kind} ${options.blobBytes / MiB} MiB in ${options.sizeBytes / MiB} MiB blocks ×${options.concurrency} (${options.client}, ${options.disks} disk${options.freshBlobs > 0 ? ', fresh' : ''}): ${result.operations} blobs, ${(mib / result.seconds).toFixed(1)} MiB/s, server CPU ${((cpuSeconds / Math.max(1, mib)) * 1000).toFixed(2)} ms/MiB (${((cpuSeconds / result.seconds) * 100).toFixed(0)}% of a core), peak RSS ${(peakRssBytes / MiB).toFixed(0)} MiB`);
}

function printThreadCpu(threads: ThreadCpu, units: number, unit: string): void {
  const per = (seconds: number): string => ((seconds * 1000) / Math.max(1, units)).toFixed(3);
  console.log(`server CPU ms per ${unit} by thread (user + system)`);
  console.table([...threads].filter(([, group]) => group.userSeconds + group.systemSeconds > 0).map(([name, group]) => ({ thread: name, threads: group.threads, user: per(group.userSeconds), system: per(group.systemSeconds), total: per(group.userSeconds + group.systemSeconds) })));
}

function printRows(title: string, rows: readonly ProfileRow[]): void {
  console.log(title);
  console.table(rows.map((row) => ({ function: row.name, 'self %': (row.self * 100).toFixed(1), 'inclusive %': Number.isNaN(row.inclusive) ? '' : (row.inclusive * 100).toFixed(1) })));
}

async function main(): Promise<void> {
  const options = parseOptions();
  // The profile's directory is made only when there is a profile to keep (it is printed, left for the reader).
  const directory = options.profile ? (options.out ?? (await mkdtemp(join(tmpdir(), 'kura-serve-prof-')))) : null;
  const peer = kuraServePeer(options.disks, { nodeArgs: [...(directory === null ? [] : ['--cpu-prof', '--cpu-prof-dir', directory]), ...options.nodeArgs], serveArgs: options.serveArgs, ...(options.serverOutput === undefined ? {} : { outputFile: options.serverOutput }) });
  try {
    const endpoint = await peer.start();
    const client: LargeBlobClient = options.client === 'sdk'
      ? new SdkBlobClient({ connectionString: endpoint.connectionString, maxTries: 1 })
      : new RawBlobClient({ port: port(endpoint.connectionString), accountKey: devAccountKey, connections: options.concurrency });
    try {
      if (options.kind === 'upload' || options.kind === 'download') {
        await loadLarge(peer, endpoint.pid, options, client);
      } else {
        await load(peer, endpoint.pid, options, client);
      }
    } finally {
      await client.close();
    }
  } finally {
    await peer.stop();
  }
  if (directory === null) return;
  const files = (await readdir(directory)).filter((name) => name.endsWith('.cpuprofile'));
  if (files.length === 0) throw new Error(`no .cpuprofile in ${directory}: did the server exit cleanly?`);
  for (const file of files) {
    const summary = summariseProfile(parseCpuProfile(await readFile(join(directory, file), 'utf8')), repositoryRoot, options.top);
    console.log(`${join(directory, file)}: ${summary.samples} samples`);
    printRows('hottest functions (self)', summary.bySelf);
    printRows('hottest functions (inclusive)', summary.byInclusive);
    printRows('self time by file', summary.byFile);
  }
}

installChildCleanup();
try {
  await main();
} finally {
  killAllChildren();
}
