// ResumableScan (a background sweeper's walk over the sweep intents or the container rows) on a
// real stamp whose manager splits small partitions: when the partition holding the prefix's start
// has no row of it (its rows were deleted after a split inside the prefix), its page is empty but
// names the next partition. The walk used to end its pass there, so the sweeper never saw the
// intents past the split (simulator seed 650477659196 with a slower sweeper: two intents left,
// 139 + 1 dead rows). Now it follows the continuation and reaches them.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ResumableScan } from '../../../../src/frontend/blob-service/resumable-scan.ts';
import { keyFromHex, readMap } from '../../../../src/partition/partition-map.ts';
import { BlobStamp } from './blob-stamp.ts';

let stamp: BlobStamp;
let written = 0;
before(async () => {
  stamp = await BlobStamp.start({ splitBytes: 24 * 1024 });
  await writeUntilSplit();
});
after(async () => { await stamp.stop(); });

const prefix = Buffer.from('S');
const rowKey = (index: number): Buffer => Buffer.from(`Sintent${String(index).padStart(4, '0')}\0id`, 'latin1');

/** Rows under the prefix until the manager has split inside it (bounded: 256 rows, 120 s). */
async function writeUntilSplit(): Promise<void> {
  const padding = [{ name: 'pad', value: { kind: 'bytes' as const, value: Buffer.alloc(2048, 7) } }];
  while (written < 32 || (stamp.manager.stats().splits < 2 && written < 256)) {
    await stamp.tables.transact([{ kind: 'put', key: rowKey(written), columns: padding }]);
    written += 1;
  }
  for (let waited = 0; stamp.manager.stats().splits < 2 && waited < 120_000; waited += 100) await new Promise((resolve) => setTimeout(resolve, 100));
}

/** The low keys of the partitions that start inside the prefix, in key order. */
async function lowsInsidePrefix(): Promise<Buffer[]> {
  return ((await readMap(stamp.metaStore))?.map.partitions ?? []).map((entry) => keyFromHex(entry.low)).filter((low) => Buffer.compare(low, prefix) > 0).sort((left, right) => Buffer.compare(left, right));
}

/** One full pass of a fresh walk (at most 10 calls of rowsMax rows): the keys it returned. */
async function walkOnePass(rowsMax: number): Promise<string[]> {
  const walk = new ResumableScan(prefix);
  const seen: string[] = [];
  for (let calls = 0; calls < 10 && (calls === 0 || !walk.passEnded); calls++) seen.push(...(await walk.next(stamp.tables, rowsMax)).map((row) => row.key.toString('latin1')));
  return seen;
}

// The seeds of simsync10 (804389877359, 164151678449, 688369497098): a page ending at a partition's
// high key, resumed after its last row, lands in the same partition again and comes back empty
// with a continuation; the walk ended its pass there, short of every row past the split.
test('a walk over a prefix split across partitions reaches the rows past a page that ended at a partition boundary', { timeout: 180_000 }, async (t) => {
  const lows = await lowsInsidePrefix();
  assert.ok(lows.length > 0, 'a split inside the prefix');
  const seen = await walkOnePass(256);
  t.diagnostic(`${written} rows, ${lows.length} partition(s) starting inside the prefix, none deleted: the walk's pass saw ${seen.length}`);
  assert.deepEqual(seen, Array.from({ length: written }, (_, index) => rowKey(index).toString('latin1')));
});

test('a walk over a prefix split across partitions reaches the rows past a partition left without any', { timeout: 180_000 }, async (t) => {
  const lows = await lowsInsidePrefix();
  const boundary = lows[0];
  assert.ok(boundary !== undefined, 'a split inside the prefix');
  const survivors: string[] = [];
  for (let index = 0; index < written; index++) {
    const key = rowKey(index);
    if (Buffer.compare(key, boundary) < 0) await stamp.tables.transact([{ kind: 'delete', key }]);
    else survivors.push(key.toString('latin1'));
  }
  const seen = await walkOnePass(256);
  t.diagnostic(`${written} rows, ${lows.length} partition(s) starting inside the prefix, the rows below the first (${JSON.stringify(boundary.toString('latin1'))}) deleted: ${survivors.length} left, the walk's pass saw ${seen.length}`);
  assert.deepEqual(seen, survivors);
});
