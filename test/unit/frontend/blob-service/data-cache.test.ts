// The front end's data cache (src/frontend/blob-service/data-cache.ts), through the official SDK on
// a real in-process stamp: a hot small blob is answered after one partition call (its rows), the
// bytes served are always those of the ref the row read in this request names (an overwritten
// blob serves its new bytes, a deleted one 404, a range its slice), an entry goes back to the
// extent store after frontendDataCacheEntryMsMax, and a body changed in memory after it was lent
// is found by the sampled re-check and read again.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { extentReadCacheRecheckHits, frontendDataCacheEntryMsMax } from '../../../../src/constants.ts';
import { DataCache } from '../../../../src/frontend/blob-service/data-cache.ts';
import { BlobStamp, expectError } from './blob-stamp.ts';

let stamp: BlobStamp;
before(async () => { stamp = await BlobStamp.start(); });
after(async () => { await stamp.stop(); });

const blobBytes = 64 * 1024;

async function bytesOf(download: Promise<{ readableStreamBody?: NodeJS.ReadableStream }>): Promise<Buffer> {
  const body = (await download).readableStreamBody;
  assert.ok(body !== undefined);
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** The bytes `call` answered and the partition calls the front end made meanwhile. */
async function withCalls(call: () => Promise<Buffer>): Promise<{ bytes: Buffer; calls: number }> {
  const before = stamp.tables.stats().requests;
  const bytes = await call();
  return { bytes, calls: stamp.tables.stats().requests - before };
}

function filled(seed: number): Buffer {
  return Buffer.from(Array.from({ length: blobBytes }, (_, i) => (i * 31 + seed) & 0xff));
}

test('Get Blob of a hot 64 KiB blob: one partition call once cached; always the bytes of the ref the row names now', async (t) => {
  const container = stamp.client.getContainerClient('cached');
  await container.create();
  const blob = container.getBlockBlobClient('hot');
  const first = filled(1);
  await blob.upload(first, first.length);
  const cold = await withCalls(() => bytesOf(blob.download()));
  assert.deepEqual(cold.bytes, first);
  assert.equal(cold.calls, 2, 'first Get: the rows, then the data (the body is in the data stream, not inline)');
  const hot = await withCalls(() => bytesOf(blob.download()));
  assert.deepEqual(hot.bytes, first);
  assert.equal(hot.calls, 1, 'a hot blob: its rows only');
  const range = await withCalls(() => bytesOf(blob.download(1000, 5000)));
  assert.deepEqual(range.bytes, first.subarray(1000, 6000));
  assert.equal(range.calls, 1, 'a range of a cached ref: its slice');

  // Overwritten: the row now names a new ref, whose bytes are read, never the old ones.
  const second = filled(2);
  await blob.upload(second, second.length);
  const overwritten = await withCalls(() => bytesOf(blob.download()));
  assert.deepEqual(overwritten.bytes, second);
  assert.equal(overwritten.calls, 2);
  assert.deepEqual(await bytesOf(blob.download()), second);

  // Deleted: the row is gone, so the cached bytes of its ref are never reached.
  await blob.delete();
  await expectError(() => blob.download(), 404, 'BlobNotFound');

  // An entry goes back to the extent store after frontendDataCacheEntryMsMax.
  const aged = container.getBlockBlobClient('aged');
  await aged.upload(first, first.length);
  await bytesOf(aged.download());
  stamp.backendClock.offsetMs += frontendDataCacheEntryMsMax;
  const expired = await withCalls(() => bytesOf(aged.download()));
  assert.deepEqual(expired.bytes, first);
  assert.equal(expired.calls, 2, 'an expired entry is read again');
  const stats = stamp.backend.dataCache?.stats();
  assert.ok(stats !== undefined && stats.hits >= 3 && stats.rechecksFailed === 0);
  t.diagnostic(`partition calls per Get: cold ${cold.calls}, hot ${hot.calls}, range ${range.calls}, overwritten ${overwritten.calls}, expired ${expired.calls}; cache ${JSON.stringify(stats)}`);
});

test('a cached body changed after it was lent is found within extentReadCacheRecheckHits hits and read again', async (t) => {
  const key = Buffer.from('Bdevstoreaccount1\u0000direct\u0000x');
  const bytes = filled(3);
  const ref = await stamp.tables.appendData(key, bytes);
  const cache = new DataCache({ bytesMax: 1024 * 1024, pieceBytesMax: blobBytes, entryMsMax: frontendDataCacheEntryMsMax, clock: stamp.backendClock });
  const lent = await cache.read(stamp.tables, key, ref);
  assert.deepEqual(await cache.read(stamp.tables, key, ref), bytes, 'the first hit re-checks and serves');
  lent[7] = (lent[7] ?? 0) ^ 0x10; // a holder breaking the read-only rule
  let reads = 0;
  let last = lent;
  while (cache.stats().rechecksFailed === 0) {
    assert.ok(reads < extentReadCacheRecheckHits, 'found within one re-check interval');
    last = await cache.read(stamp.tables, key, ref);
    reads += 1;
  }
  assert.equal(reads, extentReadCacheRecheckHits);
  assert.deepEqual(last, bytes, 'the read that found it answered the stored bytes');
  assert.notEqual(last.buffer, lent.buffer);
  assert.equal(cache.holds({ ...ref, length: blobBytes + 1 }), false, 'larger pieces are not cached');
  t.diagnostic(`changed body found on read ${reads} after the change; cache ${JSON.stringify(cache.stats())}`);
});
