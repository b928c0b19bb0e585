// `node bench/blob/run-blob.ts --profile quick|full [--peers a,b]` (npm run bench:blob): the
// blob benchmark of issue 5 alone (`npm run bench` runs it after the stream benchmarks). The
// work is in blob-bench.ts: machine limits, then every workload against each peer it starts
// itself (Kura's embedded default with 1 and 3 disks, Azurite on disk and in memory, the null
// server), kill -9 durability checks, tables, goals, and bench/results/blob-<profile>-<date>.
// Every child process is killed at the end, also on failure or Ctrl-C. Never run by the tests.
import { parseArgs } from 'node:util';
import { BenchProgress } from '../lib/progress.ts';
import { allPeers, blobBenchSteps, checkPeerNames, printBlobTables, runBlobBench, saveBlobBench } from './blob-bench.ts';
import { installChildCleanup, killAllChildren } from './child-server.ts';
import { blobProfiles, parseProfileName, type BlobProfile } from './profiles.ts';

function parseOptions(): { profile: BlobProfile; peerNames: string[] } {
  const { values } = parseArgs({ options: { profile: { type: 'string' }, peers: { type: 'string' } } });
  const peerNames = values.peers === undefined ? Object.keys(allPeers) : values.peers.split(',');
  checkPeerNames(peerNames);
  return { profile: blobProfiles[parseProfileName(values.profile)], peerNames };
}

installChildCleanup();
try {
  const { profile, peerNames } = parseOptions();
  const progress = new BenchProgress('bench:blob', blobBenchSteps(profile, peerNames));
  const outcome = await runBlobBench(profile, peerNames, progress);
  progress.finish();
  printBlobTables(outcome);
  console.log(`saved ${await saveBlobBench(outcome, profile)}.{json,svg}`);
} finally {
  killAllChildren();
}
