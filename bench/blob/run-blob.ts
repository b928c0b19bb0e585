// `node bench/blob/run-blob.ts --profile quick|full [--peers a,b]` (npm run bench:blob): the
// blob benchmark of issue 5. Measures the machine's limits, then runs every workload against
// each peer it starts itself (Kura's embedded default with 1 and 3 disks, Azurite on disk and
// in memory, the null server), each on its own loopback port and temporary data directory,
// with a kill -9 durability check after every write workload. Prints a table with ratio
// columns and saves bench/results/blob-<profile>-<date>.json and .svg. Every child process is
// killed at the end, also on failure or Ctrl-C. Never run by the test suite.
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { killAllChildren } from './child-server.ts';
import { measureMachineLimits, type MachineLimits } from './limits.ts';
import { PeerUnavailableError, devAccountKey, type BenchPeer } from './peer.ts';
import { azuritePeer, kuraServePeer, nullServerPeer } from './peers.ts';
import { blobProfiles, parseProfileName, type BlobProfile } from './profiles.ts';
import { chartInput, describeRun, limitRows, tableRows, withRatios } from './report.ts';
import type { PeerStatus, WorkloadResult } from './results.ts';
import { SdkBlobClient } from './sdk-client.ts';
import { renderBarChart } from './svg-chart.ts';
import { runWorkload, specLabel, workloadSpecs, type WorkloadSpec } from './workloads.ts';

const allPeers: Readonly<Record<string, () => BenchPeer>> = {
  'kura-1disk': () => kuraServePeer(1),
  'kura-3disk': () => kuraServePeer(3),
  'azurite-disk': () => azuritePeer('disk'),
  'azurite-memory': () => azuritePeer('memory'),
  'null-server': () => nullServerPeer(),
};

type Progress = (label: string) => void;

function parseOptions(): { profile: BlobProfile; peerNames: string[] } {
  const { values } = parseArgs({ options: { profile: { type: 'string' }, peers: { type: 'string' } } });
  const peerNames = values.peers === undefined ? Object.keys(allPeers) : values.peers.split(',');
  for (const name of peerNames) if (!(name in allPeers)) throw new Error(`unknown peer ${name}; peers: ${Object.keys(allPeers).join(', ')}`);
  return { profile: blobProfiles[parseProfileName(values.profile)], peerNames };
}

function portOf(connectionString: string): number {
  const match = /BlobEndpoint=http:\/\/127\.0\.0\.1:(\d+)\//.exec(connectionString);
  if (match?.[1] === undefined) throw new Error('peer endpoint is not on 127.0.0.1');
  return Number(match[1]);
}

/** Starts one peer, runs every workload on it, and always stops it. */
async function runPeer(peer: BenchPeer, profile: BlobProfile, specs: readonly WorkloadSpec[], progress: Progress): Promise<{ status: PeerStatus; results: WorkloadResult[] }> {
  const results: WorkloadResult[] = [];
  try {
    progress(`${peer.name}: starting`);
    const endpoint = await peer.start();
    const sdk = new SdkBlobClient({ connectionString: endpoint.connectionString, maxTries: 1 });
    const setup = new SdkBlobClient({ connectionString: endpoint.connectionString, maxTries: 4 });
    const session = { peer, profile, port: portOf(endpoint.connectionString), accountKey: devAccountKey, sdk, setup };
    for (const [index, spec] of specs.entries()) {
      progress(`${peer.name}: ${specLabel(spec, profile)}`);
      const t0 = performance.now();
      const rows = await runWorkload(session, spec, `w${index}-${spec.kind}`);
      const workloadWallSeconds = (performance.now() - t0) / 1000;
      results.push(...rows.map((row) => ({ ...row, workloadWallSeconds })));
    }
    return { status: { name: peer.name, status: 'ran' }, results };
  } catch (error) {
    if (error instanceof PeerUnavailableError) return { status: { name: peer.name, status: 'unavailable', reason: error.reason }, results };
    const message = error instanceof Error ? error.message : String(error);
    return { status: { name: peer.name, status: 'failed', error: message }, results };
  } finally {
    await peer.stop();
  }
}

async function measureLimits(profile: BlobProfile, progress: Progress): Promise<MachineLimits> {
  return measureMachineLimits({
    sizesBytes: [...profile.sizesBytes, profile.bigBlockBytes],
    durationMs: profile.durationMs,
    operationsMax: profile.operationsMax,
    bytesMax: profile.workloadBytesMax,
    onProgress: progress,
  });
}

async function save(profile: BlobProfile, report: Record<string, unknown>, svg: string, date: string): Promise<string> {
  const directory = join(import.meta.dirname, '..', 'results');
  await mkdir(directory, { recursive: true });
  const base = join(directory, `blob-${profile.name}-${date.slice(0, 10)}`);
  await writeFile(`${base}.json`, JSON.stringify(report, null, 2) + '\n');
  await writeFile(`${base}.svg`, svg);
  return base;
}

async function main(): Promise<void> {
  const { profile, peerNames } = parseOptions();
  // Other work on this machine skews every figure: the load at start and end is saved with them.
  const loadAverageAtStart = loadavg();
  const specs = workloadSpecs(profile);
  const limitSteps = 2 * (profile.sizesBytes.length + 1);
  const bar = new cliProgress.SingleBar({ format: 'bench:blob [{bar}] {value}/{total} {elapsed}s {label}', etaBuffer: 20 }, cliProgress.Presets.shades_classic);
  let done = 0;
  bar.start(limitSteps + peerNames.length * (specs.length + 1), 0, { label: '', elapsed: 0 });
  const startedMs = performance.now();
  const progress: Progress = (label) => bar.update(done++, { label, elapsed: Math.round((performance.now() - startedMs) / 1000) });
  const limits = await measureLimits(profile, progress);
  const peers: PeerStatus[] = [];
  const results: WorkloadResult[] = [];
  for (const name of peerNames) {
    const factory = allPeers[name];
    if (factory === undefined) continue;
    const before = done;
    const outcome = await runPeer(factory(), profile, specs, progress);
    done = before + specs.length + 1;
    peers.push(outcome.status);
    results.push(...outcome.results);
  }
  bar.update(done, { label: 'done' });
  bar.stop();
  const date = new Date().toISOString();
  const rated = withRatios(results, limits, profile);
  console.table(limitRows(limits));
  console.table(tableRows(rated, peers));
  const subtitle = `${profile.name} profile, ${date.slice(0, 10)}, Node ${process.version}, load average at start ${loadAverageAtStart[0]?.toFixed(1) ?? '?'}; bars scaled per workload; bench/results/*.json has every figure`;
  const svg = renderBarChart(chartInput({ results, peers, title: 'Kura blob benchmark: @azure/storage-blob against each peer on 127.0.0.1', subtitle }));
  const report = { benchmark: 'blob', profile: profile.name, date, loadAverageAtStart, ...describeRun(tmpdir()), bounds: profile, peers, limits, results: rated, elapsedSeconds: (performance.now() - startedMs) / 1000 };
  console.log(`saved ${await save(profile, report, svg, date)}.{json,svg}`);
}

process.once('exit', killAllChildren);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAllChildren();
    process.exit(130);
  });
}
try {
  await main();
} finally {
  killAllChildren();
}
