// Same seed, same run, byte for byte (docs/simulation.md): two runs of one seed produce the same
// trace digest (every fault, every write's outcome, every read's version, in virtual time order)
// and the same figures; another seed produces another run. KURA_SEED pins the seed; the default
// runs the blob workload too (PartitionBlobBackend takes the run's seeded ids), so both workloads
// are covered.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { defaultSimOptions, runSimulation } from '../../sim/simulation.ts';
import type { SimResult } from '../../sim/simulation.ts';
import { seedHangGuardMs } from './run-seed.ts';

const seed = BigInt(process.env['KURA_SEED'] ?? '20121230');

function fingerprint(result: SimResult): unknown {
  return {
    digest: result.traceDigest, lines: result.traceLines, virtualMs: result.virtualMs, faults: result.faults, disk: result.diskFaults,
    network: result.networkFaults, blobs: result.blobWorkload, acknowledged: result.acknowledged, indeterminate: result.indeterminate, failed: result.failed, checks: result.checks,
    violations: result.violations, timersFired: result.timersFired,
  };
}

describe('the simulator is deterministic', () => {
  // Bounded by work (timers fired, the same in both runs: the fingerprint compares it), not by wall
  // time: three runs take ~23 s at load 12 but once passed 120 s on a loaded machine.
  it('runs one seed twice to the same trace digest and figures; another seed differs', { timeout: seedHangGuardMs * 3 }, async (t) => {
    const first = await runSimulation(seed);
    const second = await runSimulation(seed);
    const other = await runSimulation(seed + 1n);
    t.diagnostic(`seed ${seed}: trace ${first.traceDigest.slice(0, 16)}… (${first.traceLines} lines, ${(first.virtualMs / 1000).toFixed(0)} s simulated, ${first.timersFired.toLocaleString('en')} timers fired) twice; seed ${seed + 1n}: ${other.traceDigest.slice(0, 16)}…`);
    assert.ok(first.traceLines > 100, 'a run traces its history');
    assert.ok(first.blobWorkload !== null && Object.keys(first.blobWorkload.opsByKind).length > 0, 'the seed runs the blob workload');
    assert.deepEqual(fingerprint(second), fingerprint(first));
    assert.notEqual(other.traceDigest, first.traceDigest);
  });

  it('a run past its work bound (timers fired) fails as a liveness violation, whatever the wall time', { timeout: seedHangGuardMs }, async (t) => {
    const timersFiredMax = 5_000;
    const bounded = await runSimulation(seed, { ...defaultSimOptions, timersFiredMax });
    t.diagnostic(`seed ${seed} with a work bound of ${timersFiredMax} timers: ${bounded.violations.join('; ').slice(0, 300)}`);
    assert.equal(bounded.ok, false);
    assert.match(bounded.violations.join('\n'), /work bound \(5000 timers fired\)/);
  });
});
