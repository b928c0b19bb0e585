// `kura serve` (P1, P2): bit rot in the tail blocks of a still-OPEN extent on one of three disks.
// Regression for a data loss: recovery used to cut such a tail as a torn write
// (extent-file.ts dropDamagedTail) although the bytes were synced and acknowledged (the journal
// already retired); the replica reported a shorter length and the seal minimum at the partition
// load cut acknowledged log records from every replica (15-33 of 40 blobs lost). Now a whole
// tail record that fails its check and that no journal record restores marks the replica
// damaged (damage marker reason extent_tail_damaged), so the seal leaves it out of the minimum
// and it is replaced (docs/formats/extent-file.md, "Recovery").
// Unlike serve-durability.test.ts there is no sealing restart before the flips: the tails stay open.
// The test: 40 acknowledged uploads, a clean stop, bits flipped in every extent file of one of
// three --disk directories (the tails still open), a restart: every download is byte-exact (the
// corrupt replica's blocks fail their CRC, or its damaged tail keeps it out of the seal length,
// and another replica serves). Processes are stopped, and killed in after() if a test fails.
// Payloads are unique and self-checking (name, sequence and random bytes; SHA-256 kept by the test).
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { after, test } from 'node:test';
import { cleanupServes, KuraServe, tempDisks } from '../helpers/kura-serve.ts';
import { container, downloadAll, flipBits, payload, serveWithContainer, sha } from '../helpers/blob-ledger.ts';

after(cleanupServes);

test('bits flipped in the OPEN tail extents of one of three disks: every download is still byte-exact', { timeout: 300_000 }, async (t) => {
  const disks = await tempDisks(3, 'bitrot');
  const { serve: first, box } = await serveWithContainer(disks, 'rot');
  const stored = new Map<string, string>();
  for (let index = 0; index < 40; index++) {
    const name = `r/${index}.bin`;
    const body = payload(name, index % 4 === 0 ? 2 * 1024 * 1024 : randomInt(1000, 200_000));
    await box.getBlockBlobClient(name).upload(body, body.length);
    stored.set(name, sha(body));
  }
  assert.equal(await first.stop(), 0); // no sealing restart: the tails stay open

  const victim = disks[1] ?? '';
  const flipped = await flipBits(victim, 64);
  assert.ok(flipped.files > 0, 'the victim disk holds extent files');
  const second = await KuraServe.start({ disks });
  const result = await downloadAll(container(second, 'rot'), stored);
  t.diagnostic(`${flipped.bits} bits flipped in ${flipped.files} extent files of disk 1; ${stored.size} blobs: ${result.present} present, ${result.corrupt.length} corrupt served, ${result.lost.length} lost`);
  assert.deepEqual(result.lost, []);
  assert.deepEqual(result.corrupt, []);
  assert.equal(await second.stop(), 0);
});
