// The simulator's fixed CI seed list (docs/simulation.md): each seed is a whole stamp run with the
// full fault model, every checker after it; a failure prints its violations, trace tail and
// replay command. The summary reports the figures TESTING.md asks for: writes acknowledged and
// checked, faults injected by kind, failpoints hit / total, simulated hours per real hour.
// Longer runs: npm run sim -- --seeds N or --minutes M.
import { after, describe, it } from 'node:test';
import { accumulate, emptyTotals, formatFigures } from '../../sim/run.ts';
import { runSeed } from './run-seed.ts';

/** Chosen from a sweep (root 4242, 40 seeds) to cover all 22 fault kinds and all 13 failpoints
 * between them at the least run time; all pass. */
export const ciSeeds: readonly bigint[] = [
  901316900389n, 843719771789n, 471446126962n, 565129481791n, 182603282702n, 657603708339n, 52044346906n, 57935302037n, 335720086622n, 746318121342n,
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
