// The blob run's time budget (profiles.ts runBudgetMs, planned by budget-plan.ts): with no time
// left the peer is not even started and every workload says why; with time left every workload runs. Against the real null
// server (its own process), with short loops.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runBlobBench } from '../../../bench/blob/blob-bench.ts';
import { killAllChildren } from '../../../bench/blob/child-server.ts';
import { blobProfiles, withLoopMs } from '../../../bench/blob/profiles.ts';
import type { PeerStatus, WorkloadResult } from '../../../bench/blob/results.ts';
import type { ProgressSink } from '../../../bench/lib/progress.ts';

function silentProgress(): ProgressSink {
  let done = 0;
  return { step: () => { done += 1; }, skipTo: (to) => { done = Math.max(done, to); }, get done() { return done; } };
}

const quickLoops = { ...blobProfiles.quick, durationMs: 100, operationsMax: 200 };

async function run(runBudgetMs: number): Promise<{ peers: readonly PeerStatus[]; results: readonly WorkloadResult[] }> {
  try {
    const outcome = await runBlobBench({ ...quickLoops, runBudgetMs }, ['null-server'], silentProgress(), { kinds: ['put', 'get'] });
    return { peers: outcome.report.peers as PeerStatus[], results: outcome.report.results as WorkloadResult[] };
  } finally {
    killAllChildren();
  }
}

describe('blob run budget', () => {
  it('skips and names the workloads a spent budget leaves out, and runs them all with time left', { timeout: 120_000 }, async () => {
    const spent = await run(1);
    assert.equal(spent.results.length, 0);
    const [peer] = spent.peers;
    assert.equal(peer?.status, 'skipped');
    const skipped = peer?.status === 'skipped' ? peer.skipped : [];
    assert.deepEqual(skipped.map((entry) => entry.workload).sort(), ['get 64 KiB ×16', 'get 64 KiB ×16 raw', 'put 4 KiB ×64', 'put 4 KiB ×64 raw', 'put 64 KiB ×16', 'put 64 KiB ×16 raw']);
    assert.ok(skipped.every((entry) => /time budget: needs ~\d+ s, 0 s left/.test(entry.reason)), JSON.stringify(skipped));
    const ample = await run(600_000);
    assert.equal(ample.results.length, 6);
    assert.ok(ample.results.every((row) => row.errors === 0 && row.throughput.operations > 0));
    assert.deepEqual(ample.peers, [{ name: 'null-server', status: 'ran' }]);
  });

  it('scales the budget with longer loops, never below the profile\'s own', () => {
    assert.equal(withLoopMs(blobProfiles.quick, 5_000).runBudgetMs, blobProfiles.quick.runBudgetMs * 5);
    assert.equal(withLoopMs(blobProfiles.quick, 500).runBudgetMs, blobProfiles.quick.runBudgetMs);
    assert.equal(withLoopMs(blobProfiles.full, 5_000).durationMs, 5_000);
  });
});
