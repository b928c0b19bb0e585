// The simulator's fixed CI seed list (docs/simulation.md): each seed is a whole stamp run with the
// full fault model, every checker after it; a failure prints its violations, trace tail and
// replay command. The summary reports the figures TESTING.md asks for: writes acknowledged and
// checked, faults injected by kind, failpoints hit / total, simulated hours per real hour.
// Longer runs: npm run sim -- --seeds N or --minutes M.
import { after, describe, it } from 'node:test';
import { accumulate, emptyTotals, formatFigures } from '../../sim/run.ts';
import { runSeed } from './run-seed.ts';

/** Chosen from a sweep (root 2026, 40 seeds) to cover all 21 fault kinds and all 10 failpoints
 * between them at the least run time; all pass. */
export const ciSeeds: readonly bigint[] = [
  164532926998n, 759951796724n, 731904535645n, 462226315009n, 767127310300n, 256634337379n, 534043916428n, 366596082867n, 623908216569n, 99361603504n,
];

describe('simulator: fixed seed list', () => {
  const totals = emptyTotals();
  for (const seed of ciSeeds) {
    it(`seed ${seed}`, { timeout: 120_000 }, async (t) => {
      accumulate(totals, await runSeed(t, seed));
    });
  }
  after(() => {
    process.stdout.write(`# simulator figures over ${totals.runs} CI seeds:\n${formatFigures(totals).split('\n').map((line) => `#   ${line}`).join('\n')}\n`);
  });
});
