// The container fence (container-fence.ts, docs/blob-schema.md "Deleted containers"), with real
// ordering on a real in-process stamp through the official SDK: a write that loaded its container
// is paused at a failpoint (a host whose sleep waits for the test), the container is deleted and
// a sweeper ticks until it would drop the graveyard row (the sweeper's grace is passed by moving the
// backend's monotonic clock), then the write resumes. Without the fence the write's row lands
// under the dead incarnation with no graveyard row left: an orphan nothing ever deletes. With it:
// a write paused before its re-check answers 404 ContainerNotFound and leaves nothing; a write
// paused after it (its commit later than containerFenceCommitMs) commits, puts the graveyard row
// back, and the sweep then removes its rows and finishes.
import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';
import { RestError } from '@azure/storage-blob';
import { containerSweepGraceMs } from '../../../../src/constants.ts';
import { ContainerSweeper, type SweepTick } from '../../../../src/frontend/blob-service/container-sweep.ts';
import { containerKey } from '../../../../src/frontend/blob-service/keys.ts';
import { decodeContainer } from '../../../../src/frontend/blob-service/records.ts';
import {
  disarmFailpoints, enableFailpoint, failpointFirings, setFailpointHost, type FailpointHost, type FailpointName,
} from '../../../../src/util/failpoints.ts';
import { until } from '../../../helpers/role-process.ts';
import { BlobStamp } from './blob-stamp.ts';

let stamp: BlobStamp;
let previousHost: FailpointHost | null = null;
before(async () => { stamp = await BlobStamp.start(); });
after(async () => { await stamp.stop(); });
afterEach(() => {
  disarmFailpoints();
  if (previousHost !== null) setFailpointHost(previousHost);
  previousHost = null;
  stamp.backendClock.offsetMs = 0;
});

/** Arms `name` once; the write that reaches it waits until release() (no timed sleep). */
function pauseAt(name: FailpointName): { reached: () => Promise<void>; release: () => void } {
  let release = (): void => undefined;
  const gate = new Promise<void>((resolve) => { release = resolve; });
  const firedBefore = failpointFirings().get(name) ?? 0;
  previousHost = setFailpointHost({ crash: () => new Promise<never>(() => undefined), sleep: () => gate });
  enableFailpoint(name, { action: { kind: 'sleep', ms: 1 }, count: 1 });
  return {
    reached: async () => { await until(`failpoint ${name} reached`, () => ((failpointFirings().get(name) ?? 0) > firedBefore ? true : null), 30_000, 20); },
    release,
  };
}

/** The dead incarnation's blob-row prefix and graveyard key of a container (read while it lives). */
async function incarnation(name: string): Promise<{ rows: string; graveyard: string }> {
  const row = await stamp.tables.get(containerKey('devstoreaccount1', name));
  assert.ok(row !== null);
  const inc = decodeContainer(row).inc;
  return { rows: `Bdevstoreaccount1\0${name}\0${inc}\0`, graveyard: `Cdevstoreaccount1\0${name}\0${inc}` };
}

function sweeper(): ContainerSweeper {
  return new ContainerSweeper({ tables: stamp.tables, clock: stamp.backendClock, stats: { raceRetries: 0, raceExhausted: 0 } });
}

/** Deletes the container and ticks a sweeper (default grace, passed by moving the clock) until the
 * graveyard row is gone: what a sweep does while the paused write has not committed. */
async function deleteAndSweep(name: string): Promise<SweepTick[]> {
  await stamp.client.getContainerClient(name).delete();
  const sweep = sweeper();
  const ticks = [await sweep.tick()];
  stamp.backendClock.offsetMs += containerSweepGraceMs + 1_000;
  ticks.push(await sweep.tick());
  return ticks;
}

async function outcome(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'ok';
  } catch (error) {
    return error instanceof RestError ? `${error.statusCode} ${error.code}` : String(error);
  }
}

test('Put Blob paused before its commit while the container is deleted and swept: 404 ContainerNotFound, no orphan row', { timeout: 120_000 }, async (t) => {
  const container = stamp.client.getContainerClient('fence-put');
  await container.create();
  const dead = await incarnation('fence-put');
  const pause = pauseAt('blob.commit.before-recheck');
  const body = Buffer.alloc(200 * 1024, 7); // above the inline limit: bytes to the data stream first
  const upload = outcome(container.getBlockBlobClient('late').upload(body, body.length));
  await pause.reached();
  const ticks = await deleteAndSweep('fence-put');
  pause.release();
  const answer = await upload;
  const orphans = await stamp.rowCount(dead.rows);
  const graveyards = await stamp.rowCount(dead.graveyard);
  t.diagnostic(`sweep ticks while paused: ${JSON.stringify(ticks.map((tick) => ({ inGrace: tick.inGrace, finished: tick.incarnationsFinished })))}; write answered ${answer}; rows under the dead incarnation ${orphans}, graveyard rows ${graveyards}`);
  assert.equal(orphans === 0 || graveyards > 0, true, `an orphan: ${orphans} rows under the dead incarnation and no graveyard row to sweep them`);
  assert.equal(ticks[0]?.inGrace, 1, 'the first tick keeps the empty graveyard (grace)');
  assert.equal(ticks[1]?.incarnationsFinished, 1, 'the sweep finishes once the grace is over');
  assert.equal(answer, '404 ContainerNotFound');
  assert.equal(orphans, 0);
});

test('Put Block paused after its re-check, committed after the sweep dropped the graveyard: the graveyard is put back and the sweep finishes', { timeout: 120_000 }, async (t) => {
  const container = stamp.client.getContainerClient('fence-block');
  await container.create();
  const dead = await incarnation('fence-block');
  const pause = pauseAt('blob.commit.before-transact');
  const blockId = Buffer.from('block-0001').toString('base64');
  const staged = outcome(container.getBlockBlobClient('late').stageBlock(blockId, Buffer.alloc(4096, 3), 4096));
  await pause.reached();
  const ticks = await deleteAndSweep('fence-block');
  assert.equal(await stamp.rowCount(dead.graveyard), 0, 'the sweep dropped the graveyard before the write committed');
  pause.release();
  const answer = await staged;
  const rowsLanded = await stamp.rowCount(dead.rows);
  const restored = await stamp.rowCount(dead.graveyard);
  assert.equal(rowsLanded === 0 || restored > 0, true, `an orphan: ${rowsLanded} rows under the dead incarnation and no graveyard row to sweep them`);
  // The restored graveyard is new to the sweeper: its grace starts over, then the rows go and it finishes.
  const sweep = sweeper();
  const later: SweepTick[] = [];
  for (let tick = 0; tick < 6 && (await stamp.rowCount(dead.graveyard)) > 0; tick++) {
    later.push(await sweep.tick());
    stamp.backendClock.offsetMs += containerSweepGraceMs + 1_000;
  }
  const left = await stamp.rowCount(dead.rows);
  t.diagnostic(`sweep ticks while paused: ${JSON.stringify(ticks.map((tick) => ({ inGrace: tick.inGrace, finished: tick.incarnationsFinished })))}; write answered ${answer}; ${rowsLanded} rows landed under the dead incarnation, graveyard rows after the write ${restored}; then ${later.length} ticks (rows deleted ${later.map((tick) => tick.rowsDeleted).join(', ')}): ${left} rows and ${await stamp.rowCount(dead.graveyard)} graveyard rows left`);
  assert.equal(answer, 'ok', 'the commit landed before the write saw the container gone');
  assert.equal(rowsLanded, 2, 'staging row + uncommitted block row');
  assert.equal(restored, 1);
  assert.equal(left, 0);
  assert.equal(await stamp.rowCount(dead.graveyard), 0, 'the sweep finished');
});
