// `node bench/partition/decode-page.ts`: CPU per row of a PartitionClient decoding one scan page
// of 5,000 benchmark rows (encodeScanItems -> decodeScanItems, no I/O, no server), reading the
// keys only and then every column, best of 8 trials of 30 pages each. A steadier figure than the
// full benchmark's listing on a shared machine: what the client's part of a listing costs.
import { decodeScanItems, encodeScanItems } from '../../src/partition/partition-rpc.ts';
import { headerUsage, parseBenchArgs } from '../lib/cli-args.ts';
import { encodeRow } from '../../src/wire/partition-row.ts';
import { blobColumns, blobKey } from './rows.ts';

parseBenchArgs(headerUsage(import.meta.url), {});

const pageRows = 5_000;
const pagesPerTrial = 30;
const trials = 8;

const items = Array.from({ length: pageRows }, (_, index) => ({
  kind: 'encoded' as const,
  bytes: encodeRow({ kind: 'live', key: blobKey('list', index), sequence: index + 1, lastModifiedMs: 1_790_000_000_000 + index, etag: `0x${(index + 1).toString(16)}`, columns: blobColumns(index) }),
}));
const body = encodeScanItems(items);

/** CPU microseconds per row of decoding `pagesPerTrial` pages (and reading columns if asked). */
function trial(readColumns: boolean): number {
  let touched = 0;
  const before = process.cpuUsage();
  for (let page = 0; page < pagesPerTrial; page++) {
    for (const item of decodeScanItems(body)) {
      if (item.kind !== 'row') throw new Error('a page of rows holds a prefix');
      touched += item.row.key.length;
      if (readColumns) for (const column of item.row.columns) touched += column.name.length;
    }
  }
  const cpu = process.cpuUsage(before);
  if (touched === 0) throw new Error('nothing decoded');
  return (cpu.user + cpu.system) / (pagesPerTrial * pageRows);
}

let keysOnly = Infinity;
let everyColumn = Infinity;
for (let index = 0; index < trials; index++) {
  keysOnly = Math.min(keysOnly, trial(false));
  everyColumn = Math.min(everyColumn, trial(true));
}
console.log(`page of ${pageRows} rows (${body.length} bytes), best of ${trials}: keys only ${keysOnly.toFixed(2)} µs/row, every column read ${everyColumn.toFixed(2)} µs/row`);
