// `node bench/partition/scan-page.ts [--rows N] [--uncached]`: CPU per row of the server's part
// of a listing alone: `Partition.scanEncoded` pages of 5,000 benchmark rows over runs whose
// blocks are all in the block cache (in-memory streams, no I/O after the first pass), then
// `encodeScanItems`, as `partition.scan` answers. `--uncached`: no block is kept, so every block
// is read again from the in-memory streams, checked and split (the partition's side of a 1M-row
// listing; no stream layer). Best of 8 passes over the whole table. The steadier figure for
// changes to the server's scan on a shared machine (decode-page.ts is the client's part).
import { Partition } from '../../src/partition/partition.ts';
import { encodeScanItems } from '../../src/partition/partition-rpc.ts';
import { headerUsage, parseBenchArgs } from '../lib/cli-args.ts';
import { ManualClock } from '../../src/util/clock.ts';
import { MemoryStreamStore } from '../../test/helpers/memory-partition-streams.ts';
import { blobColumns, blobKey, containerPrefix } from './rows.ts';

const pageRows = 5_000;
const passes = 8;

const values = parseBenchArgs(headerUsage(import.meta.url), { rows: { type: 'string', default: '100000' }, uncached: { type: 'boolean', default: false } });
const cacheBytes = values.uncached ? 1 : 1024 * 1024 * 1024;
const rows = Number(values.rows);
if (!Number.isSafeInteger(rows) || rows < pageRows || rows > 1_000_000) throw new Error(`--rows must be ${pageRows}..1000000`);

const store = new MemoryStreamStore({ extentBytesMax: 64 * 1024 * 1024 });
const partition = await Partition.open({
  partitionId: 1, streams: store.session(), streamIds: store.createPartitionStreams(), clock: new ManualClock(), ownerEpoch: 1,
  autoMaintenance: false, limits: { blockCacheBytesMax: cacheBytes, scanBlockCacheBytesMax: cacheBytes },
});
for (let first = 0; first < rows; first += 250) {
  const ops = [];
  for (let index = first; index < Math.min(rows, first + 250); index++) ops.push({ kind: 'put' as const, key: blobKey('list', index), columns: blobColumns(index) });
  await partition.transact(ops);
}
await partition.checkpoint();
await partition.compact();

/** CPU microseconds per row of one listing of every row; also checks the count. */
async function pass(): Promise<number> {
  const before = process.cpuUsage();
  let listed = 0;
  let bytes = 0;
  let continuation: string | null = null;
  do {
    const page: Awaited<ReturnType<Partition['scanEncoded']>> = await partition.scanEncoded({ prefix: containerPrefix('list'), limit: pageRows, ...(continuation === null ? {} : { continuation }) });
    bytes += encodeScanItems(page.items).length;
    listed += page.items.length;
    continuation = page.continuation;
  } while (continuation !== null);
  const cpu = process.cpuUsage(before);
  if (listed !== rows || bytes === 0) throw new Error(`listed ${listed} rows, expected ${rows}`);
  return (cpu.user + cpu.system) / rows;
}

let best = Infinity;
for (let index = 0; index < passes; index++) best = Math.min(best, await pass());
await partition.close();
console.log(`server scan of ${rows} rows in pages of ${pageRows} (blocks ${values.uncached ? 'read, checked and split every time' : 'cached'}), best of ${passes}: ${best.toFixed(2)} µs/row`);
