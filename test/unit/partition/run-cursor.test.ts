// RunCursor's read-ahead and scan cache (src/partition/cursors.ts) against the plain cursor and a
// sorted-array model: seeded random walks of seeks and steps over a run of ~150 small blocks
// must yield the same keys and row bytes with read-ahead on (blocks in flight, a small fill
// cache, random rowsWanted) as with it off, and the model's keys; a block that cannot be read
// (stream.unavailable) or fails its CRC (wire.corrupt) must fail the cursor exactly when it
// moves onto that block, never earlier, and a read-ahead a seek abandoned must not surface as an
// unhandled rejection (node:test fails the file if one does).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MergeCursor, RunCursor, wholeRunReads } from '../../../src/partition/cursors.ts';
import type { RunCursorReads, SourceCursor } from '../../../src/partition/cursors.ts';
import type { BlockRows, RunReader } from '../../../src/partition/run-reader.ts';
import { RunWriter } from '../../../src/partition/run-writer.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { StorageError, isStorageError } from '../../../src/util/errors.ts';
import { LruCache } from '../../../src/util/lru-cache.ts';
import { SeededRandom } from '../../../src/util/random.ts';
import { ForwardingStreams, MemoryStreamStore } from '../../helpers/memory-partition-streams.ts';

const rowCount = 600;

function keyOf(index: number): string {
  return `k/${String(index * 3).padStart(5, '0')}`;
}

/** Streams whose reads of one location fail (unavailable) or come back with a flipped bit. */
class DamagingStreams extends ForwardingStreams {
  damaged: { readonly offset: number; readonly extentId: number; readonly how: 'unavailable' | 'flip' } | null = null;
  reads = 0;

  override async read(streamId: number, extentId: number, offset: number, length: number): Promise<Buffer> {
    this.reads += 1;
    const bytes = await this.inner.read(streamId, extentId, offset, length);
    const damaged = this.damaged;
    if (damaged === null || damaged.extentId !== extentId || damaged.offset !== offset) return bytes;
    if (damaged.how === 'unavailable') throw new StorageError('stream.unavailable', 'injected read failure', { retryable: true });
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0x10;
    return bytes;
  }
}

async function writeRun(): Promise<{ reader: RunReader; streams: DamagingStreams }> {
  const store = new MemoryStreamStore({ extentBytesMax: 64 * 1024 });
  const ids = store.createPartitionStreams();
  const streams = new DamagingStreams(store.session());
  let runId = 1;
  const writer = new RunWriter({
    streams, streamId: ids.checkpoint, partitionId: 1, clock: new ManualClock(), allocateRunId: () => runId++, coveredSequence: rowCount,
    logStart: { extentId: 0, offset: 0 }, blockBytesTarget: 200, runBytesMax: 1 << 30,
  });
  for (let index = 0; index < rowCount; index++) {
    const key = keyOf(index);
    await writer.add(key, index % 11 === 5
      ? { kind: 'tombstone', key: Buffer.from(key, 'latin1'), sequence: index + 1, lastModifiedMs: 1 }
      : { kind: 'live', key: Buffer.from(key, 'latin1'), sequence: index + 1, lastModifiedMs: 1, etag: `0x${index + 1}`, columns: [{ name: 'v', value: { kind: 'string', value: `value ${index}` } }] });
  }
  const [finished] = await writer.finish();
  assert.ok(finished !== undefined);
  return { reader: finished.reader, streams };
}

type Step = { readonly kind: 'seek'; readonly key: string; readonly inclusive: boolean } | { readonly kind: 'next'; readonly count: number };

function randomSteps(random: SeededRandom, count: number): Step[] {
  const steps: Step[] = [];
  for (let index = 0; index < count; index++) {
    steps.push(random.int(3) === 0
      ? { kind: 'seek', key: keyOf(random.int(rowCount + 20) - 10).slice(0, 2 + random.int(6)), inclusive: random.int(2) === 0 }
      : { kind: 'next', count: 1 + random.int(random.int(4) === 0 ? 400 : 30) });
  }
  return steps;
}

/** Runs the steps; the trace is every key (and row bytes) the cursor stood on, or where it failed. */
async function walk(cursor: SourceCursor, steps: readonly Step[]): Promise<{ trace: string[]; failure: string | null }> {
  const trace: string[] = [];
  try {
    for (const step of steps) {
      if (step.kind === 'seek') {
        await cursor.seek(step.key, step.inclusive);
        trace.push(`seek ${cursor.key() ?? 'end'}`);
        continue;
      }
      for (let moved = 0; moved < step.count && cursor.key() !== null; moved++) {
        if (!cursor.nextInMemory()) await cursor.next();
        trace.push(`${cursor.key() ?? 'end'} ${cursor.encoded()?.toString('hex') ?? ''}`);
      }
    }
    return { trace, failure: null };
  } catch (error) {
    return { trace, failure: isStorageError(error) ? error.code : String(error) };
  }
}

function plainReads(): RunCursorReads {
  return { cache: null, fill: null, aheadBlocks: 0, rowsWanted: Number.POSITIVE_INFINITY };
}

function aheadReads(random: SeededRandom): RunCursorReads {
  const fill = new LruCache<string, BlockRows>(random.int(3) === 0 ? 1 : 4096);
  return { cache: null, fill, aheadBlocks: 1 + random.int(6), rowsWanted: random.int(2) === 0 ? Number.POSITIVE_INFINITY : 1 + random.int(60) };
}

/** What the model says the cursor walks: every key in order (tombstones included: a run cursor yields them). */
function modelKeys(steps: readonly Step[]): string[] {
  const keys = Array.from({ length: rowCount }, (_, index) => keyOf(index));
  const trace: string[] = [];
  let at = keys.length;
  for (const step of steps) {
    if (step.kind === 'seek') {
      at = keys.findIndex((key) => (step.inclusive ? key >= step.key : key > step.key));
      if (at === -1) at = keys.length;
      trace.push(`seek ${keys[at] ?? 'end'}`);
      continue;
    }
    for (let moved = 0; moved < step.count && at < keys.length; moved++) {
      at += 1;
      trace.push(keys[at] ?? 'end');
    }
  }
  return trace;
}

describe('RunCursor read-ahead', () => {
  it('walks exactly as the plain cursor and the model over random seeks and steps', async (t) => {
    const { reader, streams } = await writeRun();
    assert.ok(reader.blockCount > 100, `the run has many blocks (${reader.blockCount})`);
    const random = new SeededRandom(20261122);
    let plainReadsTotal = 0;
    let aheadReadsTotal = 0;
    let stepsTotal = 0;
    for (let walkIndex = 0; walkIndex < 60; walkIndex++) {
      const steps = [{ kind: 'seek', key: '', inclusive: true } as const, ...randomSteps(random, 12)];
      stepsTotal += steps.length;
      const before = streams.reads;
      const plain = await walk(new RunCursor(reader, plainReads()), steps);
      const between = streams.reads;
      const ahead = await walk(new RunCursor(reader, aheadReads(random)), steps);
      plainReadsTotal += between - before;
      aheadReadsTotal += streams.reads - between;
      assert.equal(plain.failure, null);
      assert.equal(ahead.failure, null);
      assert.deepEqual(ahead.trace, plain.trace, `walk ${walkIndex}`);
      assert.deepEqual(plain.trace.map((line) => line.split(' ').slice(0, line.startsWith('seek') ? 2 : 1).join(' ')), modelKeys(steps), `walk ${walkIndex} against the model`);
    }
    t.diagnostic(`60 walks, ${stepsTotal} steps over ${reader.blockCount} blocks: block reads ${plainReadsTotal} plain, ${aheadReadsTotal} with read-ahead and a fill cache`);
  });

  it('fails on a damaged block exactly where the plain cursor does, never before', async (t) => {
    const { reader, streams } = await writeRun();
    const random = new SeededRandom(7);
    const failures = new Map<string, number>();
    for (let round = 0; round < 40; round++) {
      const blockIndex = random.int(reader.blockCount);
      const location = (reader as unknown as { index: ReadonlyArray<{ location: { extentId: number; offset: number } }> }).index[blockIndex]?.location;
      assert.ok(location !== undefined);
      const how = random.int(2) === 0 ? 'unavailable' : 'flip';
      streams.damaged = { extentId: location.extentId, offset: location.offset, how };
      const steps = [{ kind: 'seek', key: '', inclusive: true } as const, ...randomSteps(random, 10), { kind: 'seek', key: '', inclusive: true } as const, { kind: 'next', count: rowCount } as const];
      const plain = await walk(new RunCursor(reader, plainReads()), steps);
      const ahead = await walk(new RunCursor(reader, aheadReads(random)), steps);
      assert.deepEqual(ahead.trace, plain.trace, `round ${round}`);
      assert.equal(ahead.failure, plain.failure, `round ${round}`);
      assert.equal(plain.failure, how === 'unavailable' ? 'stream.unavailable' : 'wire.corrupt', `round ${round}: the last step walks over block ${blockIndex}`);
      failures.set(plain.failure, (failures.get(plain.failure) ?? 0) + 1);
    }
    streams.damaged = null;
    t.diagnostic(`40 damaged blocks: ${[...failures].map(([code, count]) => `${count} ${code}`).join(', ')}, each at the same step with and without read-ahead`);
  });

  it('compaction reads (wholeRunReads) merge two runs as the plain cursors do', async () => {
    const first = await writeRun();
    const second = await writeRun();
    const keys = async (reads: () => RunCursorReads): Promise<string[]> => {
      const merge = new MergeCursor([new RunCursor(first.reader, reads()), new RunCursor(second.reader, reads())]);
      const seen: string[] = [];
      await merge.seek('', true);
      for (let key = merge.key(); key !== null; key = merge.key()) {
        seen.push(key);
        await merge.next();
      }
      return seen;
    };
    const plain = await keys(plainReads);
    assert.equal(plain.length, rowCount);
    assert.deepEqual(await keys(() => wholeRunReads(4)), plain);
  });
});
