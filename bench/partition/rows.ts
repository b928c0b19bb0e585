// Blob-property rows for the partition benchmark, shaped as the Blob service writes them
// (docs/blob-schema.md): key `B <account> \0 <container> \0 <incarnation> \0 <name>`, columns
// type, created, size, contentType, contentMd5, tier, metadata and a one-block committed block
// list, about 300 bytes encoded. Keys are numbered so any row can be named again for a read.
import { encodeRow } from '../../src/wire/partition-row.ts';
import type { Column } from '../../src/wire/partition-row.ts';

const incarnation = '00f1e2d3c4b5a697';

/** Key of row `index` in `container`: names sort in index order (zero-padded). */
export function blobKey(container: string, index: number): Buffer {
  const name = `photos/2026/${String(index % 1000).padStart(3, '0')}/img-${String(index).padStart(9, '0')}.jpg`;
  return Buffer.from(`Bbenchaccount\0${container}\0${incarnation}\0${name}`, 'latin1');
}

/** The key prefix every row of `container` starts with. */
export function containerPrefix(container: string): Buffer {
  return Buffer.from(`Bbenchaccount\0${container}\0${incarnation}\0`, 'latin1');
}

/** Committed block list with one unnamed block and one data ref (docs/blob-schema.md). */
function blockList(size: number, index: number): Buffer {
  const bytes = Buffer.alloc(4 + 1 + 8 + 4 + 24);
  bytes.writeUInt32BE(1, 0);
  bytes.writeUInt8(0, 4);
  bytes.writeBigUInt64BE(BigInt(size), 5);
  bytes.writeUInt32BE(1, 13);
  bytes.writeBigUInt64BE(BigInt(1 + (index >> 10)), 17);
  bytes.writeBigUInt64BE(BigInt(index * 4096), 25);
  bytes.writeBigUInt64BE(BigInt(size), 33);
  return bytes;
}

/** Columns of every benchmark row. */
export const blobColumnCount = 8;

export function blobColumns(index: number): Column[] {
  const size = 4096 + (index % 65536);
  const md5 = Buffer.alloc(16);
  md5.writeUInt32BE(index >>> 0, 0);
  return [
    { name: 'type', value: { kind: 'string', value: 'BlockBlob' } },
    { name: 'created', value: { kind: 'int64', value: 1_790_000_000_000n + BigInt(index) } },
    { name: 'size', value: { kind: 'int64', value: BigInt(size) } },
    { name: 'contentType', value: { kind: 'string', value: 'image/jpeg' } },
    { name: 'contentMd5', value: { kind: 'bytes', value: md5 } },
    { name: 'tier', value: { kind: 'string', value: 'Hot' } },
    { name: 'metadata', value: { kind: 'string', value: '[["camera","x100"]]' } },
    { name: 'blocks', value: { kind: 'bytes', value: blockList(size, index) } },
  ];
}

/** Encoded size of a typical row (row codec, as stored in the log and in run blocks). */
export function typicalRowBytes(): number {
  return encodeRow({ kind: 'live', key: blobKey('list', 123_456), sequence: 123_456, lastModifiedMs: Date.now(), etag: '0x1E240', columns: blobColumns(123_456) }).length;
}
