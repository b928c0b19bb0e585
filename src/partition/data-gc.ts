// One garbage-collection pass over a partition's data stream (docs/partition-gc.md, "Data GC:
// copy forward, then drop"):
//
//   scan live rows ─► live ranges per extent ─► plan (drop / copy forward / seal the tail)
//   copy forward: read live bytes, append them to the tail, rewrite each row's refs under
//                 If-Match (ETag and Last-Modified kept); a concurrent write wins
//   condemn the drop candidates (the writer refuses rows naming them), recheck every row
//   committed since the scan began, drop what is still unreferenced
//
// Invariants: an extent is dropped only if no live row references it, counting rows committed
// while the pass ran (the recheck under the writer's fence); new bytes are durable before a row
// names them, and the old extent is dropped only by a later pass's scan (a crash at any step
// leaves the old or the new ref valid); at most copyBytesMax bytes are copied per pass.
// Fault model: any stream call may fail: the pass stops with the error; what it copied but did
// not reference is garbage for the next pass, and it dropped nothing it had not proven dead.
import { dropExtentsPerCallMax } from '../constants.ts';
import { isStorageError } from '../util/errors.ts';
import { failpoint } from '../util/failpoints.ts';
import type { DataRef, RowRecord } from '../wire/partition-row.ts';
import { LiveRanges, planDataGc } from './partition-gc.ts';
import type { DataGcPlan, RowDataReferences } from './partition-gc.ts';
import type { LiveRow } from './partition-scan.ts';
import type { StreamExtent } from './partition-streams.ts';

/** What the pass needs from its partition (implemented by Partition, under its maintenance lock). */
export interface DataGcHost {
  readonly references: RowDataReferences;
  dataExtents(): Promise<readonly StreamExtent[]>;
  /** Every live row, newest version, in key order. */
  liveRows(): AsyncGenerator<LiveRow>;
  appliedSequence(): number;
  /** Rows applied after `sequence` (the memtables; no checkpoint runs during a pass). */
  rowsAfter(sequence: number): Iterable<RowRecord>;
  eligible(extentId: number): boolean;
  /** Bytes this owner appended to a data extent (0 if none). */
  appendedBytes(extentId: number): number;
  readData(ref: DataRef): Promise<Buffer>;
  appendData(bytes: Buffer): Promise<DataRef>;
  /** Rewrites the row's refs keeping its ETag and Last-Modified; false if it changed meanwhile. */
  rewriteRow(row: LiveRow, columns: LiveRow['columns']): Promise<boolean>;
  /** Installs the writer's fence on these extents and waits for the batch group in flight. */
  condemn(extentIds: readonly number[]): Promise<void>;
  /** Lifts the fence from extents the recheck found referenced. */
  pardon(extentIds: readonly number[]): void;
  sealDataTail(): Promise<void>;
  dropDataExtents(extentIds: readonly number[]): Promise<void>;
}

export interface DataGcLimits {
  readonly copyBytesMax: number;
  readonly copyForwardLiveRatio: number;
  readonly tailSealBytes: number;
  readonly refsTrackedMax: number;
}

export interface DataGcReport {
  readonly extentsDropped: number;
  readonly bytesDropped: number;
  readonly bytesCopied: number;
  readonly rowsRewritten: number;
  readonly rewritesLost: number;
  readonly foreignBytes: number;
  /** Refs into extents not in the partition's own data stream (inherited), as the scan found them. */
  readonly foreignRefs: number;
  readonly danglingRefs: number;
  readonly liveBytes: number;
  readonly deadBytes: number;
  readonly tailSealed: boolean;
  /** The pass tracked too many refs and dropped nothing. */
  readonly overflowed: boolean;
  /** Live rows whose refs the table's extractor cannot list (the pass then dropped nothing). */
  readonly opaqueRows: number;
}

interface Scan {
  readonly live: LiveRanges;
  readonly foreignBytes: number;
  readonly foreignRefs: number;
  readonly overflowed: boolean;
  readonly opaqueRows: number;
}

export async function dataGcPass(host: DataGcHost, limits: DataGcLimits): Promise<DataGcReport> {
  const startSequence = host.appliedSequence();
  const extents = await host.dataExtents();
  const own = new Set(extents.map((extent) => extent.extentId));
  const scan = await scanLiveRanges(host, own, limits.refsTrackedMax);
  const plan = planDataGc({
    extents, live: scan.live, eligible: (extentId) => host.eligible(extentId), tailBytes: host.appendedBytes(extents.at(-1)?.extentId ?? -1),
    copyForwardLiveRatio: limits.copyForwardLiveRatio, tailSealBytes: limits.tailSealBytes,
  });
  const empty = { extentsDropped: 0, bytesDropped: 0, bytesCopied: 0, rowsRewritten: 0, rewritesLost: 0, danglingRefs: 0, tailSealed: false };
  const base = { ...empty, foreignBytes: scan.foreignBytes, foreignRefs: scan.foreignRefs, liveBytes: plan.liveBytes, deadBytes: plan.deadBytes, overflowed: scan.overflowed, opaqueRows: scan.opaqueRows };
  if (scan.overflowed || scan.opaqueRows > 0) return base;
  const copied = await copyForward(host, plan, own, limits.copyBytesMax);
  const dropped = await dropUnreferenced(host, plan, extents, startSequence);
  if (plan.sealTail) await host.sealDataTail();
  return { ...base, ...copied, ...dropped, tailSealed: plan.sealTail };
}

async function scanLiveRanges(host: DataGcHost, own: ReadonlySet<number>, refsTrackedMax: number): Promise<Scan> {
  const live = new LiveRanges();
  let foreignBytes = 0;
  let foreignRefs = 0;
  let opaqueRows = 0;
  for await (const row of host.liveRows()) {
    if (host.references.opaque?.(row.columns) === true) opaqueRows += 1;
    for (const ref of host.references.refs(row.columns)) {
      if (own.has(ref.extentId)) {
        live.add(ref);
        continue;
      }
      foreignBytes += ref.length;
      foreignRefs += 1;
    }
    if (live.size > refsTrackedMax) return { live, foreignBytes, foreignRefs, overflowed: true, opaqueRows };
  }
  return { live, foreignBytes, foreignRefs, overflowed: false, opaqueRows };
}

/** Moves the live refs of mostly-dead extents (and foreign refs) to the tail, row by row. */
async function copyForward(host: DataGcHost, plan: DataGcPlan, own: ReadonlySet<number>, copyBytesMax: number): Promise<{ bytesCopied: number; rowsRewritten: number; rewritesLost: number; danglingRefs: number }> {
  const moved = new Map<string, DataRef>();
  const counts = { bytesCopied: 0, rowsRewritten: 0, rewritesLost: 0, danglingRefs: 0 };
  const wanted = (ref: DataRef): boolean => plan.copyFrom.has(ref.extentId) || !own.has(ref.extentId);
  for await (const row of host.liveRows()) {
    const refs = host.references.refs(row.columns);
    if (!refs.some(wanted)) continue;
    const rowBytes = refs.filter((ref) => wanted(ref) && !moved.has(refKey(ref))).reduce((sum, ref) => sum + ref.length, 0);
    if (counts.bytesCopied + rowBytes > copyBytesMax) break;
    let dangling = false;
    for (const ref of refs) {
      if (!wanted(ref) || moved.has(refKey(ref))) continue;
      const bytes = await readOrNull(host, ref);
      if (bytes === null) {
        dangling = true;
        counts.danglingRefs += 1;
        break;
      }
      moved.set(refKey(ref), await appendCopy(host, ref, bytes));
      counts.bytesCopied += ref.length;
    }
    if (dangling) continue;
    await failpoint('partition.gc.after-copy');
    const columns = host.references.rewrite(row.columns, (ref) => moved.get(refKey(ref)) ?? ref);
    if (await host.rewriteRow(row, columns)) counts.rowsRewritten += 1;
    else counts.rewritesLost += 1;
  }
  return counts;
}

/**
 * Appends one ref's bytes as one append. A ref never spans more than one data append in v1
 * (appendData takes ≤ appendBytesMax and returns one ref), so one append suffices.
 */
async function appendCopy(host: DataGcHost, ref: DataRef, bytes: Buffer): Promise<DataRef> {
  const moved = await host.appendData(bytes);
  return { extentId: moved.extentId, offset: moved.offset, length: ref.length };
}

async function readOrNull(host: DataGcHost, ref: DataRef): Promise<Buffer | null> {
  try {
    return await host.readData(ref);
  } catch (error) {
    if (isStorageError(error, 'extent.not_found')) return null;
    throw error;
  }
}

/** Condemn → recheck rows committed since the scan → drop what is still unreferenced. */
async function dropUnreferenced(host: DataGcHost, plan: DataGcPlan, extents: readonly StreamExtent[], startSequence: number): Promise<{ extentsDropped: number; bytesDropped: number }> {
  if (plan.drop.length === 0) return { extentsDropped: 0, bytesDropped: 0 };
  await host.condemn(plan.drop);
  const referenced = new Set<number>();
  for (const row of host.rowsAfter(startSequence)) {
    if (row.kind !== 'live') continue;
    // A row whose refs cannot be listed may name any extent: keep them all.
    if (host.references.opaque?.(row.columns) === true) for (const extentId of plan.drop) referenced.add(extentId);
    for (const ref of host.references.refs(row.columns)) referenced.add(ref.extentId);
  }
  const pardoned = plan.drop.filter((extentId) => referenced.has(extentId));
  host.pardon(pardoned);
  const doomed = plan.drop.filter((extentId) => !referenced.has(extentId));
  for (let index = 0; index < doomed.length; index += dropExtentsPerCallMax) await host.dropDataExtents(doomed.slice(index, index + dropExtentsPerCallMax));
  const lengths = new Map(extents.map((extent) => [extent.extentId, extent.state.kind === 'sealed' ? extent.state.length : 0]));
  return { extentsDropped: doomed.length, bytesDropped: doomed.reduce((sum, extentId) => sum + (lengths.get(extentId) ?? 0), 0) };
}

function refKey(ref: DataRef): string {
  return `${ref.extentId}:${ref.offset}:${ref.length}`;
}
