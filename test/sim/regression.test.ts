// Every seed that ever failed the simulator stays a test (test/sim/regression-seeds.json): fixed
// ones must pass; open ones (known violations not fixed yet) run as todo, so they are reported
// without failing the suite, and start counting once fixed.
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { runSeed, seedHangGuardMs } from './run-seed.ts';

const regressionFile = z.object({
  seeds: z.array(z.object({ seed: z.string().regex(/^\d+$/), status: z.enum(['fixed', 'open']), found: z.string(), fix: z.string() })),
});

const { seeds } = regressionFile.parse(JSON.parse(readFileSync(new URL('./regression-seeds.json', import.meta.url), 'utf8')));

describe('simulator regression seeds', () => {
  for (const entry of seeds) {
    const todo = entry.status === 'open' ? `open: ${entry.fix}` : false;
    it(`seed ${entry.seed} (${entry.status}): ${entry.found.slice(0, 100)}`, { timeout: seedHangGuardMs, todo }, async (t) => {
      await runSeed(t, BigInt(entry.seed));
    });
  }
});
