// The embedded stamp in this process on real directories (RealDisk, real fsync): start-up on an
// empty and on a populated data directory (figures: time to ready per phase), accounts kept in
// the partition layer across restarts (create, rotate, the development account's published
// key), the data-directory lock (a second stamp on the same disks is refused, naming the
// holder), and the redundancy statement for one, two and three disks.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AccountStore, developmentAccountKey, developmentAccountName } from '../../src/stamp/account-store.ts';
import { EmbeddedStamp, redundancy } from '../../src/stamp/embedded-stamp.ts';
import { SystemClock } from '../../src/util/clock.ts';
import { isStorageError } from '../../src/util/errors.ts';

const roots: string[] = [];
after(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

async function disks(count: number): Promise<string[]> {
  const root = await mkdtemp(join(tmpdir(), 'kura-stamp-'));
  roots.push(root);
  return Array.from({ length: count }, (_, index) => join(root, `disk${index}`));
}

test('a three-disk stamp starts empty, keeps accounts across a restart and starts again populated', { timeout: 120_000 }, async (t) => {
  const dirs = await disks(3);
  const clock = new SystemClock();
  const first = await EmbeddedStamp.start({ disks: dirs, clock, blob: null });
  let created: Buffer;
  try {
    t.diagnostic(`empty start: ${first.startup.totalMs} ms ${JSON.stringify(first.startup.phasesMs)}`);
    assert.equal(first.redundancy.replicas, 3);
    const dev = first.accounts.keys(developmentAccountName);
    assert.ok(dev !== null);
    assert.deepEqual(Buffer.from(dev[0] ?? []), Buffer.from(developmentAccountKey, 'base64'));
    const account = await first.accounts.create('teamdata');
    created = account.key1;
    await assert.rejects(first.accounts.create('teamdata'), (error: unknown) => isStorageError(error, 'config.invalid'));
    await assert.rejects(first.accounts.create('Bad_Name'), (error: unknown) => isStorageError(error, 'config.invalid'));
    const rotated = await first.accounts.rotateKey('teamdata', 'key2');
    assert.deepEqual(rotated.key1, account.key1, 'rotating key2 keeps key1');
    assert.notDeepEqual(rotated.key2, account.key2);
    for (let index = 0; index < 200; index++) await first.partitions.put(Buffer.from(`Zfiller/${index}`), [{ name: 'v', value: { kind: 'string', value: 'x'.repeat(500) } }]);
    const second = EmbeddedStamp.start({ disks: dirs, clock, blob: null });
    await assert.rejects(second, (error: unknown) => isStorageError(error, 'config.invalid') && /held by a running kura/.test(error.message));
  } finally {
    await first.stop();
  }
  const again = await EmbeddedStamp.start({ disks: dirs, clock, blob: null });
  try {
    t.diagnostic(`populated start: ${again.startup.totalMs} ms ${JSON.stringify(again.startup.phasesMs)}`);
    assert.deepEqual(again.accounts.list().map((account) => account.name), [developmentAccountName, 'teamdata']);
    assert.deepEqual(Buffer.from(again.accounts.keys('teamdata')?.[0] ?? []), created);
    assert.equal((await again.partitions.get(Buffer.from('Zfiller/199')))?.columns.length, 1);

    // Another store over the same rows (as `kura account --etcd` beside a cluster's front ends):
    // its changes are served here after a refresh. A refresh whose scan read the old row while
    // this store rotated a key (the scan's answer is held until the rotation is acknowledged)
    // must not undo the rotation.
    const other = await AccountStore.open({ tables: again.partitions, clock });
    const elsewhere = await other.create('elsewhere');
    let rotationDone: Promise<unknown> | null = null;
    const held = {
      get: (key: Buffer) => again.partitions.get(key),
      put: (...args: Parameters<typeof again.partitions.put>) => again.partitions.put(...args),
      scan: async (options: Parameters<typeof again.partitions.scan>[0]) => {
        const page = await again.partitions.scan(options);
        await rotationDone;
        return page;
      },
    };
    const mine = await AccountStore.open({ tables: held, clock });
    await other.create('later');
    assert.equal(mine.keys('later'), null, 'not served before a refresh');
    let releaseScan: () => void = () => undefined;
    rotationDone = new Promise<void>((resolve) => { releaseScan = resolve; });
    const refreshing = mine.refresh();
    const rotatedHere = await mine.rotateKey('teamdata', 'key1');
    releaseScan();
    await refreshing;
    assert.deepEqual(Buffer.from(mine.keys('later')?.[0] ?? []), (other.get('later') ?? assert.fail()).key1, 'served after the refresh');
    assert.deepEqual(Buffer.from(mine.keys('elsewhere')?.[0] ?? []), elsewhere.key1);
    assert.deepEqual(Buffer.from(mine.keys('teamdata')?.[0] ?? []), rotatedHere.key1, 'the rotation made during the refresh is not undone by it');
  } finally {
    await again.stop();
  }
});

test('the redundancy statement says clearly when there is none', () => {
  assert.match(redundancy(1).statement, /NO REDUNDANCY/);
  assert.equal(redundancy(1).replicas, 1);
  assert.equal(redundancy(2).replicas, 2);
  assert.equal(redundancy(5).replicas, 3);
  assert.match(redundancy(3).statement, /3 replicas/);
});
