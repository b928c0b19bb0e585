// HeapLimitFloor (P4: an optimisation with an off switch, KURA_HEAP_FLOOR_MIB=0): the growing
// factor it asks of V8 for a live heap. Its effect on a real server is measured, not asserted
// (bench/README.md, "ninth session: GC per uploaded MiB": full GCs per 20 s upload 79-104 -> 28-59).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { growingPercentFor } from '../../../src/util/heap-limit-floor.ts';

const MiB = 1024 * 1024;

describe('HeapLimitFloor', () => {
  it('asks for the factor that reaches the floor, at most V8 own largest (4), and none once doubling does', () => {
    const floor = 96 * MiB;
    const cases = [
      { live: 24 * MiB, percent: 300 },
      { live: 32 * MiB, percent: 200 },
      { live: 40 * MiB, percent: 140 },
      { live: 5 * MiB, percent: 300 },
      { live: 48 * MiB, percent: 0 },
      { live: 500 * MiB, percent: 0 },
      { live: 0, percent: 0 },
    ];
    for (const { live, percent } of cases) assert.equal(growingPercentFor(live, floor), percent, `live ${live / MiB} MiB`);
    for (let live = MiB; live < floor; live += MiB) {
      const factor = 1 + growingPercentFor(live, floor) / 100;
      assert.ok(factor <= 4, 'never more than V8 own largest factor');
      if (factor > 1) assert.ok(live * factor >= Math.min(floor, live * 4), 'reaches the floor when a factor of 4 can');
    }
    console.log(`live 24 MiB -> heap-growing-percent ${growingPercentFor(24 * MiB, floor)}; 48 MiB and above -> V8 own factor`);
  });
});
