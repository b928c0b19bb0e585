// Deleted containers are swept in the background (container-sweep.ts, docs/blob-schema.md
// "Deleted containers"), through the official SDK on a real in-process stamp with three replicas:
// a container with 16 MiB of blobs, tagged blobs, snapshots, an append blob and 1,280 uncommitted
// blocks is deleted (and re-created under the same name with a new blob); sweep ticks delete at
// most containerSweepRowsPerTick rows each until the graveyard row goes; then checkpoint +
// compaction + data GC passes. Checks: disk use drops by most of the deleted bytes, the other
// container and the re-created one read back byte-exact, no row or index row of the old
// incarnation is left. Figures: rows per tick, ticks, disk before/after.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { containerSweepClaimMs, containerSweepRowsPerTick } from '../../../../src/constants.ts';
import { ContainerSweeper } from '../../../../src/frontend/blob-service/container-sweep.ts';
import { BlobStamp } from './blob-stamp.ts';

const MiB = 1024 * 1024;

let stamp: BlobStamp;
before(async () => {
  stamp = await BlobStamp.start({ partitionLimits: { dataGcGraceMs: 0, dataGcTailSealBytes: 4 * MiB, dataGcIntervalMs: 3_600_000 } });
});
after(async () => { await stamp.stop(); });

async function diskBytes(): Promise<number> {
  let total = 0;
  for (const entry of await readdir(stamp.root, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    if (path.includes(join(stamp.root, 'd0', 'meta'))) continue;
    total += (await stat(path)).size;
  }
  return total;
}

function rowsUnder(prefix: string): Promise<number> {
  return stamp.rowCount(prefix);
}

test('a deleted container\'s rows are swept in bounded ticks and its bytes collected: disk use drops', { timeout: 300_000 }, async (t) => {
  const doomed = stamp.client.getContainerClient('doomed');
  const kept = stamp.client.getContainerClient('kept');
  await doomed.create();
  await kept.create();
  const keptBytes = randomBytes(MiB);
  await kept.getBlockBlobClient('stays').upload(keptBytes, keptBytes.length, { tags: { team: 'kura' } });
  let written = 0;
  for (let i = 0; i < 8; i++) {
    const body = randomBytes(2 * MiB);
    const blob = doomed.getBlockBlobClient(`big-${i}`);
    await blob.upload(body, body.length, { tags: { team: 'kura', n: String(i) } });
    if (i % 2 === 0) await blob.createSnapshot();
    written += body.length;
  }
  const append = doomed.getAppendBlobClient('log');
  await append.create();
  for (let i = 0; i < 20; i++) await append.appendBlock(Buffer.alloc(4096, i), 4096);
  for (let b = 0; b < 40; b++) {
    const blob = doomed.getBlockBlobClient(`staged-${b}`);
    await Promise.all(Array.from({ length: 32 }, (_, i) => blob.stageBlock(Buffer.from(`blk-${String(i).padStart(4, '0')}`).toString('base64'), Buffer.alloc(512, i), 512)));
  }
  const doomedIncRows = await rowsUnder('Bdevstoreaccount1\0doomed\0');
  await stamp.collect();
  const before = await diskBytes();
  await doomed.delete();
  const reborn = stamp.client.getContainerClient('doomed');
  await reborn.create();
  const rebornBytes = randomBytes(64 * 1024);
  await reborn.getBlockBlobClient('big-0').upload(rebornBytes, rebornBytes.length, { tags: { team: 'kura' } });

  const sweeper = new ContainerSweeper({ tables: stamp.tables, clock: stamp.backendClock, stats: { raceRetries: 0, raceExhausted: 0 } }, { graceMs: 0 });
  const ticks = [];
  for (let tick = 0; tick < 50; tick++) {
    const report = await sweeper.tick();
    ticks.push(report);
    assert.ok(report.rowsDeleted <= containerSweepRowsPerTick, `tick deleted ${report.rowsDeleted} rows`);
    if (report.incarnationsFinished > 0) break;
  }
  assert.equal(ticks.at(-1)?.incarnationsFinished, 1, 'the graveyard was finished within 50 ticks');
  assert.ok(ticks.length >= 3, 'more rows than one tick may delete');
  const passes = [];
  for (let pass = 0; pass < 3; pass++) passes.push(await stamp.collect());
  const afterGc = await diskBytes();
  // Nothing of the old incarnation is left; the live containers are intact.
  const liveInc = await rowsUnder('Bdevstoreaccount1\0doomed\0');
  assert.equal(liveInc, 1, 'only the re-created container\'s blob row is under doomed/');
  assert.equal(await rowsUnder('Cdevstoreaccount1\0doomed\0'), 0, 'graveyard row deleted');
  const found = [];
  for await (const item of stamp.client.findBlobsByTags('"team" = \'kura\'')) found.push(`${item.containerName}/${item.name}`);
  assert.deepEqual(found.sort(), ['doomed/big-0', 'kept/stays']);
  assert.equal(await rowsUnder('Tdevstoreaccount1\0'), 2, 'index rows of the swept incarnation are gone');
  assert.ok((await kept.getBlockBlobClient('stays').downloadToBuffer()).equals(keptBytes));
  assert.ok((await reborn.getBlockBlobClient('big-0').downloadToBuffer()).equals(rebornBytes));
  const dropped = before - afterGc;
  t.diagnostic(`deleted container: ${(written / MiB).toFixed(0)} MiB in blobs + snapshots, append segments, 1,280 uncommitted blocks = ${doomedIncRows} rows; swept in ${ticks.length} ticks (rows per tick ${ticks.map((tick) => tick.rowsDeleted).join(', ')}; ${ticks.reduce((sum, tick) => sum + tick.indexRowsDeleted, 0)} index rows)`);
  t.diagnostic(`disk (3 replicas): ${(before / MiB).toFixed(1)} -> ${(afterGc / MiB).toFixed(1)} MiB (dropped ${(dropped / MiB).toFixed(1)} MiB = ${(dropped / (written * 3)).toFixed(2)} x the deleted bytes x 3); GC passes ${JSON.stringify(passes)}`);
  assert.ok(dropped >= written * 3 * 0.7, `disk dropped ${dropped} bytes of ${written * 3}`);
});

/** Sweeps by several front ends' sweepers at once until the graveyard is gone (bounded). */
async function sweepTogether(sweepers: readonly ContainerSweeper[], graveyardPrefix: string): Promise<number> {
  for (let round = 0; round < 60; round++) {
    await Promise.all(sweepers.map((sweeper) => sweeper.tick()));
    if (await rowsUnder(graveyardPrefix) === 0) return round + 1;
  }
  throw new Error('the graveyard was not finished within 60 rounds');
}

async function fillContainer(name: string, blobs: number): Promise<number> {
  const container = stamp.client.getContainerClient(name);
  await container.create();
  for (let at = 0; at < blobs; at += 16) {
    await Promise.all(Array.from({ length: Math.min(16, blobs - at) }, (_, k) => container.getBlockBlobClient(`b-${at + k}`).upload('x', 1, { tags: { sweep: name } })));
  }
  const rows = await rowsUnder(`Bdevstoreaccount1\0${name}\0`);
  await container.delete();
  return rows;
}

test('several front ends sweep at once: claims split the graveyards, sweeping is idempotent, nothing live is touched', { timeout: 300_000 }, async (t) => {
  const ctx = { tables: stamp.tables, clock: stamp.backendClock, stats: { raceRetries: 0, raceExhausted: 0 } };
  const live = stamp.client.getContainerClient('live');
  await live.create();
  await live.getBlockBlobClient('keep').upload('live bytes', 10, { tags: { sweep: 'live' } });
  // Three front ends, each with its own sweeper (as three `kura frontend` processes), three deleted containers.
  const rows = [await fillContainer('gone-a', 300), await fillContainer('gone-b', 300), await fillContainer('gone-c', 300)];
  const sweepers = ['fe1', 'fe2', 'fe3'].map((sweeperId) => new ContainerSweeper(ctx, { sweeperId, graceMs: 0 }));
  const rounds = await sweepTogether(sweepers, 'Cdevstoreaccount1\0gone-');
  for (const name of ['gone-a', 'gone-b', 'gone-c']) assert.equal(await rowsUnder(`Bdevstoreaccount1\0${name}\0`), 0, `${name} swept`);
  const totals = sweepers.map((sweeper) => sweeper.totals);
  const deleted = totals.reduce((sum, total) => sum + total.rowsDeleted, 0);
  assert.equal(totals.reduce((sum, total) => sum + total.failures, 0), 0, 'no tick failed');
  assert.equal(totals.reduce((sum, total) => sum + total.incarnationsFinished, 0), 3, 'each graveyard finished once');
  assert.ok(totals.filter((total) => total.rowsDeleted > 0).length >= 2, 'the work was shared');

  // Idempotent without claims: three sweepers with one id work the same graveyard at the same time.
  const rowsD = await fillContainer('gone-d', 300);
  const twins = [1, 2, 3].map(() => new ContainerSweeper(ctx, { sweeperId: 'twin', graceMs: 0 }));
  const twinRounds = await sweepTogether(twins, 'Cdevstoreaccount1\0gone-d\0');
  assert.equal(await rowsUnder('Bdevstoreaccount1\0gone-d\0'), 0);
  assert.equal(twins.reduce((sum, sweeper) => sum + sweeper.totals.failures, 0), 0, 'concurrent deletes of the same rows never fail');

  // A sweeper that stops holding a claim is replaced once the claim expires.
  await fillContainer('gone-e', 100);
  const first = new ContainerSweeper(ctx, { sweeperId: 'dies', graceMs: 0 });
  const second = new ContainerSweeper(ctx, { sweeperId: 'survives', graceMs: 0 });
  await first.tick();
  const blocked = await second.tick();
  assert.equal(blocked.rowsDeleted, 0, 'a live claim is respected');
  assert.ok(blocked.skipped >= 1);
  stamp.backendClock.offsetMs = containerSweepClaimMs + 1_000;
  try {
    await sweepTogether([second], 'Cdevstoreaccount1\0gone-e\0');
  } finally {
    stamp.backendClock.offsetMs = 0;
  }
  assert.equal(await rowsUnder('Bdevstoreaccount1\0gone-e\0'), 0, 'the survivor finished the dead sweeper\'s graveyard');
  assert.equal((await live.getBlockBlobClient('keep').downloadToBuffer()).toString(), 'live bytes');
  const found = [];
  for await (const item of stamp.client.findBlobsByTags('"sweep" >= \'a\'')) found.push(`${item.containerName}/${item.name}`);
  assert.deepEqual(found, ['live/keep'], 'only the live blob is found by tag');
  t.diagnostic(`3 sweepers, 3 graveyards (${rows.join(', ')} rows): done in ${rounds} rounds, rows deleted ${totals.map((total) => total.rowsDeleted).join(' / ')} (sum ${deleted} of ${rows.reduce((a, b) => a + b, 0)}; duplicates are no-ops), claims lost ${totals.map((total) => total.racesLost).join(' / ')}, 0 failures`);
  t.diagnostic(`3 sweepers sharing one id on one graveyard (${rowsD} rows): ${twinRounds} rounds, 0 failures; an expired claim (${containerSweepClaimMs} ms) is taken over`);
});
