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
/** The idle wait the test lets the sweeper reach: 6 doublings of the interval (2.56 s), long enough
 * that a wake-up beats it at any load, short enough that the test stays a few seconds. */
const idleDelayTargetMs = 64 * intervalMs;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `done` every 5 ms until it holds or boundMs pass; the elapsed ms (the caller asserts on `done`). */
async function waitUntil(done: () => boolean, boundMs: number): Promise<number> {
  const startMs = Date.now();
  while (!done() && Date.now() - startMs < boundMs) await sleep(5);
  return Date.now() - startMs;
}

// Waits on the sweeper's own counters, not on fixed sleeps: at load 20 a tick can take longer than
// the 40 ms interval, so "ticks in 1.5 s" was a figure of the machine, not of the back-off.
test('an idle sweeper backs off (bounded), and a container deleted by this front end wakes it', { timeout: 60_000 }, async (t) => {
  const doomed = stamp.client.getContainerClient('doomed');
  await doomed.create();
  const sweeper = stamp.backend.sweeper;
  sweeper.start(intervalMs);
  const idleMs = await waitUntil(() => sweeper.nextDelayMs >= idleDelayTargetMs, 20_000);
  const idleTicks = sweeper.totals.ticks;
  const idleDelayMs = sweeper.nextDelayMs;
  assert.ok(idleDelayMs >= idleDelayTargetMs && idleDelayMs <= containerSweepIdleIntervalMaxMs, `next wait ${idleDelayMs} ms after ${idleMs} ms idle`);
  assert.ok(idleTicks >= 6 && idleTicks <= 8, `${idleTicks} idle ticks to double ${intervalMs} ms to ${idleDelayMs} ms (each idle tick doubles the wait)`);

  await doomed.delete();
  const delayAfterDelete = sweeper.nextDelayMs;
  const wokenAfterMs = await waitUntil(() => sweeper.totals.ticks > idleTicks, 10_000);
  const graveyardTicksMs = await waitUntil(() => sweeper.totals.ticks >= idleTicks + 4, 10_000);
  t.diagnostic(`idle ${idleMs} ms: ${idleTicks} ticks, next wait ${idleDelayMs} ms; Delete Container: next wait ${delayAfterDelete} ms, a tick ${wokenAfterMs} ms after the delete returned, 3 more in ${graveyardTicksMs} ms (next wait ${sweeper.nextDelayMs} ms), graveyard finished ${sweeper.totals.incarnationsFinished} (grace 60 s: kept)`);
  assert.equal(delayAfterDelete, intervalMs, 'woken: back to the interval');
  assert.ok(wokenAfterMs < idleDelayMs, `a tick ${wokenAfterMs} ms after the delete, sooner than the idle wait (${idleDelayMs} ms)`);
  assert.ok(sweeper.totals.ticks >= idleTicks + 4, 'while a graveyard waits, the sweeper keeps ticking');
  assert.equal(sweeper.nextDelayMs, intervalMs, 'while a graveyard waits, the wait stays the interval (no back-off)');
});
