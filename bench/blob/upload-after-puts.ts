// Does a large table slow large uploads down? Starts `kura serve` with `--trace-gc`, uploads 256 MiB
// blobs (8 MiB Put Blocks ×4, SDK) on the fresh server, runs Put Blob 4 KiB ×64 for --put-seconds,
// then uploads again, and prints for each phase MiB/s (or Puts/s), the server's CPU per MiB (per Put),
// its full GCs and its live heap (the size after each full GC, from --trace-gc). Each full GC marks the
// whole live heap, and V8 starts one per ~64 MB of external memory node:http allocates while an upload
// is received: a heap that grows with the table makes every later upload pay for it.
// Bounded: each phase by its seconds and an operation count; loopback only; the server is killed on
// failure or Ctrl-C. Saves bench/results/upload-after-puts-<date>.json.
//
//   node bench/blob/upload-after-puts.ts [--upload-seconds 8] [--put-seconds 20] [--puts 300000] [--blob-mib 256] [--disks 1]
//   (--puts N with a long --put-seconds: the same table on both sides of an A/B whatever the machine's load)
//   [--heap-snapshot DIR]   (the server writes a heap snapshot into DIR after the Puts: find what the heap holds)
//   [--serve-arg=--inline-body-bytes --serve-arg=0] [--node-arg=--max-semi-space-size=64]
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { headerUsage, parseBenchArgs, positiveIntegerOption } from '../lib/cli-args.ts';
import { runClosedLoop } from '../lib/stats.ts';
import { uploadInBlocks } from './block-upload.ts';
import { sequenceName } from './bounded-parallel.ts';
import { installChildCleanup, killAllChildren } from './child-server.ts';
import { BlockPayloads, payloadFor } from './payload.ts';
import type { BenchPeer } from './peer.ts';
import { kuraServePeer } from './peers.ts';
import { ProcessSampler } from './proc-sample.ts';
import { SdkBlobClient } from './sdk-client.ts';

const MiB = 1024 * 1024;
const blockBytes = 8 * MiB;
const blocksInFlight = 4;
const uploadsMax = 64;
const putBytes = 4096;
const putConcurrency = 64;
const snapshotWaitMs = 60_000;

interface Options {
  readonly uploadSeconds: number;
  readonly putSeconds: number;
  /** Put Blob calls at most (the Put phase ends at --put-seconds or at this many). */
  readonly puts: number;
  readonly blobBytes: number;
  readonly disks: number;
  readonly heapSnapshotDirectory: string | undefined;
  readonly serveArgs: readonly string[];
  readonly nodeArgs: readonly string[];
}

/** One phase's figures: `units` are MiB (uploads) or Puts. */
interface PhaseResult {
  readonly phase: string;
  readonly operations: number;
  readonly seconds: number;
  readonly unitsPerSecond: number;
  readonly serverCpuMsPerUnit: number;
  readonly fullGcs: number;
  /** Heap after the phase's first and last full GC (MB, as --trace-gc prints), null without one. */
  readonly liveHeapFirstMb: number | null;
  readonly liveHeapLastMb: number | null;
}

function parseOptions(): Options {
  const values = parseBenchArgs(headerUsage(import.meta.url), { 'upload-seconds': { type: 'string' }, 'put-seconds': { type: 'string' }, puts: { type: 'string' }, 'blob-mib': { type: 'string' }, disks: { type: 'string' }, 'heap-snapshot': { type: 'string' }, 'serve-arg': { type: 'string', multiple: true }, 'node-arg': { type: 'string', multiple: true } });
  const blobBytes = positiveIntegerOption(values['blob-mib'], 256, 'blob-mib') * MiB;
  if (blobBytes % blockBytes !== 0) throw new Error('--blob-mib must be a multiple of 8');
  return {
    uploadSeconds: Math.min(60, positiveIntegerOption(values['upload-seconds'], 8, 'upload-seconds')), putSeconds: Math.min(120, positiveIntegerOption(values['put-seconds'], 20, 'put-seconds')), puts: Math.min(300_000, positiveIntegerOption(values.puts, 300_000, 'puts')),
    blobBytes, disks: positiveIntegerOption(values.disks, 1, 'disks'), heapSnapshotDirectory: values['heap-snapshot'], serveArgs: values['serve-arg'] ?? [], nodeArgs: values['node-arg'] ?? [],
  };
}

/** Sizes after each full GC (Mark-Compact) in a --trace-gc text, in MB. */
function fullGcHeapsMb(trace: string): number[] {
  return [...trace.matchAll(/Mark-Compact(?: \([^)]*\))? [\d.]+ \([\d.]+\) -> ([\d.]+) \(/g)].map((match) => Number(match[1]));
}

/** The server's --trace-gc output, read phase by phase from where the last phase stopped. */
class GcTrace {
  private readonly file: string;
  private offset = 0;
  constructor(file: string) {
    this.file = file;
  }

  async skipToEnd(): Promise<void> {
    this.offset = (await stat(this.file)).size;
  }

  async sinceLast(): Promise<number[]> {
    const text = (await readFile(this.file)).subarray(this.offset);
    this.offset += text.length;
    return fullGcHeapsMb(text.toString('latin1'));
  }
}

async function measure(peer: BenchPeer, trace: GcTrace, phase: string, units: (operations: number) => number, run: () => Promise<{ operations: number; seconds: number }>): Promise<PhaseResult> {
  await trace.skipToEnd();
  const sampler = new ProcessSampler({ read: () => peer.sample(), intervalMs: 100 });
  const { operations, seconds } = await run();
  const { cpuSeconds } = sampler.stop();
  const heaps = await trace.sinceLast();
  const count = Math.max(1, units(operations));
  const result = { phase, operations, seconds: Number(seconds.toFixed(2)), unitsPerSecond: Number((count / seconds).toFixed(1)), serverCpuMsPerUnit: Number(((cpuSeconds * 1000) / count).toFixed(3)), fullGcs: heaps.length, liveHeapFirstMb: heaps[0] ?? null, liveHeapLastMb: heaps.at(-1) ?? null };
  console.log(`${phase}: ${operations} ops in ${result.seconds} s, ${result.unitsPerSecond} ${phase.startsWith('put') ? 'Puts' : 'MiB'}/s, server ${result.serverCpuMsPerUnit} ms CPU per ${phase.startsWith('put') ? 'Put' : 'MiB'}, ${heaps.length} full GCs, live heap ${String(result.liveHeapFirstMb)} -> ${String(result.liveHeapLastMb)} MB (load ${loadavg()[0]?.toFixed(1) ?? '?'})`);
  return result;
}

function uploads(client: SdkBlobClient, options: Options, prefix: string): () => Promise<{ operations: number; seconds: number }> {
  const payloads = new BlockPayloads(blockBytes, blocksInFlight);
  const upload = { container: 'big', blockCount: options.blobBytes / blockBytes, concurrency: blocksInFlight };
  return () => runClosedLoop({ concurrency: 1, durationMs: options.uploadSeconds * 1000, operationsMax: uploadsMax, bytesPerOperation: options.blobBytes, operation: (_worker, sequence) => uploadInBlocks(client, payloads, upload, sequenceName(prefix, sequence)) });
}

function puts(client: SdkBlobClient, options: Options): () => Promise<{ operations: number; seconds: number }> {
  return () => runClosedLoop({ concurrency: putConcurrency, durationMs: options.putSeconds * 1000, operationsMax: options.puts, bytesPerOperation: putBytes, operation: (_worker, sequence) => client.putBlob('small', sequenceName('p', sequence), payloadFor(sequenceName('p', sequence), putBytes)) });
}

/** SIGUSR2 makes the server (started with --heapsnapshot-signal) write a snapshot; waits for the file. */
async function takeHeapSnapshot(pid: number, directory: string): Promise<void> {
  const before = new Set(await readdir(directory));
  process.kill(pid, 'SIGUSR2');
  const deadline = performance.now() + snapshotWaitMs;
  while (performance.now() < deadline) {
    await sleep(500);
    const written = (await readdir(directory)).find((name) => !before.has(name) && name.endsWith('.heapsnapshot'));
    if (written === undefined) continue;
    // The file appears at the start of the write: whole once its size stops changing.
    const sizeBytes = (await stat(join(directory, written))).size;
    await sleep(1000);
    if (sizeBytes === 0 || (await stat(join(directory, written))).size !== sizeBytes) continue;
    console.log(`heap snapshot: ${join(directory, written)} (${(sizeBytes / MiB).toFixed(0)} MiB)`);
    return;
  }
  throw new Error(`no heap snapshot in ${directory} after ${snapshotWaitMs} ms`);
}

/** The build measured: HEAD's short hash, marked when the worktree has changes. */
function gitCommit(): string {
  const git = (...args: string[]): string => execFileSync('git', args, { cwd: import.meta.dirname, encoding: 'utf8' }).trim();
  return `${git('rev-parse', '--short', 'HEAD')}${git('status', '--porcelain', '--untracked-files=no') === '' ? '' : '+changes'}`;
}

async function main(): Promise<void> {
  const options = parseOptions();
  const traceFile = join(await mkdtemp(join(tmpdir(), 'kura-upload-after-puts-')), 'server-output.txt');
  await writeFile(traceFile, '');
  const snapshotArgs = options.heapSnapshotDirectory === undefined ? [] : ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${options.heapSnapshotDirectory}`];
  const peer = kuraServePeer(options.disks, { nodeArgs: ['--trace-gc', ...snapshotArgs, ...options.nodeArgs], serveArgs: options.serveArgs, outputFile: traceFile });
  const trace = new GcTrace(traceFile);
  const phases: PhaseResult[] = [];
  try {
    const endpoint = await peer.start();
    const client = new SdkBlobClient({ connectionString: endpoint.connectionString, maxTries: 1 });
    try {
      await client.createContainer('big');
      await client.createContainer('small');
      const mib = (operations: number): number => (operations * options.blobBytes) / MiB;
      phases.push(await measure(peer, trace, 'upload fresh', mib, uploads(client, options, 'fresh')));
      phases.push(await measure(peer, trace, `put ${putBytes} B ×${putConcurrency}`, (operations) => operations, puts(client, options)));
      if (options.heapSnapshotDirectory !== undefined) await takeHeapSnapshot(endpoint.pid, options.heapSnapshotDirectory);
      phases.push(await measure(peer, trace, 'upload after the Puts', mib, uploads(client, options, 'after')));
    } finally {
      await client.close();
    }
  } finally {
    await peer.stop();
  }
  const date = new Date().toISOString();
  const directory = join(import.meta.dirname, '..', 'results');
  await mkdir(directory, { recursive: true });
  const file = join(directory, `upload-after-puts-${date.slice(0, 19).replaceAll(':', '-')}.json`);
  await writeFile(file, `${JSON.stringify({ date, commit: gitCommit(), loadAverage1m: loadavg()[0], blobMiB: options.blobBytes / MiB, serveArgs: options.serveArgs, nodeArgs: options.nodeArgs, phases }, null, 2)}\n`);
  console.log(`saved ${file}`);
}

installChildCleanup();
try {
  await main();
} finally {
  killAllChildren();
}
