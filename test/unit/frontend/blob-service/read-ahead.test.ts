// readRefs (data.ts) on a real in-process stamp: the bytes of any range over several refs, the
// next ref fetched while the consumer still holds the current one (read-ahead), and a consumer
// that stops early (client gone) leaves no failure behind.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import type { BlobTables } from '../../../../src/frontend/blob-service/blob-tables.ts';
import { readRefs } from '../../../../src/frontend/blob-service/data.ts';
import type { DataRef } from '../../../../src/wire/partition-row.ts';
import { BlobStamp } from './blob-stamp.ts';

let stamp: BlobStamp;
before(async () => { stamp = await BlobStamp.start(); });
after(async () => { await stamp.stop(); });

const key = Buffer.from('read-ahead-test-key');

async function collect(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** Resolves once `condition` holds, polling; fails after `ms` (generous: the machine is shared). */
async function until(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test('readRefs: every range over several refs, one ref read ahead, an early stop leaves nothing failing', async (t) => {
  const pieces = [70_000, 1, 65_536, 200_000, 12_345].map((size) => randomBytes(size));
  const refs: DataRef[] = [];
  for (const piece of pieces) refs.push(await stamp.tables.appendData(key, piece));
  const whole = Buffer.concat(pieces);

  assert.ok((await collect(readRefs(stamp.tables, key, refs, { start: 0, end: whole.length - 1 }))).equals(whole));
  const ranges = [[0, 0], [69_999, 70_001], [70_000, 70_000], [100, 300_000], [whole.length - 1, whole.length - 1], [135_537, whole.length - 1]] as const;
  for (const [start, end] of ranges) {
    const got = await collect(readRefs(stamp.tables, key, refs, { start, end }));
    assert.ok(got.equals(whole.subarray(start, end + 1)), `range [${start}, ${end}]`);
  }

  // Read-ahead: while the consumer holds the first piece (it has not asked for the next), the
  // next ref's read is already under way. The real tables, with their readData calls counted.
  let reads = 0;
  const counted: BlobTables = Object.assign(Object.create(stamp.tables) as BlobTables, {
    readData: (routeKey: Buffer, ref: DataRef) => { reads += 1; return stamp.tables.readData(routeKey, ref); },
  });
  const reader = readRefs(counted, key, refs, { start: 0, end: whole.length - 1 });
  const first = await reader.next();
  assert.equal(first.done, false);
  await until(() => reads === 2, 10_000, 'the next ref is read before the consumer asks for it');
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(reads, 2, 'one ref ahead, not more');
  t.diagnostic(`readData calls while the consumer held the first of ${refs.length} pieces: ${reads}`);
  // The consumer goes away with a read ahead in flight: the generator closes without throwing.
  await reader.return(undefined);

  // An aborted request (the client's signal) stops between pieces; nothing rejects unobserved.
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => { unhandled.push(reason); };
  process.on('unhandledRejection', onUnhandled);
  try {
    const controller = new AbortController();
    const aborted = readRefs(stamp.tables, key, refs, { start: 0, end: whole.length - 1 }, controller.signal);
    await aborted.next();
    controller.abort();
    await assert.rejects(aborted.next(), (error: unknown) => error instanceof Error && error.name === 'AbortError');
    await new Promise((resolve) => setTimeout(resolve, 200));
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
  assert.deepEqual(unhandled, []);
  // The stamp still serves the same bytes afterwards.
  assert.ok((await collect(readRefs(stamp.tables, key, refs, { start: 0, end: whole.length - 1 }))).equals(whole));
});
