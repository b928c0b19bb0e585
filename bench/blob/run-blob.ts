// `node bench/blob/run-blob.ts --profile quick|full [--peers a,b] [--loop-seconds S] [--plan]` (npm run bench:blob): the
// blob benchmark of issue 5 alone (`npm run bench` runs it after the stream benchmarks). The
// work is in blob-bench.ts: machine limits, then every workload against each peer it starts
// itself (Kura's embedded default with 1 and 3 disks, Azurite on disk and in memory, the null
// server), kill -9 durability checks, tables, goals, and bench/results/blob-<profile>-<date>.
// Every child process is killed at the end, also on failure or Ctrl-C. Never run by the tests.
import { parseBenchArgs } from '../lib/cli-args.ts';
import { BenchProgress } from '../lib/progress.ts';
import { allPeers, blobBenchSteps, checkPeerNames, dryRunPlan, planRows, printBlobTables, runBlobBench, saveBlobBench } from './blob-bench.ts';
import { installChildCleanup, killAllChildren } from './child-server.ts';
import { blobProfiles, parseProfileName, withLoopSeconds, type BlobProfile } from './profiles.ts';

/**
 * --loop-seconds replaces the profile's time bound of each put/get loop (quick: 1 s, whose
 * ~50 Put Blobs on a slow peer are one or two waves of 16): longer loops for the few peers of
 * a comparison on a loaded machine. The count and byte bounds still apply.
 */
const usage = `npm run bench:blob [-- options]: the blob benchmark alone (bench/blob/README.md)
  --profile quick|full  quick (default) is under 5 minutes, full under 30 with the stream part
  --peers a,b           peers to run, in this order (default: ${Object.keys(allPeers).join(',')})
  --loop-seconds S      the time bound of each put/get loop instead of the profile's
  --plan                print the time budget's plan from its priors and start nothing
  --help                this text`;

function parseOptions(): { profile: BlobProfile; peerNames: string[]; plan: boolean } {
  const values = parseBenchArgs(usage, { profile: { type: 'string' }, peers: { type: 'string' }, 'loop-seconds': { type: 'string' }, plan: { type: 'boolean', default: false } });
  const peerNames = values.peers === undefined ? Object.keys(allPeers) : values.peers.split(',');
  checkPeerNames(peerNames);
  return { profile: withLoopSeconds(blobProfiles[parseProfileName(values.profile)], values['loop-seconds']), peerNames, plan: values.plan };
}

installChildCleanup();
try {
  const { profile, peerNames, plan } = parseOptions();
  if (plan) {
    // --plan: the budget planner's dry run from its priors (nothing is started).
    const dry = dryRunPlan(profile, peerNames);
    console.table(planRows(dry));
    console.log(`planned ${(dry.plannedMs / 1000).toFixed(0)} s of ${(dry.budgetMs / 1000).toFixed(0)} s (the run's budget less the limits)`);
    process.exit(0);
  }
  const progress = new BenchProgress('bench:blob', blobBenchSteps(profile, peerNames));
  const outcome = await runBlobBench(profile, peerNames, progress);
  progress.finish();
  printBlobTables(outcome);
  console.log(`saved ${await saveBlobBench(outcome, profile)}.{json,svg}`);
} finally {
  killAllChildren();
}
