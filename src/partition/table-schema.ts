// What a partition must know about the table it holds, supplied by the table's owner (the layer
// above: the blob service for the blob tables) through PartitionServer's `table` option:
// - dataReferences: where rows keep their data refs (docs/partition-gc.md, "References"): data
//   GC frees every byte no live row's refs name, so a table whose refs the collector cannot see
//   must not run it;
// - splitBoundary: which rows must stay in one partition (docs/partition-protocol.md, "Group
//   boundaries"): a split never separates rows of one group;
// - inlineData (optional): data the table keeps inline in rows, which checkpoints and compactions
//   move to the data stream (inline-spill.ts).
// Invariants: splitBoundary(key) ≥ key, splitBoundary(splitBoundary(key)) = splitBoundary(key),
// and no group has keys on both sides of a value it returns. Pure; no faults.
import { columnDataReferences } from './partition-gc.ts';
import type { RowDataReferences } from './partition-gc.ts';
import type { InlineData } from './inline-spill.ts';

/** The smallest key ≥ `key` that starts a group (identity: every row is its own group). */
export type SplitBoundary = (key: Buffer) => Buffer;

export interface TableSchema {
  readonly dataReferences: RowDataReferences;
  readonly splitBoundary: SplitBoundary;
  readonly inlineData?: InlineData;
}

export const rowPerGroup: SplitBoundary = (key) => key;

/** Every ref is in a dataRefs column and every row is its own group. */
export const defaultTableSchema: TableSchema = { dataReferences: columnDataReferences, splitBoundary: rowPerGroup };
