// A sweep scan cursor the partition refuses (partition.bad_continuation) on a real in-process stamp.
// No path is known to produce one, but a token of another version or a damaged one was kept as the
// cursor, so every later tick failed on it and the sweeper never ran again (before: ticks 2, 3 and
// 5 of 5 threw, the intent stayed). The tables here hand the sweeper a damaged continuation on the
// last empty page of a tick's walk over `S` (a token the real partition refuses the next tick); the
// walk drops it, the pass starts over, the intent is resolved, the drops are counted (the metrics'
// counts) and logged once.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { BlobTables } from '../../../../src/frontend/blob-service/blob-tables.ts';
import { blobScanRowsPerCall, containerSweepRowsPerTick } from '../../../../src/constants.ts';
import { ContainerSweeper } from '../../../../src/frontend/blob-service/container-sweep.ts';
import { blobKey, blobPrefix, containerKey, sweepIntentKey, sweepIntentPrefix } from '../../../../src/frontend/blob-service/keys.ts';
import { decodeContainer } from '../../../../src/frontend/blob-service/records.ts';
import { BlobStamp } from './blob-stamp.ts';

let stamp: BlobStamp;
before(async () => { stamp = await BlobStamp.start(); });
after(async () => { await stamp.stop(); });

/** The stamp's tables, except that the next `pages` scans of the intent rows answer, without asking
 * the partition, an empty page whose continuation is a token with one byte flipped (its check fails
 * at the partition): a whole tick's pages, so the walk keeps it as its cursor for the next tick. */
function tablesFeedingBadCursors(): { tables: BlobTables; feed(pages: number): void } {
  let faked = 0;
  const tables: BlobTables = Object.create(stamp.tables) as BlobTables;
  tables.scan = async (options) => {
    const intents = options.prefix !== undefined && options.prefix.equals(sweepIntentPrefix);
    if (!intents || faked === 0) return stamp.tables.scan(options);
    faked -= 1;
    const token = Buffer.from((await stamp.tables.scan({ prefix: Buffer.from('B'), limit: 1 })).continuation ?? 'AQAAAAAAUw', 'base64url');
    token[token.length - 1] = (token.at(-1) ?? 0) ^ 0xff;
    return { items: [], continuation: token.toString('base64url') };
  };
  return { tables, feed: (pages) => { faked += pages; } };
}

/** A blob and an intent on it whose fence no longer holds its ETag (its commit applied: a sweep resolves it). */
async function intentOnBlob(name: string): Promise<Buffer> {
  const container = stamp.client.getContainerClient('cursor');
  await container.createIfNotExists();
  await container.getBlockBlobClient(name).upload('x', 1);
  const row = await stamp.tables.get(containerKey('devstoreaccount1', 'cursor'));
  assert.ok(row !== null);
  const blob = blobKey(blobPrefix('devstoreaccount1', 'cursor', decodeContainer(row).inc), name);
  const key = sweepIntentKey(blob, '00112233445566ff');
  await stamp.tables.transact([{ kind: 'put', key, columns: [
    { name: 'fence', value: { kind: 'bytes', value: blob } }, { name: 'fenceEtag', value: { kind: 'string', value: '0x1' } }, { name: 'since', value: { kind: 'int64', value: 0n } },
  ] }]);
  return key;
}

test('a scan cursor the partition refuses is dropped: the pass starts over, the intent is resolved, counted and logged once', { timeout: 60_000 }, async (t) => {
  const intent = await intentOnBlob('fenced');
  const feeder = tablesFeedingBadCursors();
  const warnings: unknown[] = [];
  const sweeper = new ContainerSweeper({ tables: feeder.tables, clock: stamp.backendClock, stats: { raceRetries: 0, raceExhausted: 0 } }, { graceMs: 0, logger: { warn: (...args: unknown[]) => { warnings.push(args); } } });
  const resolvedByTick: number[] = [];
  for (let tick = 0; tick < 5; tick++) {
    if (tick === 0 || tick === 3) feeder.feed(containerSweepRowsPerTick / blobScanRowsPerCall);
    resolvedByTick.push((await sweeper.tick()).intents.resolved);
  }
  const counts = sweeper.counts();
  t.diagnostic(`a bad cursor kept by ticks 1 and 4 of 5: intents resolved per tick ${resolvedByTick.join(',')}, tick failures ${counts.tickFailures}, cursors dropped ${counts.cursorsDropped}, warnings logged ${warnings.length}, intent row left: ${await stamp.tables.get(intent) !== null}`);
  assert.equal(counts.cursorsDropped, 2);
  assert.equal(warnings.length, 1, 'logged once');
  assert.equal(resolvedByTick.reduce((sum, count) => sum + count, 0), 1);
  assert.equal(await stamp.tables.get(intent), null);
});
