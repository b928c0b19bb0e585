// What the blob tables tell the partition layer (src/partition/table-schema.ts): where their rows
// keep data refs, for data GC (docs/partition-gc.md, "References"), which rows must stay in
// one partition, for splits (docs/blob-schema.md, "Partition locality"), and the inline bodies a
// checkpoint moves to the data stream (docs/blob-schema.md, "Inline bodies").
// blobInlineData: a row's `body` column (bytes, 1..inlineBodyBytesLimit) is the content of one
// unnamed block; spilled, the row holds instead the v2 inline list of that one block
// (blockIndex + blockRefs = [ref]), exactly what Put Blob writes without inlining, so every reader
// sees the same size and bytes, and data GC sees the ref from then on.
//
// Invariants: schema v2 rows keep every content ref in dataRefs columns (the column default
// lists them); a v1 block-list row (`blocks` bytes / `blockListRefs` document, refs inside) is
// opaque. blobSplitBoundary(key) is ≥ key, idempotent, and no blob has rows on both sides of it:
// a key inside a blob's range (a 0x00 after the name) maps to K(blob) 0x01, above the range
// K(blob), K(blob) 0x00 …, and below every other name (names hold no control characters); a
// graveyard row C <account> 0x00 <container> 0x00 <inc> maps to C <account> 0x00 <container> 0x01,
// so a container row and its graveyard rows (one Delete Container transaction) stay together.
// Pure; no faults.
import { columnDataReferences } from '../../partition/partition-gc.ts';
import type { RowDataReferences } from '../../partition/partition-gc.ts';
import type { TableSchema } from '../../partition/table-schema.ts';
import type { InlineData } from '../../partition/inline-spill.ts';
import { encodeBlockIndex } from './block-list.ts';

/** The blob row column holding an inline body (records.ts writes it; see "Inline bodies"). */
const bodyColumn = 'body';

const blobTag = 'B'.charCodeAt(0);
const containerTag = 'C'.charCodeAt(0);

/** C <account> 0x00 <container> [0x00 <inc>]: a container row and its graveyard rows are one
 * group (Delete Container writes them in one transaction). */
function containerBoundary(key: Buffer): Buffer {
  const first = key.indexOf(0);
  const second = first === -1 ? -1 : key.indexOf(0, first + 1);
  if (second === -1) return key;
  const boundary = Buffer.from(key.subarray(0, second + 1));
  boundary[second] = 1;
  return boundary;
}

export const blobDataReferences: RowDataReferences = {
  refs: (columns) => columnDataReferences.refs(columns),
  rewrite: (columns, remap) => columnDataReferences.rewrite(columns, remap),
  opaque: (columns) => columns.some((column) => (column.name === 'blocks' && column.value.kind === 'bytes') || column.name === 'blockListRefs'),
};

/** The smallest key ≥ key that starts a group: a blob's rows (its range) are one group. */
export function blobSplitBoundary(key: Buffer): Buffer {
  if (key[0] === containerTag) return containerBoundary(key);
  if (key[0] !== blobTag) return key;
  // B <account> 0x00 <container> 0x00 <inc> 0x00 <name> [0x00 <aux>]
  let at = 0;
  for (let separators = 0; separators < 3; separators++) {
    at = key.indexOf(0, at + 1);
    if (at === -1) return key;
  }
  const end = key.indexOf(0, at + 1);
  if (end === -1) return key;
  const boundary = Buffer.from(key.subarray(0, end + 1));
  boundary[end] = 1;
  return boundary;
}

export const blobInlineData: InlineData = {
  column: bodyColumn,
  spilledColumns: (ref) => [
    { name: 'blockIndex', value: { kind: 'bytes', value: encodeBlockIndex([{ id: Buffer.alloc(0), size: ref.length, refs: [ref] }]) } },
    { name: 'blockRefs', value: { kind: 'dataRefs', value: [ref] } },
  ],
};

export const blobTableSchema: TableSchema = { dataReferences: blobDataReferences, splitBoundary: blobSplitBoundary, inlineData: blobInlineData };
