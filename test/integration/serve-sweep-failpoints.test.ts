// A real `kura serve` crashed around a sweep intent (docs/blob-schema.md, "Sweep intents"): a Put
// Block List that keeps 1 of 300 staged blocks discards more rows than its transaction deletes, so
// the writer first puts a durable intent, then commits, then sweeps. The process dies (the SIGKILL a
// failpoint armed with KURA_FAILPOINTS_AFTER_READY sends it):
// - at blob.sweep-intent.after-put: the intent is durable, the commit never sent. After a restart the
//   background sweeper must fence the commit out (rewrite the fence row) and delete the intent; the
//   blob is still the one before, its 300 uncommitted blocks still listed.
// - at blob.sweep-intent.after-commit: the commit applied, the writer's sweep never ran. After a
//   restart the sweeper must sweep the blob and delete the intent; the blob is the new one.
// Figures: ms from the restart's ready to the intent resolved (its grace is 10 s from the write),
// read from the restarted process's /metrics.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { BlockBlobClient } from '@azure/storage-blob';
import { sweepIntentGraceMs } from '../../src/constants.ts';
import type { FailpointName } from '../../src/util/failpoints.ts';
import { container, payload, sha } from '../helpers/blob-ledger.ts';
import { describeFailure } from '../helpers/crash-ledger.ts';
import { cleanupServes, freePort, KuraServe, tempDisks } from '../helpers/kura-serve.ts';
import { adminGet, until } from '../helpers/role-process.ts';

after(cleanupServes);

const stagedBlocks = 300;
const stagingConcurrency = 8;
const resolvedWithinMs = sweepIntentGraceMs + 20_000;

const blockId = (index: number): string => Buffer.from(`block-${String(index).padStart(6, '0')}`).toString('base64');

/** Stages `stagedBlocks` small blocks on `blob` (bounded concurrency). */
async function stageMany(blob: BlockBlobClient): Promise<void> {
  let next = 0;
  const stager = async (): Promise<void> => {
    for (let index = next++; index < stagedBlocks; index = next++) {
      const body = Buffer.from(`staged ${index}\n`);
      await blob.stageBlock(blockId(index), body, body.length);
    }
  };
  await Promise.all(Array.from({ length: stagingConcurrency }, () => stager()));
}

/** The value of the Prometheus sample of `name` whose labels include `label` (0 if absent). */
function sample(metrics: string, name: string, label = ''): number {
  const line = metrics.split('\n').find((candidate) => candidate.startsWith(`${name}{`) && candidate.includes(label));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

interface SweepCase {
  readonly failpoint: FailpointName;
  /** How the sweeper resolves the intent: the `by` label of kura_sweep_intents_resolved_total. */
  readonly resolvedBy: 'fence_rewrite' | 'sweep';
  /** Whether the commit applied (the blob is the new one). */
  readonly committed: boolean;
}

const cases: readonly SweepCase[] = [
  { failpoint: 'blob.sweep-intent.after-put', resolvedBy: 'fence_rewrite', committed: false },
  { failpoint: 'blob.sweep-intent.after-commit', resolvedBy: 'sweep', committed: true },
];

describe('kura serve crashed around a sweep intent', () => {
  for (const sweepCase of cases) {
    it(`${sweepCase.failpoint}: after a restart the sweeper resolves the intent (${sweepCase.resolvedBy}); the blob is whole`, { timeout: 60_000 }, async (t) => {
      const disks = await tempDisks(1, 'sweep');
      const serve = await KuraServe.start({ disks, env: { KURA_FAILPOINTS_AFTER_READY: `${sweepCase.failpoint}=crash` } });
      const box = container(serve, 'sweep');
      await box.create();
      const blob = box.getBlockBlobClient('big');
      const base = payload('base', 1000);
      await blob.stageBlock(blockId(-1), base, base.length);
      await blob.commitBlockList([blockId(-1)]);
      await stageMany(blob);
      const failure = await blob.commitBlockList([blockId(0)]).then(() => 'acknowledged', describeFailure);
      await serve.exitWithin(10_000);
      assert.equal(serve.child.signalCode, 'SIGKILL', `kura serve died at ${sweepCase.failpoint} (the commit: ${failure})`);

      const admin = `127.0.0.1:${await freePort()}`;
      const restarted = await KuraServe.start({ disks, extraArgs: ['--admin', admin] });
      const readyAtMs = Date.now();
      const resolved = `by="${sweepCase.resolvedBy}"`;
      const metrics = await until(`the intent resolved ${resolved}`, async () => {
        const text = String((await adminGet(admin, '/metrics')).body);
        return sample(text, 'kura_sweep_intents_resolved_total', resolved) >= 1 && sample(text, 'kura_sweep_intents_pending') === 0 ? text : null;
      }, resolvedWithinMs, 250);
      const resolvedMs = Date.now() - readyAtMs;
      const after9 = container(restarted, 'sweep').getBlockBlobClient('big');
      const expected = sweepCase.committed ? Buffer.from('staged 0\n') : base;
      const uncommitted = (await after9.getBlockList('uncommitted')).uncommittedBlocks?.length ?? 0;
      t.diagnostic(`${sweepCase.failpoint}: commit ${failure}; restart ready in ${restarted.readyMs} ms; intent resolved ${resolved} ${resolvedMs} ms after ready (resolved_total: ${['writer', 'sweep', 'fence_rewrite'].map((by) => `${by} ${sample(metrics, 'kura_sweep_intents_resolved_total', `by="${by}"`)}`).join(', ')}); blob ${sweepCase.committed ? 'new' : 'old'} as expected; ${uncommitted} uncommitted blocks listed`);
      assert.equal(sha(await after9.downloadToBuffer()), sha(expected));
      assert.equal(uncommitted, sweepCase.committed ? 0 : stagedBlocks);
      assert.equal(await restarted.stop(), 0);
    });
  }
});
