// A real `kura serve` crashed in its own recovery, and given EIO (src/util/failpoints.ts; the write
// path's crashes: serve-failpoints.test.ts):
// - the restart's partition load seals its streams' tails and extends them (MetaStore commits,
//   stream manager records, extent seals and creations), each a failpoint armed with KURA_FAILPOINTS
//   from the start; after a crash on the write path the restarts die there one after the other, then
//   a clean restart checks the ledger.
// - eio at the journal's write: with one disk the writes get Azure's 500/503 and the process stops
//   (exit 1) naming the disk, the cause and the fix (src/stamp/disk-failure-watch.ts); with three the
//   failed disk is logged and the stamp keeps serving. Either way nothing half-written is visible
//   after a restart.
// Fault model: process crash (SIGKILL at the point), one injected EIO (the failpoint's, not a real
// disk's: a later write to the same file would succeed). Figures: restarts and their ms, writes
// acknowledged and checked, exit code and stderr line.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { FailpointName } from '../../src/util/failpoints.ts';
import { container } from '../helpers/blob-ledger.ts';
import { writeUntilFailure } from '../helpers/crash-ledger.ts';
import { cleanupServes, KuraServe, tempDisks } from '../helpers/kura-serve.ts';
import { caseTimeoutMs, crashAt, loadTimeoutMs, mixedSizes, restartAndCheck, summarise, writers } from '../helpers/serve-crash.ts';

after(cleanupServes);

/**
 * Hit by every restart's partition load (it seals each stream's tail and extends the stream: the
 * MetaStore records, the extent seals and creations an extent roll makes too; a roll of a 256 MiB
 * extent took 15-25 s of load at load average 13-16, too long for a test), in this order of trial.
 */
const recoveryFailpoints: readonly FailpointName[] = [
  'metastore.commit.before-fsync', 'metastore.commit.after-fsync', 'stream-manager.seal.after-record', 'extent-store.seal.before-trailer', 'stream-manager.extend.after-create', 'extent-store.create.before-rename',
];

describe('kura serve crashed again during its recovery', () => {
  it(`crashed at ${recoveryFailpoints.length} recovery failpoints in turn, then a clean restart: nothing acknowledged lost`, { timeout: caseTimeoutMs }, async (t) => {
    const crashed = await crashAt({ failpoint: 'partition.commit.after-log-append', skip: 20 });
    assert.equal(crashed.signal, 'SIGKILL');
    for (const failpoint of recoveryFailpoints) {
      const startedMs = Date.now();
      const restart = await KuraServe.startFailing({ disks: crashed.disks, env: { KURA_FAILPOINTS: `${failpoint}=crash` } });
      t.diagnostic(`restart with ${failpoint}=crash: ${restart.signal ?? `exit ${restart.code}`} after ${Date.now() - startedMs} ms`);
      assert.equal(restart.signal, 'SIGKILL', `the restart died at ${failpoint}: ${restart.stderr.slice(-2000)}`);
    }
    await restartAndCheck(t, 'after the recovery crashes', crashed);
  });
});

/** A write refused by a live server: Azure's 500 InternalError or 503 ServerBusy. */
const serverErrorAnswer = /^50[03] /;

describe('kura serve given EIO at a disk failpoint', () => {
  it('one disk, journal.batch.before-fsync=eio: the writes get 500/503, the process stops naming cause and fix, nothing half-written is visible', { timeout: caseTimeoutMs }, async (t) => {
    const disks = await tempDisks(1, 'eio');
    const serve = await KuraServe.start({ disks, env: { KURA_FAILPOINTS_AFTER_READY: 'journal.batch.before-fsync=eio*1+30' } });
    const box = container(serve, 'ledger');
    await box.create();
    const ledger = await writeUntilFailure(box, { writers, sizes: mixedSizes, stopWhen: () => false, timeoutMs: loadTimeoutMs });
    const failedAtMs = Date.now();
    const code = await serve.exitWithin(30_000);
    const reason = /^kura serve: stopping: every disk failed.*$/m.exec(serve.stderr)?.[0] ?? '';
    t.diagnostic(`eio: ${ledger.acknowledged.size} acknowledged; writers stopped by ${summarise(ledger.stops)}; exit ${code} ${Date.now() - failedAtMs} ms after; stderr: ${reason}`);
    assert.ok(ledger.stops.some((stop) => serverErrorAnswer.test(stop)), 'a write was answered 500 or 503');
    assert.equal(code, 1);
    assert.match(reason, /injected EIO.*To fix: check the disk/);
    await restartAndCheck(t, 'after eio', { disks, ledger, signal: null });
  });

  it('three disks, eio once on one journal: that disk fails, the process keeps serving, nothing half-written is visible', { timeout: caseTimeoutMs }, async (t) => {
    const disks = await tempDisks(3, 'eio3');
    const serve = await KuraServe.start({ disks, env: { KURA_FAILPOINTS_AFTER_READY: 'journal.batch.before-fsync=eio*1+30' } });
    const box = container(serve, 'ledger');
    await box.create();
    const failureLogged = (): boolean => serve.stderr.includes('disk failed: it takes no more writes');
    const before = await writeUntilFailure(box, { writers, sizes: mixedSizes, stopWhen: failureLogged, timeoutMs: loadTimeoutMs });
    assert.ok(failureLogged(), 'the failed disk is logged with its cause and advice');
    const after = await writeUntilFailure(box, { writers, sizes: mixedSizes, stopWhen: () => false, timeoutMs: 3_000, prefix: 'after' });
    t.diagnostic(`eio on 1 of 3 disks: ${before.acknowledged.size} acknowledged until the failure was logged (${before.stops.length} writes answered an error: ${summarise(before.stops)}), then ${after.acknowledged.size} in 3 s (${after.stops.length} errors)`);
    assert.ok(before.stops.every((stop) => serverErrorAnswer.test(stop)), 'a write that failed was answered 500 or 503');
    assert.equal(serve.child.exitCode, null, 'still serving');
    assert.ok(after.acknowledged.size > 0 && after.stops.length === 0, 'writes after the failure are acknowledged');
    t.diagnostic(`SIGTERM with the failed disk: exit ${await serve.stop()}`);
    const ledger = { acknowledged: new Map([...before.acknowledged, ...after.acknowledged]), inFlight: new Map([...before.inFlight, ...after.inFlight]), stops: [] };
    await restartAndCheck(t, 'after eio on 1 of 3', { disks, ledger, signal: null });
  });
});
