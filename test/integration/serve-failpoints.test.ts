// Crash tests of a real `kura serve` at its failpoints (src/util/failpoints.ts; docs/simulation.md,
// "Failpoints and canaries"). The simulator crashes its simulated roles there; these tests crash the
// real process, on a real disk, driven by the official SDK: for each failpoint on the
// acknowledged-write path, `kura serve` starts with KURA_FAILPOINTS_AFTER_READY=<point>=crash+SKIP
// (armed once it serves, so SKIP counts the load's hits, not the start-up's), six writers upload
// unique blobs (inline Put Blob, journaled and direct appends, Put Block + Put Block List) until the
// process kills itself there (exit by SIGKILL, which nothing else sends it); a restart without the
// failpoint must then serve every acknowledged blob byte-exact, each write in flight wholly or not at
// all, and a listing that agrees with Get Blob. Its own recovery and EIO: serve-recovery-failpoints.test.ts.
// Fault model: process crash (SIGKILL at the point: no shutdown code runs; the page cache survives,
// as after kill -9; power loss is the simulator's). Figures: writes acknowledged, checked, in flight
// (whole / absent / torn), restart ms.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { cleanupServes } from '../helpers/kura-serve.ts';
import { caseTimeoutMs, crashAt, restartAndCheck, summarise, type CrashCase } from '../helpers/serve-crash.ts';

after(cleanupServes);

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
