// The Blob service's condition races reach /metrics (docs/metrics.md, "Front end: condition
// races"): a real `kura serve --admin` gets pairs of concurrent Put Blob with the same If-Match to
// one blob. Both read the row, one commits, the other's partition condition is refused: that
// attempt is retried (kura_blob_race_retries_total + 1), re-reads the row, finds the ETag changed
// and answers 412. Pairs are sent until the counter moves (bounded: racePairsMax). Figures: pairs
// sent, retries and 412s counted; every pair has exactly one winner.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { BlobServiceClient } from '@azure/storage-blob';
import { counterValue, raceUntilRetried } from '../helpers/blob-races.ts';
import { cleanupServes, freePort, KuraServe, tempDisks } from '../helpers/kura-serve.ts';

after(cleanupServes);

const racePairsMax = 50;

test('kura serve --admin counts condition races: kura_blob_race_retries_total moves when two conditional Puts race', { timeout: 120_000 }, async (t) => {
  const disks = await tempDisks(1, 'race');
  const adminPort = await freePort();
  const serve = await KuraServe.start({ disks, extraArgs: ['--admin', `127.0.0.1:${adminPort}`] });
  const metrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  try {
    const before = await metrics();
    assert.equal(counterValue(before, 'kura_blob_race_retries_total'), 0, 'no race before any write');
    assert.equal(counterValue(before, 'kura_blob_race_exhausted_total'), 0);
    const container = BlobServiceClient.fromConnectionString(serve.connectionString, { retryOptions: { maxTries: 1 } }).getContainerClient('races');
    await container.create();
    const blob = container.getBlockBlobClient('contended');
    await blob.upload(Buffer.from('first'), 5);
    const { pairs, refused, retries } = await raceUntilRetried([blob, blob], async () => counterValue(await metrics(), 'kura_blob_race_retries_total'), racePairsMax);
    const final = await metrics();
    t.diagnostic(`${pairs} racing pair(s) of conditional Put Blob: ${refused} answered 412, kura_blob_race_retries_total ${retries}, kura_blob_race_exhausted_total ${counterValue(final, 'kura_blob_race_exhausted_total')}`);
    assert.ok(retries >= 1, `no race retry counted in ${pairs} pairs`);
    assert.equal(counterValue(final, 'kura_blob_race_exhausted_total'), 0, 'two writers never exhaust the attempts');
  } finally {
    assert.equal(await serve.stop(), 0);
  }
});
