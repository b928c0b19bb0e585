// Crash tests of a real `kura serve` at its failpoints (src/util/failpoints.ts; docs/simulation.md,
// "Failpoints and canaries"). The simulator crashes its simulated roles there; these tests crash the
// real process, on a real disk, driven by the official SDK:
// - for each failpoint on the acknowledged-write path, `kura serve` starts with
//   KURA_FAILPOINTS_AFTER_READY=<point>=crash+SKIP (armed once it serves, so SKIP counts the load's
//   hits, not the start-up's), six writers upload unique blobs (inline Put Blob, journaled and direct
//   appends, Put Block + Put Block List) until the process kills itself there (exit by SIGKILL, which
//   nothing else sends it); a restart without the failpoint must then serve every acknowledged blob
//   byte-exact, each write in flight wholly or not at all, and a listing that agrees with Get Blob.
// - the restart's own recovery is crashed too: the partition load seals its streams' tails and
//   extends them (stream manager records, extent seals and creations), each a failpoint armed with
//   KURA_FAILPOINTS from the start; the restarts die there one after the other, then a clean restart
//   checks the ledger.
// - eio at the journal's write: the writes in flight get Azure's 500/503, nothing half-written is
//   visible, and the process either keeps serving or exits saying why.
// Fault model: process crash (SIGKILL at the point: no shutdown code runs; the page cache survives,
// as after kill -9; power loss is the simulator's), one injected EIO. Figures: writes acknowledged,
// checked, in flight (whole / absent / torn), recovery ms.
import assert from 'node:assert/strict';
import { after, describe, it, type TestContext } from 'node:test';
import type { FailpointName } from '../../src/util/failpoints.ts';
import { container } from '../helpers/blob-ledger.ts';
import { checkLedger, writeUntilFailure, type CrashLedger } from '../helpers/crash-ledger.ts';
import { cleanupServes, KuraServe, tempDisks } from '../helpers/kura-serve.ts';

after(cleanupServes);

/** Each case's bound: start, load until the crash, restart, check. */
const caseTimeoutMs = 60_000;
const loadTimeoutMs = 20_000;
const writers = 6;
/** Inline Put Blob (≤ 16 KiB), journaled data append, direct append (≥ 256 KiB), Put Block ×4 + Put Block List. */
const mixedSizes = [2_000, 40_000, 300_000, 700_000];

interface CrashCase {
  readonly failpoint: FailpointName;
  /** Hits after ready that pass before it fires (so some writes are acknowledged first). */
  readonly skip: number;
  readonly disks?: number;
  /** What reaches the point: the mixed sizes, or 500 KB inline bodies that fill the memtable. */
  readonly sizes?: readonly number[];
  readonly extraArgs?: readonly string[];
}

const writePathCases: readonly CrashCase[] = [
  { failpoint: 'blob.commit.before-recheck', skip: 20 },
  { failpoint: 'blob.commit.before-transact', skip: 20 },
  { failpoint: 'partition.commit.after-log-append', skip: 20 },
  { failpoint: 'journal.batch.before-fsync', skip: 30 },
  { failpoint: 'journal.batch.after-fsync', skip: 30 },
  { failpoint: 'extent-store.group-commit.after-extent-write', skip: 30 },
  { failpoint: 'extent-store.append.before-fsync', skip: 5 },
  { failpoint: 'extent-store.append.after-fsync', skip: 5 },
  { failpoint: 'extent-node.append.before-ack', skip: 30 },
  { failpoint: 'extent-node.replicate.before-answer', skip: 30, disks: 3 },
  { failpoint: 'extent-store.sync.before-journal-retire', skip: 1 },
  // 500 KB bodies inline: ~134 Put Blobs fill the 64 MiB memtable, and its checkpoint starts.
  { failpoint: 'partition.checkpoint.before-manifest', skip: 0, sizes: [500_000], extraArgs: ['--inline-body-bytes', '524288'] },
];

/**
 * Hit by every restart's partition load (it seals each stream's tail and extends the stream: the
 * MetaStore records, the extent seals and creations an extent roll makes too; a roll of a 256 MiB
 * extent took 15-25 s of load at load average 13-16, too long for a test), in this order of trial.
 */
const recoveryFailpoints: readonly FailpointName[] = [
  'metastore.commit.before-fsync', 'metastore.commit.after-fsync', 'stream-manager.seal.after-record', 'extent-store.seal.before-trailer', 'stream-manager.extend.after-create', 'extent-store.create.before-rename',
];

interface Crashed {
  readonly disks: string[];
  readonly ledger: CrashLedger;
  readonly signal: NodeJS.Signals | null;
}

/** `kura serve` with the case's failpoint armed (crash) after ready, loaded until it dies (bounded). */
async function crashAt(crashCase: CrashCase): Promise<Crashed> {
  const spec = `${crashCase.failpoint}=crash+${crashCase.skip}`;
  const disks = await tempDisks(crashCase.disks ?? 1, 'failpoint');
  const extraArgs = crashCase.extraArgs ?? [];
  const serve = await KuraServe.start({ disks, extraArgs, env: { KURA_FAILPOINTS_AFTER_READY: spec } });
  const box = container(serve, 'ledger');
  await box.create();
  const ledger = await writeUntilFailure(box, { writers, sizes: crashCase.sizes ?? mixedSizes, stopWhen: () => serve.child.exitCode !== null || serve.child.signalCode !== null, timeoutMs: loadTimeoutMs });
  // Bounded: a process that did not die at the point is killed by cleanupServes and fails below.
  if (serve.child.exitCode === null && serve.child.signalCode === null) await serve.exitWithin(5_000).catch(() => null);
  return { disks, ledger, signal: serve.child.signalCode };
}

/** A clean restart on `disks`: ready time, then the ledger check (asserted) and a clean stop. */
async function restartAndCheck(t: TestContext, label: string, crashed: Crashed, extraArgs: readonly string[] = []): Promise<void> {
  const startedMs = Date.now();
  const serve = await KuraServe.start({ disks: crashed.disks, extraArgs });
  const readyMs = Date.now() - startedMs;
  const check = await checkLedger(container(serve, 'ledger'), crashed.ledger);
  const { acknowledged, inFlight, stops } = crashed.ledger;
  t.diagnostic(`${label}: ${acknowledged.size} acknowledged, ${check.lost.length} lost, ${check.corrupt.length} corrupt; ${inFlight.size} in flight: ${check.whole} whole, ${check.absent} absent, ${check.torn.length} torn; `
    + `listing ${check.listed} = Get ${acknowledged.size + check.whole - check.lost.length} (${check.listingMismatches.length} mismatches); restart ready in ${readyMs} ms (${serve.readyMs} ms inside); writers stopped by ${summarise(stops)}`);
  assert.deepEqual({ lost: check.lost, corrupt: check.corrupt, torn: check.torn, listing: check.listingMismatches }, { lost: [], corrupt: [], torn: [], listing: [] });
  assert.equal(await serve.stop(), 0);
}

/** "6× ECONNRESET" style counts of why the writers stopped. */
function summarise(stops: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const stop of stops) counts.set(stop, (counts.get(stop) ?? 0) + 1);
  return [...counts].map(([stop, count]) => `${count}× ${stop}`).join(', ');
}

describe('kura serve crashed at a failpoint on the acknowledged-write path', () => {
  for (const crashCase of writePathCases) {
    it(`${crashCase.failpoint}: dies there; after a restart every acknowledged write is there, none torn`, { timeout: caseTimeoutMs }, async (t) => {
      const crashed = await crashAt(crashCase);
      assert.equal(crashed.signal, 'SIGKILL', `kura serve died at ${crashCase.failpoint} (stopped by: ${summarise(crashed.ledger.stops)})`);
      assert.ok(crashed.ledger.acknowledged.size > 0 || crashCase.skip === 0, 'writes were acknowledged before the crash');
      await restartAndCheck(t, crashCase.failpoint, crashed, crashCase.extraArgs);
    });
  }
});

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
