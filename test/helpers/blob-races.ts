// Provoking and reading the Blob service's condition races (docs/metrics.md, "Front end:
// condition races") through real processes: two Put Blob with the same If-Match at once make one
// attempt lose its partition condition, retry, and answer 412.
import assert from 'node:assert/strict';
import { RestError, type BlockBlobClient } from '@azure/storage-blob';

/** One counter's value (first series of that name) from a Prometheus text exposition. */
export function counterValue(exposition: string, name: string): number {
  const line = exposition.split('\n').find((candidate) => candidate.startsWith(`${name}{`) || candidate.startsWith(`${name} `));
  assert.ok(line !== undefined, `${name} missing from /metrics`);
  return Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** Two Put Blob with If-Match = the blob's current ETag at once: 'won' or 'refused' (412) each. */
export async function racePair(blobs: readonly [BlockBlobClient, BlockBlobClient], round: number): Promise<string[]> {
  const etag = (await blobs[0].getProperties()).etag;
  assert.ok(etag !== undefined, 'the raced blob has an ETag');
  return Promise.all(blobs.map(async (blob, writer) => {
    const body = Buffer.from(`round ${round} writer ${writer}`);
    try {
      await blob.upload(body, body.length, { conditions: { ifMatch: etag } });
      return 'won';
    } catch (error) {
      if (error instanceof RestError && error.statusCode === 412) return 'refused';
      throw error;
    }
  }));
}

/** Sends racing pairs until `retries()` moves past 0 or pairsMax pairs were sent; every pair has one winner. */
export async function raceUntilRetried(blobs: readonly [BlockBlobClient, BlockBlobClient], retries: () => Promise<number>, pairsMax: number): Promise<{ pairs: number; refused: number; retries: number }> {
  let pairs = 0;
  let refused = 0;
  let counted = 0;
  while (counted === 0 && pairs < pairsMax) {
    const outcomes = await racePair(blobs, pairs);
    pairs += 1;
    assert.equal(outcomes.filter((outcome) => outcome === 'won').length, 1, `pair ${pairs}: exactly one conditional Put wins (${outcomes.join(', ')})`);
    refused += outcomes.filter((outcome) => outcome === 'refused').length;
    counted = await retries();
  }
  return { pairs, refused, retries: counted };
}
