// The background sweep's pace on a real in-process stamp (the SDK over the real front end): idle
// ticks (no graveyard, no sweep intent) double the wait up to containerSweepIdleIntervalMaxMs, and
// a Delete Container through this front end wakes the sweeper at once, back to its interval, and
// its next ticks find the graveyard. The interval is 40 ms here (2 s in service) so a bounded run
// shows the doubling. Figures: ticks and waits while idle, the wait from the delete to the next tick.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { containerSweepIdleIntervalMaxMs } from '../../../../src/constants.ts';
import { BlobStamp } from './blob-stamp.ts';

let stamp: BlobStamp;
before(async () => { stamp = await BlobStamp.start(); });
after(async () => {
  await stamp.backend.sweeper.stop();
  await stamp.stop();
});

const intervalMs = 40;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

test('an idle sweeper backs off (bounded), and a container deleted by this front end wakes it', { timeout: 60_000 }, async (t) => {
  const doomed = stamp.client.getContainerClient('doomed');
  await doomed.create();
  const sweeper = stamp.backend.sweeper;
  sweeper.start(intervalMs);
  await sleep(1_500);
  const idleTicks = sweeper.totals.ticks;
  const idleDelayMs = sweeper.nextDelayMs;
  assert.ok(idleTicks >= 3 && idleTicks <= 8, `${idleTicks} ticks in 1.5 s (at a fixed ${intervalMs} ms: ~37)`);
  assert.ok(idleDelayMs >= 8 * intervalMs && idleDelayMs <= containerSweepIdleIntervalMaxMs, `next wait ${idleDelayMs} ms`);

  const deletedAtMs = Date.now();
  await doomed.delete();
  const delayAfterDelete = sweeper.nextDelayMs;
  while (sweeper.totals.ticks === idleTicks && Date.now() - deletedAtMs < 10_000) await sleep(5);
  const wokenAfterMs = Date.now() - deletedAtMs;
  await sleep(4 * intervalMs);
  t.diagnostic(`idle 1.5 s: ${idleTicks} ticks (a fixed ${intervalMs} ms interval: ~37), next wait ${idleDelayMs} ms; Delete Container: next wait ${delayAfterDelete} ms, a tick ${wokenAfterMs} ms after the delete was sent, ${sweeper.totals.ticks} ticks by then + ${4 * intervalMs} ms, graveyard finished ${sweeper.totals.incarnationsFinished} (grace 60 s: kept)`);
  assert.equal(delayAfterDelete, intervalMs, 'woken: back to the interval');
  assert.ok(wokenAfterMs < idleDelayMs, `a tick ${wokenAfterMs} ms after the delete, sooner than the idle wait (${idleDelayMs} ms)`);
  assert.ok(sweeper.totals.ticks >= idleTicks + 3, 'while a graveyard waits, the sweeper ticks at its interval');
});
