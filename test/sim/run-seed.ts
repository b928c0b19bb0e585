// Shared by the simulator's seed tests: runs one seed and fails with its violations, the tail of
// its trace and the command that replays it.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { replayCommand, workFigures } from '../../sim/run.ts';
import { runSimulation } from '../../sim/simulation.ts';
import type { SimResult } from '../../sim/simulation.ts';

/** A seed's test is bounded by its work (simTimersFiredMax timers fired, sim/stamp.ts: the same at
 * any machine load), not by wall time: at load 15-30 on 2 cores a 5 s seed took past the old
 * 120 s limit. This only ends a hang the work bound cannot see (a task loop that never yields to
 * the driver); 30 min is ~400x the slowest seed on a quiet machine. */
export const seedHangGuardMs = 30 * 60_000;

export async function runSeed(t: TestContext, seed: bigint): Promise<SimResult> {
  const result = await runSimulation(seed);
  const faults = Object.entries(result.faults).filter(([, count]) => count > 0).map(([kind, count]) => `${kind}=${count}`).join(' ');
  t.diagnostic(`seed ${seed}: ${result.acknowledged} writes acknowledged, ${result.checks.acknowledgedWritesChecked} checked, ${result.indeterminate} indeterminate, ${result.workload?.readsChecked ?? 0} reads checked; ${(result.virtualMs / 1000).toFixed(0)} s simulated in ${(result.realMs / 1000).toFixed(1)} s (${workFigures(result)}); faults: ${faults}`);
  assert.ok(result.ok, [
    `seed ${seed} violated ${result.violations.length} promise(s):`, ...result.violations.slice(0, 20).map((v) => `  ${v}`),
    'trace tail:', ...result.recentTrace.slice(-30).map((line) => `  ${line}`), `replay: ${replayCommand(seed)}`,
  ].join('\n'));
  return result;
}
