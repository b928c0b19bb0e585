// What is garbage in a partition's streams (docs/partition-gc.md, "What is garbage"): pure
// planning over extent lists, the current manifest's positions and the live data ranges. The
// passes that act on it are in partition.ts (meta, log, checkpoint) and data-gc.ts (data).
//
// Invariants: only sealed extents other than the tail are ever returned (the tail takes appends);
// an extent is returned for the log/meta only if it lies wholly before the position that load
// starts from, for the checkpoint only if no current run has a record in it, for the data only if
// no live range lies in it (and the caller's eligibility, the grace period, allows it).
// Pure: no I/O. Fault model: none; a position whose extent is not in the list yields nothing.
import { assert } from '../util/assert.ts';
import type { DataRef, Column } from '../wire/partition-row.ts';
import type { StreamExtent } from './partition-streams.ts';

/** Sealed extents strictly before `extentId` in the stream; none if it is not in the list. */
export function extentsBefore(extents: readonly StreamExtent[], extentId: number): number[] {
  const index = extents.findIndex((extent) => extent.extentId === extentId);
  if (index <= 0) return [];
  return extents.slice(0, index).filter((extent) => extent.state.kind === 'sealed').map((extent) => extent.extentId);
}

/** Sealed, non-tail extents that `referenced` does not name. */
export function unreferencedExtents(extents: readonly StreamExtent[], referenced: ReadonlySet<number>): number[] {
  return extents.slice(0, -1).filter((extent) => extent.state.kind === 'sealed' && !referenced.has(extent.extentId)).map((extent) => extent.extentId);
}

/**
 * Where a table keeps its data refs (docs/partition-gc.md, "References"). The default reads every
 * `dataRefs` column; a table that hides refs elsewhere must mark such rows opaque or turn data GC
 * off: a ref the collector cannot see is a ref it deletes.
 */
export interface RowDataReferences {
  refs(columns: readonly Column[]): readonly DataRef[];
  /**
   * True for a row that holds refs `refs` cannot list (e.g. an old format). A data GC pass that
   * meets such a live row copies and drops nothing: it may stop collection, never lose bytes.
   */
  opaque?(columns: readonly Column[]): boolean;
  /** The same columns with every ref r replaced by remap(r). */
  rewrite(columns: readonly Column[], remap: (ref: DataRef) => DataRef): readonly Column[];
}

export const columnDataReferences: RowDataReferences = {
  refs(columns) {
    const refs: DataRef[] = [];
    for (const column of columns) if (column.value.kind === 'dataRefs') refs.push(...column.value.value);
    return refs;
  },
  rewrite(columns, remap) {
    return columns.map((column) => (column.value.kind === 'dataRefs' ? { name: column.name, value: { kind: 'dataRefs', value: column.value.value.map(remap) } } : column));
  },
};

/** Live byte ranges per data extent (the union of the refs added). */
export class LiveRanges {
  private readonly ranges = new Map<number, number[]>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(ref: DataRef): void {
    assert(Number.isSafeInteger(ref.offset) && Number.isSafeInteger(ref.length) && ref.length >= 0, 'a data ref has safe integer bounds');
    let list = this.ranges.get(ref.extentId);
    if (list === undefined) {
      list = [];
      this.ranges.set(ref.extentId, list);
    }
    list.push(ref.offset, ref.offset + ref.length);
    this.count += 1;
  }

  has(extentId: number): boolean {
    return this.ranges.has(extentId);
  }

  /** Bytes of the extent covered by at least one ref. */
  liveBytes(extentId: number): number {
    const list = this.ranges.get(extentId);
    if (list === undefined) return 0;
    const pairs: Array<[number, number]> = [];
    for (let i = 0; i < list.length; i += 2) pairs.push([list[i] ?? 0, list[i + 1] ?? 0]);
    pairs.sort((a, b) => a[0] - b[0]);
    let total = 0;
    let end = -1;
    for (const [from, to] of pairs) {
      const start = Math.max(from, end);
      if (to > start) total += to - start;
      end = Math.max(end, to);
    }
    return total;
  }
}

export interface DataGcPlan {
  /** Sealed, eligible extents with no live byte. */
  readonly drop: readonly number[];
  /** Sealed extents at most copyForwardLiveRatio live: their live ranges move to the tail. */
  readonly copyFrom: ReadonlySet<number>;
  /** The tail is long and mostly dead: seal it so the next pass can collect it. */
  readonly sealTail: boolean;
  readonly liveBytes: number;
  readonly deadBytes: number;
}

export interface DataGcPlanInput {
  readonly extents: readonly StreamExtent[];
  readonly live: LiveRanges;
  /** The grace rule: nothing recently appended (or loaded) is dropped. */
  readonly eligible: (extentId: number) => boolean;
  /** Bytes this owner appended to the (open) tail. */
  readonly tailBytes: number;
  readonly copyForwardLiveRatio: number;
  readonly tailSealBytes: number;
}

export function planDataGc(input: DataGcPlanInput): DataGcPlan {
  const drop: number[] = [];
  const copyFrom = new Set<number>();
  let liveBytes = 0;
  let deadBytes = 0;
  const tail = input.extents.at(-1);
  for (const extent of input.extents) {
    if (extent.state.kind !== 'sealed' || extent === tail) continue;
    const live = input.live.liveBytes(extent.extentId);
    const length = extent.state.length;
    liveBytes += live;
    deadBytes += Math.max(0, length - live);
    if (!input.eligible(extent.extentId)) continue;
    if (live === 0) drop.push(extent.extentId);
    else if (live <= length * input.copyForwardLiveRatio) copyFrom.add(extent.extentId);
  }
  const tailLive = tail === undefined ? 0 : input.live.liveBytes(tail.extentId);
  const sealTail = tail !== undefined && input.tailBytes >= input.tailSealBytes && tailLive <= input.tailBytes * input.copyForwardLiveRatio;
  return { drop, copyFrom, sealTail, liveBytes, deadBytes };
}
