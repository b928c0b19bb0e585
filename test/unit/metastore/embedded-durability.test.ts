// Durability of EmbeddedMetaStore on SimDisk: power loss (un-synced writes dropped or torn at
// sector granularity) at random moments, during group commits and compactions, torn and
// bit-flipped log tails, failed fsyncs, snapshot + log recovery.
//
// Oracle: every transaction writes two unique keys with one value. A transaction that resolved
// is acknowledged and must be readable, byte-exact, after every later crash and reopen; one that
// was in flight at the crash is indeterminate and must be all-or-nothing. Revisions never go
// back. Every run prints its root seed (KURA_SEED overrides it) and its figures.
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import type { Disk, DiskFile, OpenOptions } from '../../../src/io/disk.ts';
import { SimDisk } from '../../../src/io/sim-disk.ts';
import { EmbeddedMetaStore } from '../../../src/metastore/embedded-meta-store.ts';
import { encodeRecord, logRecordMagic, recordBodyBytesMax } from '../../../src/metastore/meta-log-codec.ts';
import { prefixEnd, type MetaStore } from '../../../src/metastore/meta-store.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { StorageError, isStorageError } from '../../../src/util/errors.ts';
import { SeededRandom, type Random } from '../../../src/util/random.ts';

const rootSeed = Number(process.env['KURA_SEED'] ?? 20_240_601);
const directory = 'meta';
const firstLog = `${directory}/log-0000000000000000`;

/** A Disk a crashed store can no longer touch: after fence() every call fails, as a dead
 * process would make none. Without it the old store's loop would act on the post-crash disk. */
class FencedDisk implements Disk {
  readonly name: string;
  private readonly inner: Disk;
  private fenced = false;

  constructor(inner: Disk) {
    this.inner = inner;
    this.name = inner.name;
  }

  fence(): void {
    this.fenced = true;
  }

  private check(): void {
    if (this.fenced) throw new StorageError('io.closed', 'process crashed');
  }

  async open(path: string, options: OpenOptions): Promise<DiskFile> {
    this.check();
    return this.inner.open(path, options);
  }
  async list(path: string): Promise<string[]> {
    this.check();
    return this.inner.list(path);
  }
  async makeDirectory(path: string): Promise<void> {
    this.check();
    return this.inner.makeDirectory(path);
  }
  async rename(from: string, to: string): Promise<void> {
    this.check();
    return this.inner.rename(from, to);
  }
  async remove(path: string): Promise<void> {
    this.check();
    return this.inner.remove(path);
  }
  async syncDirectory(path: string): Promise<void> {
    this.check();
    return this.inner.syncDirectory(path);
  }
  async exists(path: string): Promise<boolean> {
    this.check();
    return this.inner.exists(path);
  }
  async freeBytes(): Promise<number> {
    this.check();
    return this.inner.freeBytes();
  }
}

interface Ledger {
  /** key → value of every acknowledged write. */
  readonly acknowledged: Map<string, string>;
  /** [keyA, keyB, value] of txns in flight at a crash. */
  readonly indeterminate: Array<readonly [string, string, string]>;
  acknowledgedTxns: number;
  revisionMax: number;
}

async function openStore(disk: Disk, clock = new ManualClock(), compactLogBytes?: number): Promise<EmbeddedMetaStore> {
  return EmbeddedMetaStore.open(compactLogBytes === undefined ? { disk, directory, clock } : { disk, directory, clock, compactLogBytes });
}

async function putPair(store: MetaStore, a: string, b: string, value: string): Promise<number> {
  const result = await store.txn({ compare: [], success: [{ kind: 'put', key: a, value }, { kind: 'put', key: b, value }] });
  assert.equal(result.succeeded, true);
  return result.revision;
}

/** Checks the ledger against a freshly opened store. */
async function verify(store: EmbeddedMetaStore, ledger: Ledger, label: string): Promise<void> {
  for (const [key, value] of ledger.acknowledged) {
    assert.equal((await store.get(key))?.value, value, `${label}: acknowledged ${key} lost or wrong`);
  }
  for (const [a, b, value] of ledger.indeterminate) {
    const [left, right] = [await store.get(a), await store.get(b)];
    assert.equal(left === null, right === null, `${label}: indeterminate txn ${a} half applied`);
    if (left !== null) assert.equal(left.value, value, `${label}: indeterminate ${a} has a foreign value`);
  }
  assert.ok(store.stats().revision >= ledger.revisionMax, `${label}: revision went back`);
}

async function tick(random: Random): Promise<void> {
  const ticks = random.int(400);
  for (let i = 0; i < ticks; i++) await Promise.resolve();
}

/** One life of a process: open, write concurrently, lose power at a random moment. */
async function oneLife(sim: SimDisk, random: Random, ledger: Ledger, life: number, compactLogBytes: number): Promise<void> {
  const disk = new FencedDisk(sim);
  const store = await openStore(disk, new ManualClock(), compactLogBytes);
  await verify(store, ledger, `life ${life} open`);
  ledger.indeterminate.length = 0;
  const inFlight = new Map<number, readonly [string, string, string]>();
  const txns = 20 + random.int(60);
  const settled = Array.from({ length: txns }, async (_, i) => {
    const pair = [`d/${life}/${i}/a`, `d/${life}/${i}/b`, `${life}:${i}:${random.int(1e9)}`] as const;
    inFlight.set(i, pair);
    try {
      const revision = await putPair(store, ...pair);
      inFlight.delete(i);
      ledger.acknowledged.set(pair[0], pair[2]).set(pair[1], pair[2]);
      ledger.acknowledgedTxns += 1;
      ledger.revisionMax = Math.max(ledger.revisionMax, revision);
    } catch (error) {
      if (!isStorageError(error)) throw error;
    }
  });
  await tick(random);
  disk.fence();
  sim.crash({ tornWrites: true });
  ledger.indeterminate.push(...inFlight.values());
  await Promise.all(settled);
  await store.close();
}

describe('EmbeddedMetaStore durability on SimDisk', { timeout: 60_000 }, () => {
  it('every acknowledged txn survives random power loss, torn writes and compaction', async (t: TestContext) => {
    t.diagnostic(`root seed ${rootSeed} (set KURA_SEED to replay)`);
    const runs = 30;
    const livesPerRun = 8;
    let acknowledged = 0;
    let indeterminate = 0;
    let compactionsSeen = 0;
    for (let run = 0; run < runs; run++) {
      const seed = rootSeed + run;
      const random = new SeededRandom(seed);
      const sim = new SimDisk({ random: new SeededRandom(seed * 7919) });
      const ledger: Ledger = { acknowledged: new Map(), indeterminate: [], acknowledgedTxns: 0, revisionMax: 0 };
      const compactLogBytes = run % 2 === 0 ? 2048 : 1 << 20;
      for (let life = 0; life < livesPerRun; life++) {
        await oneLife(sim, random, ledger, life, compactLogBytes).catch((error: unknown) => {
          throw new Error(`seed ${seed} life ${life} failed`, { cause: error });
        });
        indeterminate += ledger.indeterminate.length;
      }
      const store = await openStore(sim);
      await verify(store, ledger, `seed ${seed} final`).catch((error: unknown) => {
        throw new Error(`seed ${seed} final check failed`, { cause: error });
      });
      if (store.recovery.snapshotRevision !== null) compactionsSeen += 1;
      await store.close();
      acknowledged += ledger.acknowledgedTxns;
    }
    assert.ok(acknowledged > 0 && indeterminate > 0, 'the run must acknowledge txns and crash with some in flight');
    assert.ok(compactionsSeen > 0, 'some runs must recover from a snapshot');
    t.diagnostic(`${runs} seeds × ${livesPerRun} power losses: ${acknowledged} txns acknowledged, 0 lost; ${indeterminate} in flight at a crash, all all-or-nothing; ${compactionsSeen} runs recovered from a snapshot`);
  });

  it('group commit: concurrent txns share fsyncs', async (t: TestContext) => {
    const store = await openStore(new SimDisk({ random: new SeededRandom(rootSeed) }));
    const txns = 200;
    await Promise.all(Array.from({ length: txns }, (_, i) => putPair(store, `g/${i}/a`, `g/${i}/b`, String(i))));
    const { fsyncs, revision } = store.stats();
    assert.equal(revision, txns);
    assert.ok(fsyncs < txns / 10, `${fsyncs} fsyncs for ${txns} concurrent txns`);
    t.diagnostic(`${txns} concurrent txns acknowledged with ${fsyncs} fsyncs`);
    await store.close();
  });

  it('a torn tail is truncated on open, durably, and nothing acknowledged is lost', async (t: TestContext) => {
    const sim = new SimDisk({ random: new SeededRandom(rootSeed) });
    const store = await openStore(sim);
    for (let i = 0; i < 10; i++) await putPair(store, `t/${i}/a`, `t/${i}/b`, String(i));
    await store.close();
    const tail = encodeRecord(logRecordMagic, { revision: 11, writes: [{ key: 't/torn', value: 'x', lease: 0 }] }, recordBodyBytesMax);
    const log = await sim.open(firstLog, { create: false });
    const goodBytes = await log.size();
    await log.write(goodBytes, tail.subarray(0, tail.length - 3));
    await log.sync();
    await log.close();
    const reopened = await openStore(sim);
    assert.equal(reopened.recovery.recordsReplayed, 10);
    assert.equal(reopened.recovery.bytesTruncated, tail.length - 3);
    assert.equal(await reopened.get('t/torn'), null);
    assert.equal((await reopened.get('t/9/b'))?.value, '9');
    await putPair(reopened, 't/after/a', 't/after/b', 'after');
    await reopened.close();
    sim.crash();
    const third = await openStore(sim);
    assert.equal(third.recovery.bytesTruncated, 0, 'the truncation was durable');
    assert.equal(third.recovery.recordsReplayed, 11);
    assert.equal((await third.get('t/after/a'))?.value, 'after');
    await third.close();
    t.diagnostic(`10 records kept, torn tail of ${tail.length - 3} bytes truncated, 1 record appended after it survived a crash`);
  });

  it('a bit flip inside acknowledged history is refused, not truncated away; the log is left untouched', async (t: TestContext) => {
    const sim = new SimDisk({ random: new SeededRandom(rootSeed) });
    const store = await openStore(sim);
    for (let i = 0; i < 10; i++) await putPair(store, `f/${i}/a`, `f/${i}/b`, String(i));
    const { logBytes } = store.stats();
    await store.close();
    const recordBytes = logBytes / 10;
    sim.flipBit(firstLog, Math.floor(recordBytes * 5 + recordBytes / 2), 3);
    const before = sim.snapshotFiles().get(firstLog);
    await assert.rejects(openStore(sim), (error: unknown) => {
      assert.ok(isStorageError(error, 'wire.corrupt'));
      assert.match(error.message, /acknowledged records after it/);
      assert.match(error.message, /Fix:/);
      return true;
    });
    assert.deepEqual(sim.snapshotFiles().get(firstLog), before, 'the damaged log was not truncated');
    sim.flipBit(firstLog, Math.floor(recordBytes * 5 + recordBytes / 2), 3);
    const repaired = await openStore(sim);
    assert.equal(repaired.recovery.recordsReplayed, 10);
    await repaired.close();
    t.diagnostic('bit flip in record 6 of 10: open refused with the fix named, 0 records cut; after repair all 10 replay');
  });

  it('snapshot + log recovery after compaction, and stale files are removed', async (t: TestContext) => {
    const sim = new SimDisk({ random: new SeededRandom(rootSeed) });
    const store = await openStore(sim, new ManualClock(), 4096);
    for (let i = 0; i < 300; i++) await putPair(store, `s/${i % 50}/a`, `s/${i % 50}/b`, String(i));
    await store.txn({ compare: [], success: [{ kind: 'delete', key: 's/0/a' }] });
    const { compactions, revision } = store.stats();
    assert.ok(compactions >= 3, `${compactions} compactions`);
    await store.close();
    sim.crash({ tornWrites: true });
    const reopened = await openStore(sim);
    assert.ok(reopened.recovery.snapshotRevision !== null);
    assert.equal(reopened.recovery.snapshotRevision + reopened.recovery.recordsReplayed, revision);
    assert.equal(await reopened.get('s/0/a'), null);
    assert.equal((await reopened.get('s/49/b'))?.value, '299');
    assert.equal((await reopened.range('s/', { end: prefixEnd('s/') })).length, 99);
    const names = await sim.list(directory);
    assert.equal(names.filter((name) => name.startsWith('log-')).length, 1);
    assert.ok(!names.includes('snapshot.tmp'));
    await reopened.close();
    t.diagnostic(`${compactions} compactions; recovered revision ${revision} = snapshot ${reopened.recovery.snapshotRevision} + ${reopened.recovery.recordsReplayed} log records`);
  });

  it('a failed fsync poisons the store; reopen keeps every acknowledged txn', async (t: TestContext) => {
    const sim = new SimDisk({ random: new SeededRandom(rootSeed) });
    const store = await openStore(sim);
    await putPair(store, 'p/1/a', 'p/1/b', 'one');
    sim.failNext({ operation: 'sync', path: /log-/, code: 'io.eio' });
    await assert.rejects(putPair(store, 'p/2/a', 'p/2/b', 'two'), (error: unknown) => isStorageError(error, 'io.fsync_failed'));
    await assert.rejects(putPair(store, 'p/3/a', 'p/3/b', 'three'), (error: unknown) => isStorageError(error, 'io.fsync_failed'));
    assert.equal(await store.get('p/2/a'), null, 'memory not updated by the failed batch');
    await store.close();
    const reopened = await openStore(sim);
    assert.equal((await reopened.get('p/1/a'))?.value, 'one');
    assert.equal(await reopened.get('p/3/a'), null);
    await reopened.close();
    t.diagnostic('1 fsync failure: batch and later writes refused, 1 acknowledged txn kept');
  });

  it('a damaged snapshot fails open loudly', async () => {
    const sim = new SimDisk({ random: new SeededRandom(rootSeed) });
    const store = await openStore(sim, new ManualClock(), 512);
    for (let i = 0; i < 20; i++) await putPair(store, `c/${i}/a`, `c/${i}/b`, String(i));
    await store.close();
    sim.flipBit(`${directory}/snapshot`, 20, 0);
    await assert.rejects(openStore(sim), (error: unknown) => isStorageError(error, 'wire.corrupt'));
  });

  it('leases do not survive a restart: their keys are deleted on open', async (t: TestContext) => {
    const sim = new SimDisk({ random: new SeededRandom(rootSeed) });
    const store = await openStore(sim);
    const lease = await store.grantLease(60_000);
    await store.txn({ compare: [], success: [{ kind: 'put', key: 'l/leased', value: 'x', lease }, { kind: 'put', key: 'l/plain', value: 'y' }] });
    await store.close();
    const reopened = await openStore(sim);
    assert.equal(reopened.recovery.leasedKeysDeleted, 1);
    assert.equal(await reopened.get('l/leased'), null);
    assert.equal((await reopened.get('l/plain'))?.value, 'y');
    await assert.rejects(reopened.keepAlive(lease), (error: unknown) => isStorageError(error, 'meta.lease_expired'));
    const next = await reopened.grantLease(1000);
    assert.ok(next > lease, 'lease ids are not reused');
    await reopened.close();
    t.diagnostic('1 leased key deleted on restart, 1 plain key kept');
  });
});
