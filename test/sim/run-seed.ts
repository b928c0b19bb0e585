// Shared by the simulator's seed tests: runs one seed and fails with its violations, the tail of
// its trace and the command that replays it.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { replayCommand } from '../../sim/run.ts';
import { runSimulation } from '../../sim/simulation.ts';
import type { SimResult } from '../../sim/simulation.ts';

export async function runSeed(t: TestContext, seed: bigint): Promise<SimResult> {
  const result = await runSimulation(seed);
  const faults = Object.entries(result.faults).filter(([, count]) => count > 0).map(([kind, count]) => `${kind}=${count}`).join(' ');
  t.diagnostic(`seed ${seed}: ${result.acknowledged} writes acknowledged, ${result.checks.acknowledgedWritesChecked} checked, ${result.indeterminate} indeterminate, ${result.workload?.readsChecked ?? 0} reads checked; ${(result.virtualMs / 1000).toFixed(0)} s simulated in ${(result.realMs / 1000).toFixed(1)} s; faults: ${faults}`);
  assert.ok(result.ok, [
    `seed ${seed} violated ${result.violations.length} promise(s):`, ...result.violations.slice(0, 20).map((v) => `  ${v}`),
    'trace tail:', ...result.recentTrace.slice(-30).map((line) => `  ${line}`), `replay: ${replayCommand(seed)}`,
  ].join('\n'));
  return result;
}
