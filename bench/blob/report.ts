// Turns the blob benchmark's results into what a person reads: the console table (speed,
// latency, server cost, durability and ratio columns), the SVG chart's input, and the JSON
// report saved under bench/results/ with the machine, versions and git commit.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, platform, release, totalmem } from 'node:os';
import { join } from 'node:path';
import type { MachineLimits } from './limits.ts';
import type { BlobProfile } from './profiles.ts';
import { computeRatios, lostLabel, primaryRate, primaryUnit, type RatioSet } from './ratios.ts';
import type { PeerStatus, WorkloadResult } from './results.ts';
import { formatRate, type ChartInput } from './svg-chart.ts';

const MiB = 1024 * 1024;
const repositoryRoot = join(import.meta.dirname, '..', '..');

export type TableRow = Record<string, string | number>;

function fixed(value: number | null, digits: number): string {
  return value === null ? '' : value.toFixed(digits);
}

export function tableRows(results: readonly (WorkloadResult & { ratios: RatioSet })[], peers: readonly PeerStatus[]): TableRow[] {
  const rows: TableRow[] = results.map((result) => ({
    workload: result.workload,
    peer: result.peer,
    'ops/s': formatRate(result.throughput.opsPerSecond),
    'MiB/s': result.throughput.mibPerSecond.toFixed(1),
    'blobs/s': result.itemsPerSecond === null ? '' : formatRate(result.itemsPerSecond),
    'p50 ms': result.throughput.latency.p50Ms.toFixed(2),
    'p99 ms': result.throughput.latency.p99Ms.toFixed(2),
    'p999 ms': result.throughput.latency.p999Ms.toFixed(2),
    // NaN: a running stamp whose processes the benchmark cannot see (`kura bench` without pids).
    'CPU ms/op': Number.isNaN(result.server.cpuSecondsPerOperation) ? 'not measured' : (result.server.cpuSecondsPerOperation * 1000).toFixed(3),
    'peak RSS MiB': Number.isNaN(result.server.peakRssBytes) ? 'not measured' : Math.round(result.server.peakRssBytes / MiB),
    errors: result.errors,
    'lost after kill -9': lostLabel(result),
    '÷ null server': fixed(result.ratios.toNullServer, 2),
    '÷ limit': result.ratios.toMachineLimit === null ? '' : `${fixed(result.ratios.toMachineLimit, 3)} ${result.ratios.machineLimit === 'fsync-append' ? 'fsync' : 'read'}`,
    'kura ÷ azurite': fixed(result.ratios.kuraToAzurite, 2),
    'cluster ÷ kura-3disk': fixed(result.ratios.clusterToEmbedded, 2),
    '÷ 1 front end': fixed(result.ratios.toOneFrontend, 2),
  }));
  for (const peer of peers) {
    if (peer.status === 'unavailable') rows.push({ workload: '—', peer: peer.name, 'ops/s': `not available in this build: ${peer.reason}` });
    if (peer.status === 'failed') rows.push({ workload: '—', peer: peer.name, 'ops/s': `failed: ${peer.error}` });
    if (peer.status === 'skipped') rows.push({ workload: '—', peer: peer.name, 'ops/s': 'not started: none of its workloads fitted the run\'s time budget' });
    for (const skipped of peer.status === 'ran' || peer.status === 'skipped' ? (peer.skipped ?? []) : []) rows.push({ workload: skipped.workload, peer: peer.name, 'ops/s': `skipped: ${skipped.reason}` });
  }
  return rows;
}

export function limitRows(limits: MachineLimits): TableRow[] {
  const rows = (kind: string, list: MachineLimits['fsyncAppend']): TableRow[] =>
    list.map(({ sizeBytes, result }) => ({ limit: kind, 'size B': sizeBytes, 'ops/s': Math.round(result.opsPerSecond), 'MiB/s': result.mibPerSecond.toFixed(1), 'p50 ms': result.latency.p50Ms.toFixed(3), 'p99 ms': result.latency.p99Ms.toFixed(3) }));
  const appendKind = (limit: MachineLimits['fsyncAppend'][number]): string => (limit.method === 'direct' ? 'durable append (O_DIRECT, faster)' : "fsync'd append");
  const appendRows = limits.fsyncAppend.flatMap((limit) => [
    ...rows(appendKind(limit), [limit]),
    ...(limit.slower === undefined ? [] : rows(`  (slower: ${limit.slower.method === 'direct' ? 'O_DIRECT' : 'fdatasync'})`, [{ sizeBytes: limit.sizeBytes, result: limit.slower.result }])),
  ]);
  return [...appendRows, ...rows('sequential read (page cache)', limits.sequentialRead)];
}

export function withRatios(results: readonly WorkloadResult[], limits: MachineLimits, profile: BlobProfile): (WorkloadResult & { ratios: RatioSet })[] {
  return results.map((result) => ({ ...result, ratios: computeRatios(result, results, limits, profile.bigBlockBytes) }));
}

export function chartInput(options: { readonly results: readonly WorkloadResult[]; readonly peers: readonly PeerStatus[]; readonly title: string; readonly subtitle: string }): ChartInput {
  const ran = options.peers.filter((peer) => peer.status === 'ran').map((peer) => peer.name);
  const workloads = [...new Set(options.results.map((result) => result.workload))];
  return {
    title: options.title,
    subtitle: options.subtitle,
    peers: ran,
    unavailable: options.peers.flatMap((peer) => (peer.status === 'unavailable' ? [{ peer: peer.name, reason: peer.reason }] : peer.status === 'failed' ? [{ peer: peer.name, reason: `failed: ${peer.error}` }] : peer.status === 'skipped' ? [{ peer: peer.name, reason: 'not started: the run\'s time budget' }] : [])),
    groups: workloads.map((workload) => {
      const rows = options.results.filter((result) => result.workload === workload);
      const first = rows[0];
      return {
        label: workload,
        unit: first === undefined ? '' : primaryUnit(first),
        bars: rows.map((result) => {
          const lost = lostLabel(result);
          return { peer: result.peer, value: primaryRate(result), note: lost === '' || lost === 'n/a' ? '' : `lost ${lost} after kill -9` };
        }),
      };
    }),
  };
}

function packageVersion(packageJsonPath: string): string {
  try {
    const parsed: unknown = JSON.parse(readFileSync(packageJsonPath, 'utf8'));
    return typeof parsed === 'object' && parsed !== null && 'version' in parsed && typeof parsed.version === 'string' ? parsed.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

function git(args: readonly string[]): string {
  try {
    return execFileSync('git', [...args], { cwd: repositoryRoot, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

function fileSystemOf(path: string): string {
  try {
    return execFileSync('df', ['-T', path], { encoding: 'utf8' }).trim().split('\n')[1]?.split(/\s+/)[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function describeRun(tmpDirectory: string): Record<string, unknown> {
  return {
    commit: git(['rev-parse', 'HEAD']),
    commitDirty: git(['status', '--porcelain', '--untracked-files=no']) !== '',
    machine: { loadAverageAtEnd: loadavg(), cores: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', memoryBytes: totalmem(), platform: platform(), kernel: release(), tmpDirectory, tmpFileSystem: fileSystemOf(tmpDirectory) },
    versions: {
      node: process.version,
      kura: packageVersion(join(repositoryRoot, 'package.json')),
      ...Object.fromEntries(['azurite', '@azure/storage-blob', 'undici'].map((name) => [name, packageVersion(join(repositoryRoot, 'node_modules', name, 'package.json'))])),
    },
  };
}
