// `node --expose-gc bench/partition/checkpoint-cpu.ts [--rows 15000] [--body-bytes 4096] [--rounds 5]`:
// the CPU a checkpoint costs per row, and what a written run keeps alive. Each round opens a
// partition on in-memory streams with the blob tables' inline bodies (blobInlineData), writes
// --rows blob rows shaped as a small Put Blob writes them (benchmark columns + an inline body of
// --body-bytes; 0: no body, nothing to spill) in 250-row transactions, then times checkpoint()
// (process CPU; each append is copied once and kept whole, as a stream layer copies it into a
// frame: the tests' MemoryStreamStore joins an extent's appends and would dominate). Prints µs per row
// (min and median of the rounds), the same for a major compaction of the run it wrote (every row
// read from its blocks and written again), and, with --expose-gc, the external memory held after the
// checkpoint and a full GC beyond the streams' own bytes (a run's index holding views of the
// frozen memtable's 1 MiB slabs shows here). No I/O, no stream layer: the steadier figure for
// changes to the checkpoint path on a shared machine.
import { blobInlineData } from '../../src/frontend/blob-service/blob-table-schema.ts';
import { Partition } from '../../src/partition/partition.ts';
import type { PartitionStreamIds, PartitionStreams, StreamAppendPosition, StreamExtent } from '../../src/partition/partition-streams.ts';
import { bodyBytes, type Body } from '../../src/util/body-parts.ts';
import { ManualClock } from '../../src/util/clock.ts';
import type { Column } from '../../src/wire/partition-row.ts';
import { headerUsage, parseBenchArgs } from '../lib/cli-args.ts';
import { blobColumns, blobKey } from './rows.ts';

const values = parseBenchArgs(headerUsage(import.meta.url), {
  rows: { type: 'string', default: '15000' }, 'body-bytes': { type: 'string', default: '4096' }, rounds: { type: 'string', default: '5' },
});
const rows = Number(values.rows);
const inlineBodyBytes = Number(values['body-bytes']);
const rounds = Number(values.rounds);
if (!Number.isSafeInteger(rows) || rows < 1 || rows > 200_000) throw new Error('--rows must be 1..200000');
if (!Number.isSafeInteger(inlineBodyBytes) || inlineBodyBytes < 0 || inlineBodyBytes > 16_384) throw new Error('--body-bytes must be 0..16384');
if (!Number.isSafeInteger(rounds) || rounds < 1 || rounds > 50) throw new Error('--rounds must be 1..50');
const gc = (globalThis as { gc?: () => void }).gc;

/** Full GCs until external memory stops falling (ArrayBuffers are freed after the GC that finds them dead); null without --expose-gc. */
async function externalBytesSettled(): Promise<number | null> {
  if (gc === undefined) return null;
  let last = Number.POSITIVE_INFINITY;
  for (let pass = 0; pass < 10; pass++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
    const now = process.memoryUsage().arrayBuffers;
    if (now >= last) return now;
    last = now;
  }
  return last;
}

function putBlobColumns(index: number, body: Buffer): Column[] {
  const columns = blobColumns(index).filter((column) => column.name !== 'blocks');
  return inlineBodyBytes === 0 ? columns : [...columns, { name: 'body', value: { kind: 'bytes', value: body } }];
}

/** Streams whose every append is an extent of its own, its bytes copied once (no join, no I/O); the tail is always empty. */
class AppendListStreams implements PartitionStreams {
  readonly ids: PartitionStreamIds = { meta: 1, log: 2, checkpoint: 3, data: 4 };
  private readonly extentsByStream = new Map<number, Map<number, Buffer>>();
  private nextExtentId = 1;
  bytes = 0;

  append(streamId: number, data: Body): Promise<StreamAppendPosition> {
    const copy = Buffer.from(bodyBytes(data));
    const extentId = this.nextExtentId++;
    this.extentsOf(streamId).set(extentId, copy);
    this.bytes += copy.length;
    return Promise.resolve({ extentId, offset: 0, length: copy.length });
  }

  read(streamId: number, extentId: number, offset: number, length: number): Promise<Buffer> {
    const extent = this.extentsOf(streamId).get(extentId);
    if (extent === undefined || offset + length > extent.length) return Promise.reject(new Error(`no bytes at ${extentId}:${offset}+${length}`));
    return Promise.resolve(Buffer.from(extent.subarray(offset, offset + length)));
  }

  extents(streamId: number): Promise<readonly StreamExtent[]> {
    const sealed = [...this.extentsOf(streamId)].map(([extentId, bytes]): StreamExtent => ({ extentId, state: { kind: 'sealed', length: bytes.length } }));
    return Promise.resolve([...sealed, { extentId: 0, state: { kind: 'open' } }]); // an empty tail: the next append's extent
  }

  sealTail(): Promise<void> {
    return Promise.resolve();
  }

  dropExtents(streamId: number, extentIds: readonly number[]): Promise<void> {
    for (const extentId of extentIds) this.extentsOf(streamId).delete(extentId);
    return Promise.resolve();
  }

  private extentsOf(streamId: number): Map<number, Buffer> {
    const extents = this.extentsByStream.get(streamId) ?? new Map<number, Buffer>();
    this.extentsByStream.set(streamId, extents);
    return extents;
  }
}

/** One round: µs of CPU per row of the checkpoint and of a compaction of its run, and MiB held beyond the streams after the checkpoint. */
async function round(): Promise<{ microsPerRow: number; compactionMicrosPerRow: number; heldMiB: number | null }> {
  const baseline = await externalBytesSettled();
  const streams = new AppendListStreams();
  const partition = await Partition.open({
    partitionId: 1, streams, streamIds: streams.ids, clock: new ManualClock(), ownerEpoch: 1, autoMaintenance: false,
    inlineData: blobInlineData, limits: { memtableBytesMax: 1024 * 1024 * 1024 },
  });
  const body = Buffer.alloc(inlineBodyBytes, 0x5a);
  for (let first = 0; first < rows; first += 250) {
    const ops = [];
    for (let index = first; index < Math.min(rows, first + 250); index++) ops.push({ kind: 'put' as const, key: blobKey('photos', index), columns: putBlobColumns(index, body) });
    await partition.transact(ops);
  }
  const before = process.cpuUsage();
  await partition.checkpoint();
  const cpu = process.cpuUsage(before);
  const after = await externalBytesSettled();
  const heldMiB = after === null || baseline === null ? null : (after - baseline - streams.bytes) / 1024 / 1024;
  // A second run of one row, then a major compaction of both: every row read from a run and written again.
  await partition.transact([{ kind: 'put', key: blobKey('photos', rows), columns: putBlobColumns(rows, body) }]);
  await partition.checkpoint();
  const beforeCompaction = process.cpuUsage();
  await partition.compact();
  const compaction = process.cpuUsage(beforeCompaction);
  await partition.close();
  return { microsPerRow: (cpu.user + cpu.system) / rows, compactionMicrosPerRow: (compaction.user + compaction.system) / (rows + 1), heldMiB };
}

const results = [];
for (let index = 0; index < rounds; index++) results.push(await round());
/** "min µs/row min, median median" of the rounds' figures. */
function minAndMedian(values: readonly number[]): string {
  const sorted = [...values].sort((a, b) => a - b);
  return `${(sorted[0] ?? 0).toFixed(2)} µs/row min, ${(sorted[Math.floor(sorted.length / 2)] ?? 0).toFixed(2)} median`;
}

const held = results.map((result) => result.heldMiB).filter((value) => value !== null);
console.log(`checkpoint of ${rows} rows (inline body ${inlineBodyBytes} B), ${rounds} rounds: ${minAndMedian(results.map((result) => result.microsPerRow))}; ` +
  `external memory held after it beyond the streams: ${held.length === 0 ? 'n/a (run with --expose-gc)' : held.map((value) => value.toFixed(1)).join(' / ')} MiB; ` +
  `compaction of its run: ${minAndMedian(results.map((result) => result.compactionMicrosPerRow))}`);
