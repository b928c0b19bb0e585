// Partition engine unit tests on in-memory streams: reads and writes, ETag conditions, atomic
// transactions, checkpoints and compaction (with tiny blocks and runs), reload from the streams
// (manifest + log replay with duplicate and fenced records), scans with prefix, delimiter and
// continuation, append failures that leave the outcome unknown, and the data stream.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Partition } from '../../../src/partition/partition.ts';
import type { LiveRow, PartitionOptions } from '../../../src/partition/partition.ts';
import { decodeGetManyRows, decodeRows, decodeScanItems, encodeKey, encodeKeyList, encodeScanItems } from '../../../src/partition/partition-rpc.ts';
import { performPartitionRequest } from '../../../src/partition/partition-requests.ts';
import type { PartitionStreamIds, PartitionStreams } from '../../../src/partition/partition-streams.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import type { StorageErrorCode } from '../../../src/util/errors.ts';
import { decodeRow, encodeFramedRows, encodeRow } from '../../../src/wire/partition-row.ts';
import type { Column } from '../../../src/wire/partition-row.ts';
import { MemoryStreamStore } from '../../helpers/memory-partition-streams.ts';

const tinyLimits = { memtableBytesMax: 2048, blockBytesTarget: 256, runBytesMax: 2048, runsCompactionTrigger: 4 };

function key(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}

function text(value: string): Column[] {
  return [{ name: 'v', value: { kind: 'string', value } }];
}

class Fixture {
  readonly store = new MemoryStreamStore({ extentBytesMax: 4096 });
  readonly ids: PartitionStreamIds = this.store.createPartitionStreams();
  readonly clock = new ManualClock();
  epoch = 1;

  open(overrides: Partial<PartitionOptions> = {}): Promise<Partition> {
    return Partition.open({
      partitionId: 7, streams: this.store.session(), streamIds: this.ids, clock: this.clock, ownerEpoch: this.epoch, limits: tinyLimits, ...overrides,
    });
  }
}

/** A live row as a plain object (a row decoded deferred keeps its columns behind a getter). */
function plainRow(row: LiveRow): object {
  return { kind: row.kind, key: row.key, sequence: row.sequence, lastModifiedMs: row.lastModifiedMs, etag: row.etag, columns: row.columns };
}

async function rejectsWith(promise: Promise<unknown>, code: StorageErrorCode): Promise<void> {
  await assert.rejects(promise, (error) => isStorageError(error, code));
}

async function valueOf(partition: Partition, name: string): Promise<string | null> {
  const row = await partition.get(key(name));
  const column = row?.columns[0]?.value;
  return column?.kind === 'string' ? column.value : null;
}

describe('Partition', () => {
  it('scanEncoded (the server\u2019s listing: run rows passed through as their block holds them) equals scan, page by page', async () => {
    const fixture = new Fixture();
    const partition = await fixture.open({ autoMaintenance: false });
    for (let i = 0; i < 120; i++) await partition.put(key(`d/${String(i).padStart(3, '0')}/x`), text(`v${i}`));
    await partition.checkpoint();
    for (let i = 0; i < 120; i += 3) await partition.delete(key(`d/${String(i).padStart(3, '0')}/x`)); // tombstones in memtable
    await partition.checkpoint(); // ...then in a newer run
    for (let i = 1; i < 120; i += 7) await partition.put(key(`d/${String(i).padStart(3, '0')}/x`), text(`new${i}`)); // memtable rows
    let pages = 0;
    let rows = 0;
    for (const delimiter of [undefined, key('/')]) {
      let plain: string | null | undefined;
      let encoded: string | null | undefined;
      do {
        const options = { limit: 9, prefix: key('d/'), ...(delimiter === undefined ? {} : { delimiter }) };
        const left = await partition.scan({ ...options, ...(plain == null ? {} : { continuation: plain }) });
        const right = await partition.scanEncoded({ ...options, ...(encoded == null ? {} : { continuation: encoded }) });
        const expected = left.items.map((item) => (item.kind === 'row' ? item.row : item));
        assert.deepEqual(right.items.map((item) => (item.kind === 'encoded' ? decodeRow(item.bytes) : item)), expected);
        // The client's page: the RPC body decoded with deferred columns (read here after the decode).
        const client = decodeScanItems(encodeScanItems(right.items));
        assert.deepEqual(client.map((item) => (item.kind === 'row' ? { ...item.row, kind: item.row.kind, columns: item.row.columns } : item)), expected);
        assert.equal(right.continuation, left.continuation);
        plain = left.continuation;
        encoded = right.continuation;
        pages += 1;
        rows += left.items.length;
      } while (plain !== null);
    }
    console.log(`scan vs scanEncoded vs the client's decoded page: ${pages} pages, ${rows} items equal (rows in memtable, runs, tombstones in a newer run)`);
    assert.ok(rows > 80);
  });

  it('getFramed (a point read\u2019s answer body, as the memtable or a run block holds the row) equals get, framed, everywhere a row can be', async () => {
    const fixture = new Fixture();
    const partition = await fixture.open({ autoMaintenance: false, limits: { ...tinyLimits, memtableBytesMax: 1 << 20, runBytesMax: 1 << 20 } });
    const name = (i: number): Buffer => key(`g/${String(i).padStart(3, '0')}`);
    const body = (i: number, tag: string): Column[] => [...text(`${tag}${i}`), { name: 'body', value: { kind: 'bytes', value: Buffer.alloc(700 + i, i) } }];
    for (let i = 0; i < 60; i++) await partition.put(name(i), body(i, 'v'));
    await partition.checkpoint();
    for (let i = 0; i < 60; i += 3) await partition.delete(name(i)); // tombstones, then in a newer run
    await partition.checkpoint();
    for (let i = 1; i < 60; i += 4) await partition.put(name(i), body(i, 'new')); // memtable rows
    for (let i = 2; i < 60; i += 5) await partition.get(name(i)); // some run rows in the row cache
    const where = { memtable: 0, cached: 0, run: 0, absent: 0 };
    for (let i = 0; i < 62; i++) {
      const framed = await partition.getFramed(name(i)); // first: a run row is not in the row cache yet
      const expected = await partition.get(name(i));
      if (expected === null) {
        assert.equal(framed, null, `key ${i}`);
        where.absent += 1;
        continue;
      }
      assert.ok(framed !== null, `key ${i}`);
      assert.deepEqual(framed, encodeFramedRows([expected], 0), `key ${i}`);
      const decoded = decodeRows(framed, 1, { deferred: true })[0];
      assert.ok(decoded?.kind === 'live' && expected.kind === 'live');
      assert.deepEqual(plainRow(decoded), plainRow(expected));
      if (i % 4 === 1) {
        // The memtable holds the row framed: the same bytes again (a copy of them), and the row still reads equal.
        const framedAgain = await partition.getFramed(name(i));
        assert.deepEqual(framedAgain, framed);
        const again = await partition.get(name(i));
        assert.ok(again?.kind === 'live');
        assert.deepEqual(plainRow(again), plainRow(expected));
        where.memtable += 1;
      } else if (i % 5 === 2) where.cached += 1;
      else where.run += 1;
    }
    // A frozen memtable (its checkpoint failed) under the active one: a tombstone or a newer row
    // in the active one hides the frozen version.
    fixture.store.failNextAppend(fixture.ids.checkpoint, 'lost');
    await assert.rejects(partition.checkpoint());
    await partition.delete(name(5));
    await partition.put(name(9), body(9, 'newer'));
    assert.equal(await partition.getFramed(name(5)), null);
    assert.deepEqual(await partition.getFramed(name(9)), encodeFramedRows([await partition.get(name(9)) ?? assert.fail('row 9')], 0));
    assert.deepEqual(await partition.getFramed(name(13)), encodeFramedRows([await partition.get(name(13)) ?? assert.fail('row 13')], 0)); // frozen
    // Rows read framed (held as views of their frame) checkpoint and reload as they were.
    await partition.put(name(1), body(1, 'newest'));
    assert.deepEqual((await partition.getFramed(name(1)))?.subarray(4), encodeRow(await partition.get(name(1)) ?? assert.fail('row 1')));
    await partition.checkpoint();
    await partition.close();
    const reopened = await fixture.open();
    for (let i = 0; i < 60; i++) {
      const expected = i === 1 ? 'newest1' : i === 9 ? 'newer9' : i === 5 ? null : i % 4 === 1 ? `new${i}` : i % 3 === 0 ? null : `v${i}`;
      assert.equal(await valueOf(reopened, `g/${String(i).padStart(3, '0')}`), expected);
    }
    console.log(`getFramed equals get framed: ${where.memtable} memtable rows (encoded once), ${where.cached} row-cache rows, ${where.run} run rows (block views), ${where.absent} absent or deleted`);
    assert.ok(where.memtable >= 10 && where.cached >= 5 && where.run >= 10 && where.absent >= 15);
  });

  it('partition.getMany asks the server to admit every key after the routing one (its range, its request load) and answers the others \u2019-\u2019', async () => {
    const partition = await new Fixture().open();
    await partition.put(key('m/1'), text('one'));
    await partition.put(key('m/3'), text('three'));
    const admitted: string[] = [];
    const admit = (other: Buffer): boolean => {
      admitted.push(other.toString());
      return other.toString() !== 'm/4'; // m/4: as if outside this partition
    };
    const keys = ['m/1', 'm/2', 'm/3', 'm/4'].map(key);
    const answer = await performPartitionRequest(partition, { method: 'partition.getMany', header: { key: encodeKey(keys[0] ?? key('m/1')), keys: encodeKeyList(keys) }, body: Buffer.alloc(0), high: null, admit });
    assert.equal(answer.header['found'], '101-');
    assert.deepEqual(admitted, ['m/2', 'm/3', 'm/4'], 'the routing key is counted by the server already');
    const rows = decodeGetManyRows(answer.header, answer.body, 4);
    assert.deepEqual(rows.map((row) => (row.kind === 'live' ? row.columns[0]?.value : null)), [{ kind: 'string', value: 'one' }, { kind: 'string', value: 'three' }]);
    await rejectsWith(performPartitionRequest(partition, { method: 'partition.getMany', header: { key: encodeKey(key('m/9')), keys: encodeKeyList(keys) }, body: Buffer.alloc(0), high: null, admit }), 'config.invalid');
  });

  it('puts, gets, overwrites and deletes rows with fresh ETags', async () => {
    const fixture = new Fixture();
    const partition = await fixture.open();
    const first = await partition.put(key('a'), text('1'));
    const second = await partition.put(key('a'), text('2'));
    assert.notEqual(first.etag, second.etag);
    assert.equal(await valueOf(partition, 'a'), '2');
    assert.equal((await partition.get(key('a')))?.etag, second.etag);
    await partition.delete(key('a'));
    assert.equal(await partition.get(key('a')), null);
    assert.equal(await partition.get(key('never')), null);
  });

  it('enforces If-Match and If-None-Match with typed errors', async () => {
    const partition = await new Fixture().open();
    await rejectsWith(partition.put(key('a'), text('x'), { ifMatch: '*' }), 'partition.row_not_found');
    const { etag } = await partition.put(key('a'), text('1'), { ifNoneMatch: '*' });
    await rejectsWith(partition.put(key('a'), text('2'), { ifNoneMatch: '*' }), 'partition.exists');
    await rejectsWith(partition.put(key('a'), text('2'), { ifMatch: '0xBAD' }), 'partition.condition_failed');
    const updated = await partition.put(key('a'), text('2'), { ifMatch: etag });
    await rejectsWith(partition.delete(key('a'), { ifMatch: etag }), 'partition.condition_failed');
    await partition.delete(key('a'), { ifMatch: updated.etag });
    await rejectsWith(partition.delete(key('a'), { ifMatch: '*' }), 'partition.row_not_found');
    assert.equal(partition.stats().conditionFailures, 5);
  });

  it('applies a transaction all or nothing, and groups concurrent batches in one log append', async () => {
    const partition = await new Fixture().open();
    const { etag } = await partition.put(key('a'), text('1'));
    await rejectsWith(partition.transact([
      { kind: 'put', key: key('b'), columns: text('b') },
      { kind: 'put', key: key('a'), columns: text('x'), ifMatch: '0xNOPE' },
    ]), 'partition.condition_failed');
    assert.equal(await partition.get(key('b')), null);
    const result = await partition.transact([
      { kind: 'put', key: key('b'), columns: text('b') },
      { kind: 'delete', key: key('a'), ifMatch: etag },
    ]);
    assert.equal(result.etags[1], null);
    assert.equal(await valueOf(partition, 'b'), 'b');
    assert.equal(await partition.get(key('a')), null);
    const appendsBefore = partition.stats().logAppends;
    const burst = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => partition.put(key('c'), text(String(i)), i === 0 ? { ifNoneMatch: '*' } : {})));
    assert.ok(burst.every((outcome) => outcome.status === 'fulfilled'));
    assert.ok(partition.stats().logAppends - appendsBefore < 20, 'concurrent batches share appends (group commit)');
    assert.equal(await valueOf(partition, 'c'), '19');
    await rejectsWith(partition.transact([{ kind: 'put', key: key('d'), columns: [] }, { kind: 'delete', key: key('d') }]), 'config.invalid');
  });

  it('reloads from checkpoints, compacted runs and the log after them', async () => {
    const fixture = new Fixture();
    const partition = await fixture.open({ autoMaintenance: false });
    for (let i = 0; i < 200; i++) await partition.put(key(`k${String(i).padStart(3, '0')}`), text(`v${i}`));
    await partition.checkpoint();
    for (let i = 0; i < 200; i += 2) await partition.delete(key(`k${String(i).padStart(3, '0')}`));
    await partition.checkpoint();
    assert.ok(partition.stats().runCount >= 2);
    await partition.compact();
    for (let i = 1; i < 200; i += 4) await partition.put(key(`k${String(i).padStart(3, '0')}`), text(`w${i}`));
    await partition.close();
    const reopened = await fixture.open();
    assert.equal(reopened.stats().recordsReplayed, 50);
    for (let i = 0; i < 200; i++) {
      const expected = i % 2 === 0 ? null : i % 4 === 1 ? `w${i}` : `v${i}`;
      assert.equal(await valueOf(reopened, `k${String(i).padStart(3, '0')}`), expected);
    }
  });

  it('checkpoints and compacts by itself when the memtable and run count grow', async () => {
    const fixture = new Fixture();
    const partition = await fixture.open();
    for (let i = 0; i < 400; i++) await partition.put(key(`auto${i % 97}`), text(`${i}`));
    await partition.close();
    const stats = partition.stats();
    assert.ok(stats.checkpoints >= 3, `checkpoints ${stats.checkpoints}`);
    assert.ok(stats.compactions >= 1, `compactions ${stats.compactions}`);
    const reopened = await fixture.open();
    for (let i = 303; i < 400; i++) assert.equal(await valueOf(reopened, `auto${i % 97}`), `${i}`);
  });

  it('skips duplicated log records and refuses a log gap-free replay by a stale epoch', async () => {
    const fixture = new Fixture();
    const partition = await fixture.open();
    await partition.put(key('a'), text('1'));
    fixture.store.duplicateNextAppend(fixture.ids.log);
    await partition.put(key('b'), text('2'));
    await partition.put(key('c'), text('3'));
    fixture.epoch = 2;
    const reopened = await fixture.open();
    assert.equal(reopened.stats().duplicatesSkipped, 1);
    assert.equal(reopened.stats().recordsReplayed, 3);
    assert.equal(await valueOf(reopened, 'b'), '2');
    await reopened.put(key('d'), text('4'));
    fixture.epoch = 1;
    await rejectsWith(fixture.open(), 'partition.fenced');
  });

  it('fails the partition when a log append outcome is unknown; a reload decides it', async () => {
    for (const outcome of ['lost', 'landed'] as const) {
      const fixture = new Fixture();
      const partition = await fixture.open();
      await partition.put(key('a'), text('1'));
      fixture.store.failNextAppend(fixture.ids.log, outcome);
      await rejectsWith(partition.put(key('a'), text('2')), 'partition.unavailable');
      await rejectsWith(partition.get(key('a')), 'partition.unavailable');
      const reopened = await fixture.open();
      assert.equal(await valueOf(reopened, 'a'), outcome === 'landed' ? '2' : '1');
      const next = await reopened.put(key('z'), text('z'));
      assert.equal(next.sequence, outcome === 'landed' ? 3 : 2, 'sequence numbers continue without reuse');
    }
  });

  it('scans with prefix, delimiter, bounds and continuation across memtable and runs', async () => {
    const fixture = new Fixture();
    const partition = await fixture.open({ autoMaintenance: false });
    const names = ['a/1', 'a/2', 'a/b/1', 'a/b/2', 'a/c/1', 'b/1', 'b/2/3', 'c'];
    for (const name of names.slice(0, 4)) await partition.put(key(name), text(name));
    await partition.checkpoint();
    for (const name of names.slice(4)) await partition.put(key(name), text(name));
    await partition.delete(key('a/2'));
    const all = await collect(partition, { limit: 2 });
    assert.deepEqual(all, ['a/1', 'a/b/1', 'a/b/2', 'a/c/1', 'b/1', 'b/2/3', 'c']);
    assert.deepEqual(await collect(partition, { prefix: key('a/'), delimiter: key('/'), limit: 1 }), ['a/1', 'a/b/', 'a/c/']);
    assert.deepEqual(await collect(partition, { delimiter: key('/'), limit: 5 }), ['a/', 'b/', 'c']);
    assert.deepEqual(await collect(partition, { start: key('a/b/2'), end: key('b/2'), limit: 10 }), ['a/b/2', 'a/c/1', 'b/1']);
    const page = await partition.scan({ limit: 1 });
    assert.ok(page.continuation !== null);
    await rejectsWith(partition.scan({ limit: 1, prefix: key('b'), continuation: page.continuation }), 'partition.bad_continuation');
    await rejectsWith(partition.scan({ limit: 1, continuation: 'garbage!' }), 'partition.bad_continuation');
  });

  it('never caches a run lookup that a write overtook', async () => {
    const fixture = new Fixture();
    const session = fixture.store.session();
    let gate: Promise<void> | null = null;
    const gated: PartitionStreams = {
      append: (streamId, data) => session.append(streamId, data),
      extents: (streamId) => session.extents(streamId),
      sealTail: (streamId) => session.sealTail(streamId),
      dropExtents: (streamId, extentIds) => session.dropExtents(streamId, extentIds),
      read: async (streamId, extentId, offset, length) => {
        await gate;
        return session.read(streamId, extentId, offset, length);
      },
    };
    const partition = await fixture.open({ streams: gated, autoMaintenance: false });
    await partition.put(key('k'), text('old'));
    await partition.checkpoint();
    let open = (): void => undefined;
    gate = new Promise((resolve) => { open = resolve; });
    const slowRead = partition.get(key('k'));
    await partition.put(key('k'), text('new'));
    open();
    gate = null;
    await slowRead;
    await partition.checkpoint();
    assert.equal(await valueOf(partition, 'k'), 'new');
  });

  it('stores blob bytes in the data stream and reads them back by reference', async () => {
    const partition = await new Fixture().open();
    const bytes = Buffer.from('hello blob');
    const ref = await partition.appendData(bytes);
    await partition.put(key('blob'), [{ name: 'data', value: { kind: 'dataRefs', value: [ref] } }]);
    const row = await partition.get(key('blob'));
    const refs = row?.columns[0]?.value;
    assert.ok(refs?.kind === 'dataRefs');
    assert.deepEqual(await partition.readData(refs.value[0]!), bytes);
  });
});

async function collect(partition: Partition, options: Parameters<Partition['scan']>[0]): Promise<string[]> {
  const out: string[] = [];
  let continuation: string | null = null;
  for (let pages = 0; pages < 100; pages++) {
    const page = await partition.scan(continuation === null ? options : { ...options, continuation });
    for (const item of page.items) out.push(item.kind === 'row' ? item.row.key.toString('utf8') : item.prefix.toString('utf8'));
    continuation = page.continuation;
    if (continuation === null) return out;
  }
  throw new Error('scan did not finish in 100 pages');
}
