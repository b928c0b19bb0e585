// The MetaStore contract (src/metastore/meta-store.ts), one suite run against every
// implementation: EmbeddedMetaStore on RealDisk in a temp directory (virtual clock for leases),
// and EtcdMetaStore on a real single-member etcd started by test/helpers/etcd.ts.
//
// Each test works under its own key prefix, so tests share one store per implementation.
// Every etcd process is stopped in after() hooks, also when a test fails; every test has a
// timeout. A missing etcd binary fails the suite (never a silent skip).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { metaKeyBytesMax, metaTxnBytesMax, metaTxnOperationsMax, metaValueBytesMax } from '../../src/constants.ts';
import { RealDisk } from '../../src/io/real-disk.ts';
import { EmbeddedMetaStore } from '../../src/metastore/embedded-meta-store.ts';
import { Etcd3 } from 'etcd3';
import { EtcdMetaStore } from '../../src/metastore/etcd-meta-store.ts';
import { prefixEnd, type MetaStore, type TxnOperation } from '../../src/metastore/meta-store.ts';
import { ManualClock } from '../../src/util/clock.ts';
import { isStorageError, type StorageErrorCode } from '../../src/util/errors.ts';
import { startEtcd, type EtcdCluster } from '../helpers/etcd.ts';

interface Harness {
  readonly store: MetaStore;
  /** Lets `ms` of the store's lease clock pass (real time for etcd, virtual for embedded). */
  passTime(ms: number): Promise<void>;
  close(): Promise<void>;
}

const testTimeoutMs = 30_000;
/** Leases: etcd counts TTLs in whole seconds and checks expiry every 500 ms. */
const leaseTtlMs = 1_000;
const leaseExpiryPollMs = 250;
const leaseExpiryPollsMax = 40;

async function rejectsWith(promise: Promise<unknown>, code: StorageErrorCode): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isStorageError(error, code), `expected StorageError ${code}, got ${String(error)}`);
    return true;
  });
}

function put(key: string, value: string, lease?: number): TxnOperation {
  return lease === undefined ? { kind: 'put', key, value } : { kind: 'put', key, value, lease };
}

async function putOne(store: MetaStore, key: string, value: string): Promise<number> {
  const result = await store.txn({ compare: [], success: [put(key, value)] });
  assert.equal(result.succeeded, true);
  return result.revision;
}

/** Polls until `key` is gone, letting time pass; returns how much time that took. */
async function waitUntilDeleted(harness: Harness, key: string): Promise<number> {
  for (let poll = 1; poll <= leaseExpiryPollsMax; poll++) {
    await harness.passTime(leaseExpiryPollMs);
    if ((await harness.store.get(key)) === null) return poll * leaseExpiryPollMs;
  }
  assert.fail(`${key} still present after ${leaseExpiryPollsMax * leaseExpiryPollMs} ms`);
}

function metaStoreContract(name: string, createHarness: () => Promise<Harness>): void {
  describe(`MetaStore contract: ${name}`, { timeout: 120_000 }, () => {
    let harness: Harness | null = null;
    const h = (): Harness => {
      assert.ok(harness !== null, 'harness not started');
      return harness;
    };
    before(async () => {
      harness = await createHarness();
    });
    after(async () => {
      await harness?.close();
    });

    it('get, put, overwrite and delete', { timeout: testTimeoutMs }, async () => {
      const { store } = h();
      assert.equal(await store.get('basic/a'), null);
      const revision = await putOne(store, 'basic/a', 'one');
      const kv = await store.get('basic/a');
      assert.deepEqual(kv, { key: 'basic/a', value: 'one', modRevision: revision, lease: 0 });
      await putOne(store, 'basic/a', 'two ünïcode ✓');
      assert.equal((await store.get('basic/a'))?.value, 'two ünïcode ✓');
      const deleted = await store.txn({ compare: [], success: [{ kind: 'delete', key: 'basic/a' }] });
      assert.equal(deleted.succeeded, true);
      assert.equal(await store.get('basic/a'), null);
      const absent = await store.txn({ compare: [], success: [{ kind: 'delete', key: 'basic/never' }] });
      assert.equal(absent.succeeded, true);
    });

    it('range honours start, end, limit and byte order', { timeout: testTimeoutMs }, async () => {
      const { store } = h();
      const keys = ['range/b', 'range/a', 'range/c/1', 'range/c', 'range/A', 'range/d'];
      await store.txn({ compare: [], success: keys.map((key) => put(key, key)) });
      await putOne(store, 'rangf', 'outside the prefix');
      const all = await store.range('range/', { end: prefixEnd('range/') });
      assert.deepEqual(all.map((kv) => kv.key), ['range/A', 'range/a', 'range/b', 'range/c', 'range/c/1', 'range/d']);
      const limited = await store.range('range/', { end: prefixEnd('range/'), limit: 2 });
      assert.deepEqual(limited.map((kv) => kv.key), ['range/A', 'range/a']);
      const bounded = await store.range('range/b', { end: 'range/d' });
      assert.deepEqual(bounded.map((kv) => kv.key), ['range/b', 'range/c', 'range/c/1']);
      assert.deepEqual(await store.range('range/x', { end: prefixEnd('range/x') }), []);
      assert.equal(all[0]?.value, 'range/A');
    });

    it('revisions increase with every write and match modRevision', { timeout: testTimeoutMs }, async (t: TestContext) => {
      const { store } = h();
      let previous = 0;
      const writes = 50;
      for (let i = 0; i < writes; i++) {
        const revision = await putOne(store, `revision/${i % 5}`, String(i));
        assert.ok(revision > previous, `revision ${revision} after ${previous}`);
        assert.equal((await store.get(`revision/${i % 5}`))?.modRevision, revision);
        previous = revision;
      }
      const failed = await store.txn({ compare: [{ key: 'revision/0', modRevision: 1 }], success: [put('revision/0', 'x')] });
      assert.equal(failed.succeeded, false);
      assert.equal(failed.revision, previous, 'a failed txn leaves the revision unchanged');
      t.diagnostic(`${writes} writes, revisions strictly increasing`);
    });

    it('compare-and-swap: concurrent increments with retry produce exactly N', { timeout: testTimeoutMs }, async (t: TestContext) => {
      const { store } = h();
      const workers = 8;
      const incrementsPerWorker = 10;
      let conflicts = 0;
      const increment = async (): Promise<void> => {
        for (;;) {
          const current = await store.get('cas/counter');
          const next = String(Number(current?.value ?? '0') + 1);
          const result = await store.txn({ compare: [{ key: 'cas/counter', modRevision: current?.modRevision ?? 0 }], success: [put('cas/counter', next)] });
          if (result.succeeded) return;
          conflicts++;
        }
      };
      const worker = async (): Promise<void> => {
        for (let i = 0; i < incrementsPerWorker; i++) await increment();
      };
      await Promise.all(Array.from({ length: workers }, worker));
      const expected = workers * incrementsPerWorker;
      assert.equal((await store.get('cas/counter'))?.value, String(expected));
      t.diagnostic(`${expected} increments by ${workers} concurrent workers, counter = ${expected}, ${conflicts} conflicts retried`);
    });

    it('compare modRevision 0 means absent', { timeout: testTimeoutMs }, async () => {
      const { store } = h();
      const create = { compare: [{ key: 'absent/k', modRevision: 0 }], success: [put('absent/k', 'first')] };
      assert.equal((await store.txn(create)).succeeded, true);
      assert.equal((await store.txn({ ...create, success: [put('absent/k', 'second')] })).succeeded, false);
      assert.equal((await store.get('absent/k'))?.value, 'first');
      await store.txn({ compare: [], success: [{ kind: 'delete', key: 'absent/k' }] });
      assert.equal((await store.txn({ ...create, success: [put('absent/k', 'third')] })).succeeded, true);
      assert.equal((await store.get('absent/k'))?.value, 'third');
    });

    it('a multi-key txn is atomic: all writes or none', { timeout: testTimeoutMs }, async () => {
      const { store } = h();
      await putOne(store, 'atomic/d', 'to delete');
      const guard = await putOne(store, 'atomic/guard', 'g');
      const success = [put('atomic/a', '1'), put('atomic/b', '2'), put('atomic/c', '3'), { kind: 'delete', key: 'atomic/d' } as const];
      const stale = await store.txn({ compare: [{ key: 'atomic/guard', modRevision: guard + 1000 }], success });
      assert.equal(stale.succeeded, false);
      assert.deepEqual((await store.range('atomic/', { end: prefixEnd('atomic/') })).map((kv) => kv.key), ['atomic/d', 'atomic/guard']);
      const applied = await store.txn({ compare: [{ key: 'atomic/guard', modRevision: guard }, { key: 'atomic/a', modRevision: 0 }], success });
      assert.equal(applied.succeeded, true);
      const kvs = await store.range('atomic/', { end: prefixEnd('atomic/') });
      assert.deepEqual(kvs.map((kv) => kv.key), ['atomic/a', 'atomic/b', 'atomic/c', 'atomic/guard']);
      assert.deepEqual(kvs.slice(0, 3).map((kv) => kv.modRevision), [applied.revision, applied.revision, applied.revision]);
    });

    it('limits: too-large key, value or txn is wire.too_large and writes nothing', { timeout: testTimeoutMs }, async (t: TestContext) => {
      const { store } = h();
      const before = await putOne(store, 'limits/marker', 'm');
      const bigValue = 'v'.repeat(metaValueBytesMax + 1);
      await rejectsWith(store.txn({ compare: [], success: [put('limits/a', 'ok'), put('limits/big', bigValue)] }), 'wire.too_large');
      await rejectsWith(store.txn({ compare: [], success: [put('limits/a', 'ok'), put(`limits/${'k'.repeat(metaKeyBytesMax)}`, 'v')] }), 'wire.too_large');
      await rejectsWith(store.get(`limits/${'k'.repeat(metaKeyBytesMax)}`), 'wire.too_large');
      const tooMany = Array.from({ length: metaTxnOperationsMax + 1 }, (_, i) => put(`limits/many/${i}`, 'v'));
      await rejectsWith(store.txn({ compare: [], success: tooMany }), 'wire.too_large');
      const tooManyCompares = Array.from({ length: metaTxnOperationsMax + 1 }, (_, i) => ({ key: `limits/c/${i}`, modRevision: 0 }));
      await rejectsWith(store.txn({ compare: tooManyCompares, success: [put('limits/a', 'ok')] }), 'wire.too_large');
      const twoLargeValues = [put('limits/l1', 'v'.repeat(metaValueBytesMax)), put('limits/l2', 'v'.repeat(metaTxnBytesMax - metaValueBytesMax))];
      await rejectsWith(store.txn({ compare: [], success: twoLargeValues }), 'wire.too_large');
      assert.deepEqual((await store.range('limits/', { end: prefixEnd('limits/') })).map((kv) => kv.key), ['limits/marker']);
      const atLimit = await putOne(store, 'limits/max', 'v'.repeat(metaValueBytesMax));
      assert.equal(atLimit, before + 1, 'rejected txns did not change the revision');
      assert.equal((await store.get('limits/max'))?.value.length, metaValueBytesMax);
      const maxOps = Array.from({ length: metaTxnOperationsMax }, (_, i) => put(`limits/ops/${String(i).padStart(3, '0')}`, 'v'));
      assert.equal((await store.txn({ compare: [], success: maxOps })).succeeded, true);
      t.diagnostic(`6 over-limit requests rejected, 0 writes leaked; value of ${metaValueBytesMax} bytes and txn of ${metaTxnOperationsMax} ops accepted`);
    });

    it('invalid keys and inputs are config.invalid', { timeout: testTimeoutMs }, async () => {
      const { store } = h();
      for (const key of ['', 'has space', 'tab\tkey', 'ünï', 'del\x7f', 'new\nline']) {
        await rejectsWith(store.get(key), 'config.invalid');
        await rejectsWith(store.txn({ compare: [], success: [put(key, 'v')] }), 'config.invalid');
        await rejectsWith(store.txn({ compare: [{ key, modRevision: 0 }], success: [] }), 'config.invalid');
        await rejectsWith(store.range(key, { end: 'z' }), 'config.invalid');
      }
      await rejectsWith(store.range('a', { end: 'z', limit: 0 }), 'config.invalid');
      await rejectsWith(store.txn({ compare: [], success: [put('invalid/dup', '1'), put('invalid/dup', '2')] }), 'config.invalid');
      await rejectsWith(store.txn({ compare: [{ key: 'invalid/x', modRevision: -1 }], success: [] }), 'config.invalid');
      await rejectsWith(store.grantLease(0), 'config.invalid');
      await rejectsWith(store.keepAlive(-3), 'config.invalid');
      assert.equal(await store.get('invalid/dup'), null);
    });

    it('an expired lease deletes its keys; keepAlive then fails', { timeout: testTimeoutMs }, async (t: TestContext) => {
      const harness = h();
      const { store } = harness;
      const lease = await store.grantLease(leaseTtlMs);
      assert.ok(Number.isSafeInteger(lease) && lease > 0);
      await store.txn({ compare: [], success: [put('lease/a', 'a', lease), put('lease/b', 'b', lease), put('lease/keep', 'no lease')] });
      assert.equal((await store.get('lease/a'))?.lease, lease);
      await store.keepAlive(lease);
      const expiredAfterMs = await waitUntilDeleted(harness, 'lease/a');
      assert.equal(await store.get('lease/b'), null);
      assert.equal((await store.get('lease/keep'))?.value, 'no lease');
      await rejectsWith(store.keepAlive(lease), 'meta.lease_expired');
      await rejectsWith(store.txn({ compare: [], success: [put('lease/late', 'x', lease)] }), 'meta.lease_expired');
      assert.equal(await store.get('lease/late'), null);
      t.diagnostic(`lease of ${leaseTtlMs} ms expired and deleted 2 keys after ~${expiredAfterMs} ms`);
    });

    it('keepAlive keeps a lease alive past its TTL', { timeout: testTimeoutMs }, async () => {
      const harness = h();
      const { store } = harness;
      const lease = await store.grantLease(leaseTtlMs * 2);
      await store.txn({ compare: [], success: [put('alive/a', 'a', lease)] });
      for (let i = 0; i < 6; i++) {
        await harness.passTime(leaseTtlMs / 2);
        await store.keepAlive(lease);
      }
      assert.equal((await store.get('alive/a'))?.value, 'a', 'kept-alive lease still holds its key after 3 s');
      await store.revokeLease(lease);
    });

    it('revoke deletes the keys at once; later use of the lease fails', { timeout: testTimeoutMs }, async () => {
      const { store } = h();
      const lease = await store.grantLease(60_000);
      await store.txn({ compare: [], success: [put('revoke/a', 'a', lease), put('revoke/b', 'b', lease)] });
      await store.revokeLease(lease);
      assert.deepEqual(await store.range('revoke/', { end: prefixEnd('revoke/') }), []);
      await rejectsWith(store.keepAlive(lease), 'meta.lease_expired');
      await rejectsWith(store.revokeLease(lease), 'meta.lease_expired');
      await rejectsWith(store.txn({ compare: [], success: [put('revoke/c', 'c', lease)] }), 'meta.lease_expired');
      await rejectsWith(store.keepAlive(424242), 'meta.lease_expired');
    });

    it('watchKey: a call once established, one per write of the key (put, delete), none for other keys or after close', { timeout: testTimeoutMs }, async (t: TestContext) => {
      const { store } = h();
      const calls: number[] = [];
      const watch = store.watchKey('watch/a', () => calls.push(performance.now()));
      await waitForCalls(calls, 1);
      await putOne(store, 'watch/other', 'x');
      const writtenMs = performance.now();
      await putOne(store, 'watch/a', 'one');
      await waitForCalls(calls, 2);
      const latencyMs = (calls[1] ?? 0) - writtenMs;
      await store.txn({ compare: [], success: [{ kind: 'delete', key: 'watch/a' }] });
      await waitForCalls(calls, 3);
      watch.close();
      await putOne(store, 'watch/a', 'two');
      await sleepMs(300);
      t.diagnostic(`calls: established, put, delete; a write to the call ${latencyMs.toFixed(2)} ms; none after close`);
      assert.equal(calls.length, 3);
    });
  });
}

/** Waits (bounded, real time) until a watch made `count` calls. */
async function waitForCalls(calls: readonly number[], count: number, timeoutMs = 10_000): Promise<void> {
  const startedMs = performance.now();
  while (calls.length < count) {
    assert.ok(performance.now() - startedMs < timeoutMs, `the watch made ${calls.length} calls, not ${count}, within ${timeoutMs} ms`);
    await sleepMs(10);
  }
}

function sleepMs(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

metaStoreContract('EmbeddedMetaStore on RealDisk', async () => {
  const root = await mkdtemp(join(tmpdir(), 'kura-meta-'));
  const clock = new ManualClock();
  try {
    const store = await EmbeddedMetaStore.open({ disk: new RealDisk({ root }), directory: 'meta', clock });
    return {
      store,
      passTime: async (ms) => {
        await clock.advance(ms);
        await store.idle();
      },
      close: async () => {
        await store.close();
        await rm(root, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(root, { recursive: true, force: true });
    throw error;
  }
});

metaStoreContract('EtcdMetaStore on a 1-member etcd', async () => {
  const cluster: EtcdCluster = await startEtcd();
  try {
    const store = await EtcdMetaStore.connect({ endpoints: cluster.endpoints });
    return {
      store,
      passTime: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      close: async () => {
        await store.close();
        await cluster.stop();
      },
    };
  } catch (error) {
    await cluster.stop();
    throw error;
  }
});

// Not part of the shared contract (the embedded store has no network): how EtcdMetaStore
// reports an unreachable or dead cluster, and that it recovers when the cluster returns.
describe('EtcdMetaStore outages', { timeout: 60_000 }, () => {
  let cluster: EtcdCluster | null = null;
  let store: EtcdMetaStore | null = null;
  after(async () => {
    await store?.close();
    await cluster?.stop();
  });

  it('connect to a cluster that is not there is meta.unavailable, retryable and bounded', { timeout: testTimeoutMs }, async () => {
    const dead = await startEtcd();
    const endpoints = dead.endpoints;
    await dead.stop();
    const startedMs = Date.now();
    await assert.rejects(EtcdMetaStore.connect({ endpoints, callTimeoutMs: 1_000 }), (error: unknown) => {
      assert.ok(isStorageError(error, 'meta.unavailable') && error.retryable, String(error));
      return true;
    });
    assert.ok(Date.now() - startedMs < 15_000);
  });

  it('calls during an outage are meta.unavailable; the store works again after restart', { timeout: 45_000 }, async (t: TestContext) => {
    cluster = await startEtcd();
    const member = cluster.members[0];
    assert.ok(member !== undefined);
    store = await EtcdMetaStore.connect({ endpoints: cluster.endpoints, callTimeoutMs: 1_000 });
    await putOne(store, 'outage/before', 'x');
    await member.kill();
    const live = store;
    await rejectsWith(live.get('outage/before'), 'meta.unavailable');
    await rejectsWith(live.txn({ compare: [], success: [put('outage/during', 'y')] }), 'meta.unavailable');
    await member.restart();
    const restartedMs = Date.now();
    let attempts = 0;
    for (;;) {
      attempts++;
      try {
        assert.equal((await live.get('outage/before'))?.value, 'x');
        break;
      } catch (error) {
        assert.ok(isStorageError(error, 'meta.unavailable') && error.retryable, String(error));
        assert.ok(Date.now() - restartedMs < 30_000, 'store did not recover within 30 s of the restart');
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    t.diagnostic(`outage reported as meta.unavailable; recovered ${Date.now() - restartedMs} ms after restart (${attempts} attempts)`);
  });

  it('a watch resumes after its etcd member restarts: it reports the writes made meanwhile, also when the revision it resumes from was compacted', { timeout: 60_000 }, async (t: TestContext) => {
    const watched = await startEtcd({ memberCount: 3 });
    const [first, ...others] = watched.members;
    assert.ok(first !== undefined);
    // The watcher talks to the first member only; the writer and the compaction go to the others.
    const watcher = await EtcdMetaStore.connect({ endpoints: [first.clientUrl], callTimeoutMs: 1_000 });
    const raw = new Etcd3({ hosts: others.map((member) => member.clientUrl) });
    try {
      const calls: number[] = [];
      watcher.watchKey('restart/a', () => calls.push(performance.now()));
      await waitForCalls(calls, 1);
      await watcher.get('restart/a');
      await first.kill();
      const { header } = await raw.put('restart/a').value('while down').exec();
      await raw.put('restart/other').value('x').exec();
      await raw.kv.compact({ revision: String(Number(header.revision) + 1), physical: true });
      await first.restart();
      const restartedMs = performance.now();
      await waitForCalls(calls, 2, 30_000);
      const reportedMs = (calls[1] ?? 0) - restartedMs;
      assert.equal((await watcher.get('restart/a'))?.value, 'while down');
      const before = calls.length;
      const writtenMs = performance.now();
      await raw.put('restart/a').value('after').exec();
      await waitForCalls(calls, before + 1, 10_000);
      t.diagnostic(`calls at ${calls.map((ms) => (ms - restartedMs).toFixed(0)).join(", ")} ms; written at ${(writtenMs - restartedMs).toFixed(0)}`);
      t.diagnostic(`the write made while the member was down (its revision compacted) reported ${reportedMs.toFixed(0)} ms after the member was healthy again; a later write in ${((calls[before] ?? 0) - writtenMs).toFixed(1)} ms`);
    } finally {
      raw.close();
      await watcher.close();
      await watched.stop();
    }
  });
});
