// Replay of a commit log that a pipelined writer stored out of sequence order
// (docs/formats/partition-log.md, "Pipelined log appends"): records are
// written straight into the log stream in the orders a writer with D appends in flight can leave
// (each record after every record issued D or more before it, duplicates, records after one
// whose append failed), and every load is checked against a model: the partition holds exactly
// the longest gap-free prefix of sequences, which includes every acknowledged batch, each once.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendBytesMax, partitionLogReorderAppendsMax } from '../../../src/constants.ts';
import { Partition } from '../../../src/partition/partition.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import { SeededRandom } from '../../../src/util/random.ts';
import { encodeLogRecord } from '../../../src/wire/partition-log.ts';
import type { Column } from '../../../src/wire/partition-row.ts';
import { MemoryStreamStore } from '../../helpers/memory-partition-streams.ts';

const partitionId = 7;
const keyCount = 5;

function text(value: string): Column[] {
  return [{ name: 'v', value: { kind: 'string', value } }];
}

/** A record of one batch: key k<sequence mod keyCount> = `<epoch>:<sequence>`, padded by `padBytes`. */
function logRecord(sequence: number, ownerEpoch: number, padBytes = 0): Buffer {
  const value = `${ownerEpoch}:${sequence}${'.'.repeat(padBytes)}`;
  const row = { kind: 'live' as const, key: Buffer.from(`k${sequence % keyCount}`), sequence, lastModifiedMs: 1, etag: `"${sequence}"`, columns: text(value) };
  return encodeLogRecord({ partitionId, sequence, ownerEpoch, rows: [row] });
}

class Fixture {
  readonly store: MemoryStreamStore;
  readonly ids;
  readonly clock = new ManualClock();

  constructor(extentBytesMax = 4096) {
    this.store = new MemoryStreamStore({ extentBytesMax });
    this.ids = this.store.createPartitionStreams();
  }

  write(records: readonly Buffer[]): void {
    for (const record of records) this.store.append(this.ids.log, record);
  }

  open(ownerEpoch: number): Promise<Partition> {
    return Partition.open({ partitionId, streams: this.store.session(), streamIds: this.ids, clock: this.clock, ownerEpoch, autoMaintenance: false });
  }
}

/** The value each key holds after applying sequences 1..last of epoch 1. */
function modelValues(last: number): Map<string, string> {
  const values = new Map<string, string>();
  for (let sequence = 1; sequence <= last; sequence++) values.set(`k${sequence % keyCount}`, `1:${sequence}`);
  return values;
}

async function partitionValues(partition: Partition): Promise<Map<string, string>> {
  const values = new Map<string, string>();
  for (let index = 0; index < keyCount; index++) {
    const column = (await partition.get(Buffer.from(`k${index}`)))?.columns[0]?.value;
    if (column?.kind === 'string') values.set(`k${index}`, column.value);
  }
  return values;
}

/**
 * One writer's history: batches 1..issued with `depth` appends in flight; the append of `failed`
 * (if any) never landed, those after it landed or not at random, nothing after failed + depth − 1
 * was issued. Stored order: each record after every record issued `depth` or more before it (sort
 * key sequence + u, u in [0, depth − 1)), some stored twice. Acknowledged: the batches before `failed`.
 */
function history(random: SeededRandom, depth: number): { records: Buffer[]; acknowledged: number; stored: Set<number> } {
  const issued = 10 + random.int(30);
  const failed = random.int(3) === 0 ? null : 1 + random.int(issued);
  const last = failed === null ? issued : Math.min(issued, failed + depth - 1);
  const stored = new Set<number>();
  for (let sequence = 1; sequence <= last; sequence++) {
    if (failed === null || sequence < failed || (sequence > failed && random.int(2) === 0)) stored.add(sequence);
  }
  const placed = [...stored].map((sequence) => ({ sequence, at: sequence + random.int(1000) / 1000 * (depth - 1) }));
  for (const copy of [...placed]) if (random.int(8) === 0) placed.push({ sequence: copy.sequence, at: copy.at + random.int(1000) / 1000 * (depth - 1) });
  placed.sort((a, b) => a.at - b.at);
  return { records: placed.map(({ sequence }) => logRecord(sequence, 1)), acknowledged: failed === null ? issued : failed - 1, stored };
}

function gapFreePrefix(stored: ReadonlySet<number>): number {
  let last = 0;
  while (stored.has(last + 1)) last += 1;
  return last;
}

describe('commit-log replay with reordered records', () => {
  it('applies the gap-free prefix of any order a pipelined writer can store, every acknowledged batch once', async () => {
    const random = new SeededRandom(20261123);
    let reordered = 0;
    let dropped = 0;
    let acknowledgedChecked = 0;
    const runs = 150;
    for (let run = 0; run < runs; run++) {
      const depth = 2 + random.int(partitionLogReorderAppendsMax - 1);
      const { records, acknowledged, stored } = history(random, depth);
      const fixture = new Fixture();
      fixture.write(records);
      const partition = await fixture.open(2);
      const last = gapFreePrefix(stored);
      assert.ok(last >= acknowledged, 'every acknowledged batch is in the prefix');
      assert.equal(partition.stats().lastSequence, last, `run ${run}: depth ${depth}, ${records.length} records`);
      assert.deepEqual(await partitionValues(partition), modelValues(last), `run ${run}`);
      assert.equal((await partition.put(Buffer.from('next'), text('n'))).sequence, last + 1, 'the next batch continues the prefix');
      reordered += partition.stats().reorderedApplied;
      dropped += partition.stats().unacknowledgedDropped;
      acknowledgedChecked += acknowledged;
      await partition.close();
    }
    console.log(`${runs} histories: ${acknowledgedChecked} acknowledged batches all replayed, ${reordered} records applied after a lower sequence, ${dropped} unacknowledged dropped`);
    assert.ok(reordered > 0 && dropped > 0, 'both paths taken');
  });

  it('drops an older owner\u2019s records after its gap once a newer owner wrote the missing sequence', async () => {
    const fixture = new Fixture();
    // Epoch 1: 1 and 2 acknowledged; 3 never landed; 4 landed (not acknowledged).
    fixture.write([logRecord(1, 1), logRecord(2, 1), logRecord(4, 1)]);
    const second = await fixture.open(2);
    assert.equal(second.stats().lastSequence, 2);
    assert.equal(second.stats().unacknowledgedDropped, 1);
    await second.put(Buffer.from('k3'), text('2:3'));
    await second.put(Buffer.from('k4'), text('2:4'));
    await second.close();
    const third = await fixture.open(3);
    assert.equal(third.stats().lastSequence, 4);
    const values = await partitionValues(third);
    assert.equal(values.get('k4'), '2:4', 'epoch 2\u2019s sequence 4, not epoch 1\u2019s');
    assert.equal(values.get('k3'), '2:3');
    console.log(`third owner: ${JSON.stringify({ replayed: third.stats().recordsReplayed, fenced: third.stats().fencedSkipped, dropped: third.stats().unacknowledgedDropped })}`);
  });

  it('refuses a gap followed by more records than a pipelined writer can leave (a lost record)', async () => {
    const padBytes = Math.floor(appendBytesMax * 0.45);
    const recordBytes = logRecord(3, 1, padBytes).length;
    const heldBytesMax = (partitionLogReorderAppendsMax - 1) * appendBytesMax;
    const fits = Math.floor(heldBytesMax / recordBytes);
    const afterGap = (count: number): Buffer[] => [logRecord(1, 1), ...Array.from({ length: count }, (_, index) => logRecord(3 + index, 1, padBytes))];
    const fixture = new Fixture(16 * appendBytesMax);
    fixture.write(afterGap(fits));
    const within = await fixture.open(2);
    assert.equal(within.stats().lastSequence, 1, `${fits} records of ${recordBytes} bytes after the gap: held, then dropped`);
    await within.close();
    const beyond = new Fixture(16 * appendBytesMax);
    beyond.write(afterGap(fits + 1));
    await assert.rejects(beyond.open(2), (error) => isStorageError(error, 'partition.corrupt'));
  });
});
