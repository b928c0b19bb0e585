// `npm run bench [-- --profile quick|full] [-- --peers a,b]`: every Kura benchmark in one run,
// behind one progress bar: the stream benchmarks (stream-bench.ts: durable appends against the
// raw fsync'd append, and through the replicated stream layer), then the blob benchmark
// (blob/blob-bench.ts: Kura's `kura serve` with 1 and 3 disks side by side with Azurite on disk
// and in memory and the null server, with the machine's limits and kill -9 durability checks).
// Prints the tables, the issue-5 goals and the kill -9 loss totals, and saves
// bench/results/stream-append-<profile>-<date>T<time>.json and blob-<profile>-<date>T<time>.json
// + .svg, each with the machine, load averages and git commit. Quick is under 5 minutes on this
// 2-core machine; full under 30. Every child process is killed at the end, also on failure or
// Ctrl-C. Never run by the test suite.
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { allPeers, blobBenchSteps, checkPeerNames, printBlobTables, resultStamp, runBlobBench, saveBlobBench } from './blob/blob-bench.ts';
import { installChildCleanup, killAllChildren } from './blob/child-server.ts';
import { blobProfiles, parseProfileName } from './blob/profiles.ts';
import { parseBenchArgs } from './lib/cli-args.ts';
import { BenchProgress } from './lib/progress.ts';
import { runStreamBench, streamBenchSteps, streamBounds, type ProfileName, type StreamBenchOutcome } from './stream-bench.ts';

const usage = `npm run bench [-- options]: the stream benchmarks, then the blob benchmark (bench/README.md)
  --profile quick|full  quick (default) is under 5 minutes, full under 30
  --peers a,b           blob peers to run, in this order (default: ${Object.keys(allPeers).join(',')})
  --skip-stream         the blob benchmark only
  --help                this text`;

function parseOptions(): { profile: ProfileName; peerNames: string[]; skipStream: boolean } {
  const values = parseBenchArgs(usage, { profile: { type: 'string' }, peers: { type: 'string' }, 'skip-stream': { type: 'boolean', default: false } });
  const peerNames = values.peers === undefined ? Object.keys(allPeers) : values.peers.split(',');
  checkPeerNames(peerNames);
  return { profile: parseProfileName(values.profile), peerNames, skipStream: values['skip-stream'] };
}

function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

async function saveStream(profile: ProfileName, outcome: StreamBenchOutcome, loadAverageAtStart: readonly number[]): Promise<string> {
  const date = new Date().toISOString();
  const report = {
    benchmark: 'stream-append',
    profile,
    bounds: streamBounds[profile],
    commit: gitCommit(),
    date,
    loadAverageAtStart,
    machine: { cores: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', memoryBytes: totalmem(), kernel: release(), node: process.version, loadAverageAtEnd: loadavg() },
    results: outcome.results,
    replicated: outcome.replicated,
  };
  await mkdir('bench/results', { recursive: true });
  const path = `bench/results/stream-append-${profile}-${resultStamp(date)}.json`;
  await writeFile(path, JSON.stringify(report, null, 2) + '\n');
  return path;
}

async function main(): Promise<void> {
  const { profile, peerNames, skipStream } = parseOptions();
  const blobProfile = blobProfiles[profile];
  const progress = new BenchProgress('bench', (skipStream ? 0 : streamBenchSteps(profile)) + blobBenchSteps(blobProfile, peerNames));
  const streamLoad = loadavg();
  const stream = skipStream ? null : await runStreamBench(profile, progress);
  const blob = await runBlobBench(blobProfile, peerNames, progress);
  progress.finish();
  for (const table of stream?.tables ?? []) console.table(table);
  printBlobTables(blob);
  if (stream !== null) console.log(`saved ${await saveStream(profile, stream, streamLoad)}`);
  console.log(`saved ${await saveBlobBench(blob, blobProfile)}.{json,svg}`);
  console.log(`npm run bench (${profile}): ${progress.elapsedSeconds()} s`);
}

installChildCleanup();
try {
  await main();
} finally {
  killAllChildren();
}
