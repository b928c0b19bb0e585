// Do concurrent large uploads into several containers find an O_DIRECT staging buffer? Starts
// `kura serve --admin` (fresh data directory), uploads blobs in 8 MiB Put Blocks from `--uploads`
// workers per container into `--containers` containers at once (raw undici client, one block in
// flight per upload), then reads the disks' kura_disk_large_writes_total by way from /metrics
// (docs/metrics.md): `no_staging_buffer` is a large write that went through the page cache because
// every buffer of the stamp's pool was lent. Prints MiB/s, the server's CPU per MiB, its peak RSS
// and the counts; `--serve-arg=--direct-write-buffers --serve-arg=N` sets the pool for an A/B.
// Bounded: --seconds (at most 30) and 64 uploads per worker; loopback only; the server is killed
// on failure or Ctrl-C. Saves bench/results/upload-staging-<date>.json.
//
//   node bench/blob/upload-staging.ts [--containers 4] [--uploads 4] [--blob-mib 32] [--seconds 30] [--disks 1]
//   [--serve-arg=--direct-write-buffers --serve-arg=16]
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { headerUsage, parseBenchArgs, positiveIntegerOption } from '../lib/cli-args.ts';
import { runClosedLoop } from '../lib/stats.ts';
import { uploadInBlocks } from './block-upload.ts';
import { sequenceName } from './bounded-parallel.ts';
import { installChildCleanup, killAllChildren } from './child-server.ts';
import { freeLoopbackPort } from './free-port.ts';
import { BlockPayloads } from './payload.ts';
import { kuraServePeer } from './peers.ts';
import { ProcessSampler } from './proc-sample.ts';
import { RawBlobClient } from './raw-client.ts';

const MiB = 1024 * 1024;
const blockBytes = 8 * MiB;
const uploadsPerWorkerMax = 64;

interface Options {
  readonly containers: number;
  readonly uploadsPerContainer: number;
  readonly blobBytes: number;
  readonly seconds: number;
  readonly disks: number;
  readonly serveArgs: readonly string[];
}

function parseOptions(): Options {
  const values = parseBenchArgs(headerUsage(import.meta.url), { containers: { type: 'string' }, uploads: { type: 'string' }, 'blob-mib': { type: 'string' }, seconds: { type: 'string' }, disks: { type: 'string' }, 'serve-arg': { type: 'string', multiple: true } });
  const blobBytes = positiveIntegerOption(values['blob-mib'], 32, 'blob-mib') * MiB;
  if (blobBytes % blockBytes !== 0) throw new Error('--blob-mib must be a multiple of 8');
  return {
    containers: Math.min(16, positiveIntegerOption(values.containers, 4, 'containers')), uploadsPerContainer: Math.min(16, positiveIntegerOption(values.uploads, 4, 'uploads')),
    blobBytes, seconds: Math.min(30, positiveIntegerOption(values.seconds, 30, 'seconds')), disks: positiveIntegerOption(values.disks, 1, 'disks'), serveArgs: values['serve-arg'] ?? [],
  };
}

/** A counter's values from a Prometheus text, summed over every label but `label`. */
export function sumsByLabel(text: string, name: string, label: string): Record<string, number> {
  const sums: Record<string, number> = {};
  for (const match of text.matchAll(new RegExp(`^${name}\\{([^}]*)\\} (\\S+)$`, 'gm'))) {
    const key = new RegExp(`${label}="([^"]*)"`).exec(match[1] ?? '')?.[1] ?? '';
    sums[key] = (sums[key] ?? 0) + Number(match[2]);
  }
  return sums;
}

/** The build measured: HEAD's short hash, marked when the worktree has changes. */
function gitCommit(): string {
  const git = (...args: string[]): string => execFileSync('git', args, { cwd: import.meta.dirname, encoding: 'utf8' }).trim();
  return `${git('rev-parse', '--short', 'HEAD')}${git('status', '--porcelain', '--untracked-files=no') === '' ? '' : '+changes'}`;
}

async function main(): Promise<void> {
  const options = parseOptions();
  const adminPort = await freeLoopbackPort();
  const peer = kuraServePeer(options.disks, { serveArgs: ['--admin', `127.0.0.1:${adminPort}`, ...options.serveArgs] });
  const workers = options.containers * options.uploadsPerContainer;
  try {
    const endpoint = await peer.start();
    const client = new RawBlobClient({ connectionString: endpoint.connectionString, connections: workers });
    const containers = Array.from({ length: options.containers }, (_, index) => `staging-${index}`);
    for (const container of containers) await client.createContainer(container);
    const payloads = new BlockPayloads(blockBytes, workers);
    const blockCount = options.blobBytes / blockBytes;
    const sampler = new ProcessSampler({ read: () => peer.sample(), intervalMs: 100 });
    const result = await runClosedLoop({
      concurrency: workers, durationMs: options.seconds * 1000, operationsMax: workers * uploadsPerWorkerMax, bytesPerOperation: options.blobBytes,
      operation: (worker, sequence) => uploadInBlocks(client, payloads, { container: containers[worker % containers.length] ?? '', blockCount, concurrency: 1 }, sequenceName('u', sequence)),
    });
    const { cpuSeconds, peakRssBytes } = sampler.stop();
    await client.close();
    const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    const writes = sumsByLabel(metrics, 'kura_disk_large_writes_total', 'way');
    const partitions = /^kura_partition_map_partitions(?:\{[^}]*\})? (\S+)$/m.exec(metrics)?.[1] ?? 'unknown';
    const mib = result.bytes / MiB;
    const large = Object.values(writes).reduce((sum, count) => sum + count, 0);
    const figures = {
      uploads: result.operations, mib, seconds: Number(result.seconds.toFixed(2)), mibPerSecond: Number(result.mibPerSecond.toFixed(1)),
      serverCpuMsPerMib: Number(((cpuSeconds * 1000) / Math.max(1, mib)).toFixed(3)), peakRssMib: Math.round(peakRssBytes / MiB), partitions, largeWrites: writes,
      bufferedShare: Number((((writes['no_staging_buffer'] ?? 0) + (writes['refused'] ?? 0)) / Math.max(1, large)).toFixed(3)), loadAverage1m: loadavg()[0],
    };
    console.log(`${options.containers} containers x ${options.uploadsPerContainer} uploads of ${options.blobBytes / MiB} MiB (8 MiB blocks): ${figures.uploads} uploads, ${figures.mibPerSecond} MiB/s, server ${figures.serverCpuMsPerMib} ms CPU/MiB, peak RSS ${figures.peakRssMib} MiB, ${partitions} partitions; large writes ${JSON.stringify(writes)} (buffered share ${figures.bufferedShare}); load ${loadavg()[0]?.toFixed(1) ?? '?'}`);
    const date = new Date().toISOString();
    const directory = join(import.meta.dirname, '..', 'results');
    await mkdir(directory, { recursive: true });
    const file = join(directory, `upload-staging-${date.slice(0, 19).replaceAll(':', '-')}.json`);
    await writeFile(file, `${JSON.stringify({ date, commit: gitCommit(), options, figures }, null, 2)}\n`);
    console.log(`saved ${file}`);
  } finally {
    await peer.stop();
  }
}

installChildCleanup();
try {
  await main();
} finally {
  killAllChildren();
}
