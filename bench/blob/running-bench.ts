// `kura bench` (src/cli/bench-command.ts): the blob benchmark against a stamp that is already
// running, a `kura serve` or a dev cluster on this machine or any Azure Blob endpoint, so the
// figures can be reproduced on the stamp a user actually runs. It uses the same workloads,
// clients, tables, goals and JSON as `npm run bench`, with local peers started beside it for the
// ratios (by default the null server, the client's own ceiling on this machine). The running
// stamp is never killed, so no kill -9 check is made on it.
import { BenchProgress } from '../lib/progress.ts';
import { blobBenchSteps, checkPeerNames, printBlobTables, runBlobBench, saveBlobBench, type BlobRunOptions } from './blob-bench.ts';
import { installChildCleanup, killAllChildren } from './child-server.ts';
import { blobProfiles, parseProfileName, withLoopSeconds } from './profiles.ts';
import { devClusterTarget, runningPeer } from './running-peer.ts';
import type { WorkloadSpec } from './workloads.ts';

export interface RunningBenchOptions {
  readonly connectionString?: string;
  /** A `kura dev-cluster --data` directory: connection string and pids from its cluster.json. */
  readonly data?: string;
  readonly pids: readonly number[];
  readonly name: string;
  readonly profile?: string;
  readonly workloads?: string;
  readonly loopSeconds?: string;
  /** Local peers run beside it, comma-separated, or "none". */
  readonly compare: string;
  /** Where the JSON and SVG go (default bench/results of this checkout). */
  readonly out?: string;
}

const workloadKinds: readonly WorkloadSpec['kind'][] = ['put', 'get', 'big', 'list', 'mixed'];

export function parseWorkloadKinds(text: string | undefined): readonly WorkloadSpec['kind'][] | undefined {
  if (text === undefined) return undefined;
  const kinds = text.split(',').map((kind) => kind.trim());
  for (const kind of kinds) if (!(workloadKinds as readonly string[]).includes(kind)) throw new Error(`--workloads: unknown workload ${JSON.stringify(kind)}; workloads: ${workloadKinds.join(', ')}`);
  return kinds as WorkloadSpec['kind'][];
}

async function target(options: RunningBenchOptions): Promise<{ connectionString: string; pids: readonly number[] }> {
  if (options.data !== undefined) {
    const cluster = await devClusterTarget(options.data);
    return { connectionString: options.connectionString ?? cluster.connectionString, pids: [...cluster.pids, ...options.pids] };
  }
  const connectionString = options.connectionString ?? process.env.AZURE_STORAGE_CONNECTION_STRING;
  if (connectionString === undefined || connectionString === '') throw new Error('give --connection-string, --data DIR (a dev cluster) or AZURE_STORAGE_CONNECTION_STRING: the stamp to measure');
  return { connectionString, pids: options.pids };
}

/** Runs the benchmark, prints its tables and saves its JSON and SVG; true when the stamp's workloads ran. */
export async function runRunningBench(options: RunningBenchOptions): Promise<boolean> {
  const profile = withLoopSeconds(blobProfiles[parseProfileName(options.profile)], options.loopSeconds);
  const compare = options.compare === 'none' ? [] : options.compare.split(',').map((name) => name.trim());
  checkPeerNames(compare);
  const kinds = parseWorkloadKinds(options.workloads);
  const stamp = await target(options);
  const run: BlobRunOptions = { running: runningPeer({ name: options.name, ...stamp }), ...(kinds === undefined ? {} : { kinds }) };
  installChildCleanup();
  try {
    const progress = new BenchProgress('kura bench', blobBenchSteps(profile, compare, run));
    const outcome = await runBlobBench(profile, compare, progress, run);
    progress.finish();
    printBlobTables(outcome);
    console.log(`saved ${await saveBlobBench(outcome, profile, ...(options.out === undefined ? [] : [options.out]))}.{json,svg}`);
    const peers = outcome.report.peers as readonly { name: string; status: string }[];
    return peers.some((peer) => peer.name === options.name && peer.status === 'ran');
  } finally {
    killAllChildren();
  }
}
