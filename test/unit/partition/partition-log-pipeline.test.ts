// The partition writer with several commit-log appends in flight (docs/formats/partition-log.md,
// "Pipelined log appends"), on streams whose log appends are stored and completed in an order the
// test chooses (as rpc.overloaded retries and retries after a seal can leave them):
// - batches are published and acknowledged strictly in sequence order, whatever order the
//   appends complete in; a reload replays the reordered log;
// - the first in-flight append failing while the second succeeds: neither is acknowledged, the
//   partition fails, a reload applies a prefix (both if the first landed, else neither);
// - a condition that fails against a group in flight is answered once that group is published
//   (reads see only published rows: answered earlier, a read-evaluate-write retry reads stale);
// - a checkpoint taken while a group stored before the last completed append is still in flight
//   keeps its record in the replayed range (logStart from the oldest in-flight group's issue);
// - the overlap rule: a further append starts only once the newest in flight has been out
//   logAppendOverlapAfterMs; batches queued before then go as one group.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Partition } from '../../../src/partition/partition.ts';
import type { StreamAppendPosition } from '../../../src/partition/partition-streams.ts';
import type { Body } from '../../../src/util/body-parts.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { StorageError, isStorageError } from '../../../src/util/errors.ts';
import type { Column } from '../../../src/wire/partition-row.ts';
import { ForwardingStreams, MemoryStreamStore } from '../../helpers/memory-partition-streams.ts';

function text(value: string): Column[] {
  return [{ name: 'v', value: { kind: 'string', value } }];
}

interface HeldAppend {
  readonly data: Body;
  position: StreamAppendPosition | null;
  readonly resolve: (position: StreamAppendPosition) => void;
  readonly reject: (error: unknown) => void;
}

/** Log appends wait; `store(i)` writes the i-th (0-based, issue order) to the log, `complete(i)`
 * answers it, `fail(i)` answers it with stream.unavailable (stored or not, as chosen before). */
class HeldLogStreams extends ForwardingStreams {
  readonly held: HeldAppend[] = [];
  private readonly logStreamId: number;

  constructor(inner: ForwardingStreams['inner'], logStreamId: number) {
    super(inner);
    this.logStreamId = logStreamId;
  }

  override append(streamId: number, data: Body): Promise<StreamAppendPosition> {
    if (streamId !== this.logStreamId) return super.append(streamId, data);
    return new Promise((resolve, reject) => this.held.push({ data, position: null, resolve, reject }));
  }

  async store(index: number): Promise<void> {
    const append = this.at(index);
    append.position = await this.inner.append(this.logStreamId, append.data);
  }

  complete(index: number): void {
    const append = this.at(index);
    assert.ok(append.position !== null, `append ${index} completes only once stored`);
    append.resolve(append.position);
  }

  fail(index: number): void {
    this.at(index).reject(new StorageError('stream.unavailable', `log append ${index} failed (test)`, { retryable: true }));
  }

  private at(index: number): HeldAppend {
    const append = this.held[index];
    assert.ok(append !== undefined, `log append ${index} was issued`);
    return append;
  }
}

class Fixture {
  readonly store = new MemoryStreamStore({ extentBytesMax: 1 << 20 });
  readonly ids = this.store.createPartitionStreams();
  readonly clock = new ManualClock();
  epoch = 1;
  private readonly overlapAfterMs: number;

  constructor(overlapAfterMs = 0) {
    this.overlapAfterMs = overlapAfterMs;
  }

  open(streams: ForwardingStreams['inner'] = this.store.session()): Promise<Partition> {
    this.epoch += 1;
    return Partition.open({
      partitionId: 7, streams, streamIds: this.ids, clock: this.clock, ownerEpoch: this.epoch, autoMaintenance: false, limits: { logAppendsInFlight: 3, logAppendOverlapAfterMs: this.overlapAfterMs },
    });
  }

  async openHeld(): Promise<{ partition: Partition; log: HeldLogStreams }> {
    const log = new HeldLogStreams(this.store.session(), this.ids.log);
    return { partition: await this.open(log), log };
  }
}

async function valueOf(partition: Partition, name: string): Promise<string | null> {
  const column = (await partition.get(Buffer.from(name)))?.columns[0]?.value;
  return column?.kind === 'string' ? column.value : null;
}

/** Lets the writer run until it has issued `count` log appends. */
async function issued(log: HeldLogStreams, count: number): Promise<void> {
  for (let turn = 0; turn < 100 && log.held.length < count; turn++) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(log.held.length, count, `${count} log appends in flight`);
}

/** Three Puts, each its own group (each issued before the next is queued). */
async function threeInFlight(partition: Partition, log: HeldLogStreams, acknowledged: string[]): Promise<Promise<unknown>[]> {
  const puts: Promise<unknown>[] = [];
  for (const [index, name] of ['a', 'b', 'c'].entries()) {
    puts.push(partition.put(Buffer.from(name), text(name)).then(() => acknowledged.push(name)));
    await issued(log, index + 1);
  }
  return puts;
}

describe('partition writer with pipelined log appends', () => {
  it('starts a second append only once the first has been in flight logAppendOverlapAfterMs; what queued meanwhile goes as one group', async () => {
    const fixture = new Fixture(5);
    const { partition, log } = await fixture.openHeld();
    const puts = [partition.put(Buffer.from('a'), text('a'))];
    await issued(log, 1);
    puts.push(partition.put(Buffer.from('b'), text('b')), partition.put(Buffer.from('c'), text('c')));
    await fixture.clock.advance(4);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(log.held.length, 1, 'b and c wait: the first append is younger than 5 ms');
    await fixture.clock.advance(1);
    await issued(log, 2);
    puts.push(partition.put(Buffer.from('d'), text('d')));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(log.held.length, 2, 'd waits for the second append to age');
    for (const index of [0, 1]) {
      await log.store(index);
      log.complete(index);
    }
    await issued(log, 3);
    await log.store(2);
    log.complete(2);
    await Promise.all(puts);
    const groups = log.held.map((append) => append.data.length);
    console.log(`log appends: ${groups.length} (a; b + c after 5 ms; d), bytes ${groups.join(', ')}`);
    assert.ok((groups[1] ?? 0) > (groups[0] ?? 0), 'b and c went as one group, larger than a alone');
    assert.equal(partition.stats().lastSequence, 4);
    await partition.close();
  });

  it('acknowledges in sequence order when appends complete in reverse; a reload replays the reordered log', async () => {
    const fixture = new Fixture();
    const { partition, log } = await fixture.openHeld();
    const acknowledged: string[] = [];
    const puts = await threeInFlight(partition, log, acknowledged);
    for (const index of [2, 1]) {
      await log.store(index);
      log.complete(index);
    }
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(acknowledged, [], 'b and c are durable but wait for a');
    assert.equal(await valueOf(partition, 'c'), null, 'nor are they published');
    await log.store(0);
    log.complete(0);
    await Promise.all(puts);
    assert.deepEqual(acknowledged, ['a', 'b', 'c']);
    assert.equal(partition.stats().lastSequence, 3);
    await partition.close();
    const reopened = await fixture.open();
    const stats = reopened.stats();
    console.log(`log stored c, b, a: replayed ${stats.recordsReplayed}, ${stats.reorderedApplied} after a lower sequence`);
    assert.deepEqual([await valueOf(reopened, 'a'), await valueOf(reopened, 'b'), await valueOf(reopened, 'c')], ['a', 'b', 'c']);
    assert.equal(stats.reorderedApplied, 2);
  });

  it('checks a group\u2019s conditions against the groups in flight', async () => {
    const fixture = new Fixture();
    const { partition, log } = await fixture.openHeld();
    const first = partition.put(Buffer.from('x'), text('1'));
    await issued(log, 1);
    // A read-evaluate-write caller read x absent (the Put in flight is not published) and writes on that.
    assert.equal(await valueOf(partition, 'x'), null);
    const exists = partition.put(Buffer.from('x'), text('2'), { ifNoneMatch: '*' });
    await issued(log, 1);
    await log.store(0);
    log.complete(0);
    await first;
    await assert.rejects(exists, (error) => isStorageError(error, 'partition.exists'));
    assert.equal(await valueOf(partition, 'x'), '1');
    await partition.close();
  });

  it('answers a condition that failed against a group in flight once that group is published, so a retry reads its row', async () => {
    const fixture = new Fixture();
    const { partition, log } = await fixture.openHeld();
    const first = partition.put(Buffer.from('x'), text('1'));
    await issued(log, 1);
    const refused = partition.put(Buffer.from('x'), text('2'), { ifNoneMatch: '*' }).then(
      () => assert.fail('If-None-Match: * on a row in flight succeeded'),
      async (error: unknown) => ({ error, valueThen: await valueOf(partition, 'x') }),
    );
    for (let turn = 0; turn < 20; turn++) await new Promise((resolve) => setImmediate(resolve));
    await log.store(0);
    log.complete(0);
    await first;
    const { error, valueThen } = await refused;
    console.log(`refused with ${isStorageError(error) ? error.code : String(error)}; a read right after the refusal sees x = ${valueThen}`);
    assert.ok(isStorageError(error, 'partition.exists'));
    assert.equal(valueThen, '1', 'the refusal is answered after the row it failed against is published');
    await partition.close();
  });

  for (const firstLanded of [false, true]) {
    it(`the first in-flight append fails (${firstLanded ? 'its record stored' : 'nothing stored'}), the second succeeds: neither acknowledged, a reload applies ${firstLanded ? 'both' : 'neither'}`, async () => {
      const fixture = new Fixture();
      const { partition, log } = await fixture.openHeld();
      const acknowledged: string[] = [];
      const puts = await threeInFlight(partition, log, acknowledged);
      await log.store(1);
      log.complete(1);
      if (firstLanded) await log.store(0);
      log.fail(0);
      const outcomes = await Promise.allSettled(puts.slice(0, 2));
      assert.deepEqual(outcomes.map((outcome) => outcome.status === 'rejected' && isStorageError(outcome.reason, 'partition.unavailable')), [true, true]);
      await assert.rejects(puts[2] as Promise<unknown>, (error) => isStorageError(error, 'partition.unavailable'));
      assert.deepEqual(acknowledged, []);
      await assert.rejects(partition.get(Buffer.from('a')), (error) => isStorageError(error, 'partition.unavailable'));
      const reopened = await fixture.open();
      const values = [await valueOf(reopened, 'a'), await valueOf(reopened, 'b'), await valueOf(reopened, 'c')];
      assert.deepEqual(values, firstLanded ? ['a', 'b', null] : [null, null, null]);
      const stats = reopened.stats();
      console.log(`first ${firstLanded ? 'stored' : 'lost'}: reload has ${JSON.stringify(values)}, ${stats.unacknowledgedDropped} unacknowledged dropped`);
      assert.equal((await reopened.put(Buffer.from('z'), text('z'))).sequence, firstLanded ? 3 : 1, 'sequences continue after the prefix');
      await reopened.close();
    });
  }

  it('a checkpoint while a group stored before the last completed append is in flight keeps that group\u2019s record', async () => {
    const fixture = new Fixture();
    const { partition, log } = await fixture.openHeld();
    const acknowledged: string[] = [];
    const puts = await threeInFlight(partition, log, acknowledged);
    // Stored b, c, a (a was refused overloaded and retried); b then a complete (the last completed
    // append, a's, ends after c's record); c still in flight.
    for (const index of [1, 2, 0]) await log.store(index);
    log.complete(1);
    log.complete(0);
    await Promise.all(puts.slice(0, 2));
    await partition.checkpoint();
    log.complete(2);
    await puts[2];
    assert.deepEqual(acknowledged, ['a', 'b', 'c']);
    await partition.close();
    const reopened = await fixture.open();
    assert.equal(await valueOf(reopened, 'c'), 'c', 'acknowledged c is replayed: it lies before a\u2019s end, after the checkpoint\u2019s logStart');
    assert.equal(reopened.stats().lastSequence, 3);
  });
});
