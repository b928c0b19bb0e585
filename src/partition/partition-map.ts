// The partition map and the partition layer's MetaStore keys (docs/partition-protocol.md,
// "MetaStore keys"): which key range each partition covers, where its streams are, its owner
// epoch and owner (server id + lease). One JSON value under pm/map, versioned, written only by
// the partition manager leader; servers and front ends read it.
//
// Invariants (checked by parseMap, so a corrupt or hostile value is refused, never half-used):
// - partitions are sorted by range, contiguous, and cover every key: the first low is '' and
//   the last high is null (+infinity); each low < its high;
// - partition ids are unique and below nextPartitionId; owner epochs are ≥ 0;
// - at most partitionMapPartitionsMax partitions (the whole map fits one MetaStore value).
// Fault model: the value may be missing (no manager bootstrapped yet: null) or malformed
// (partition.corrupt); every read is a fresh MetaStore get.
import { z } from 'zod';
import { partitionInheritedDataMax, partitionMapPartitionsMax } from '../constants.ts';
import type { KeyValue, MetaStore } from '../metastore/meta-store.ts';
import { StorageError } from '../util/errors.ts';

export const mapKey = 'pm/map';
export const leaderKey = 'pm/leader';
export const managerEpochKey = 'pm/epoch';
export const serverPrefix = 'pm/servers/';

export function serverKey(serverId: string): string {
  return `${serverPrefix}${serverId}`;
}

const id = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const hexKey = z.string().max(8192).regex(/^(?:[0-9a-f]{2})*$/);
export const serverIdSchema = z.string().min(1).max(64).regex(/^[A-Za-z0-9._-]+$/);

const partitionEntry = z.object({
  partitionId: id,
  low: hexKey,
  high: hexKey.nullable(),
  streams: z.object({ meta: id, log: id, checkpoint: id, data: id }),
  /** Data streams of ancestors (splits): rows may hold refs into them. */
  inheritedData: z.array(id).max(partitionInheritedDataMax),
  ownerEpoch: id,
  owner: z.object({ serverId: serverIdSchema, lease: id }).nullable(),
});
export type PartitionEntry = z.infer<typeof partitionEntry>;

const partitionMapSchema = z.object({
  version: id,
  managerEpoch: id,
  nextPartitionId: id,
  partitions: z.array(partitionEntry).min(1).max(partitionMapPartitionsMax),
  /**
   * Data streams no partition lists any more, whose extents the manager is dropping (taken over
   * at ownerEpoch so no late appender can add to them); removed once dropped. Absent = none.
   */
  releasingData: z.array(z.object({ streamId: id, ownerEpoch: id })).max(partitionInheritedDataMax).optional(),
});
export type PartitionMap = z.infer<typeof partitionMapSchema>;

export const serverRecordSchema = z.object({ serverId: serverIdSchema, address: z.string().min(3).max(300), lease: id });
export type ServerRecord = z.infer<typeof serverRecordSchema>;

/** A registered server as the manager read it (its key's modRevision is compared by map txns). */
export interface LiveServer {
  readonly record: ServerRecord;
  readonly modRevision: number;
}

export const leaderRecordSchema = z.object({ managerId: z.string().min(1).max(64), epoch: id });

export interface VersionedMap {
  readonly map: PartitionMap;
  readonly modRevision: number;
}

/** The current map, or null if no manager has bootstrapped one. */
export async function readMap(store: MetaStore): Promise<VersionedMap | null> {
  const kv = await store.get(mapKey);
  if (kv === null) return null;
  return { map: parseMap(kv), modRevision: kv.modRevision };
}

export function parseMap(kv: KeyValue): PartitionMap {
  let json: unknown;
  try {
    json = JSON.parse(kv.value);
  } catch (error) {
    throw new StorageError('partition.corrupt', `${mapKey} is not JSON`, { cause: error });
  }
  const parsed = partitionMapSchema.safeParse(json);
  if (!parsed.success) throw new StorageError('partition.corrupt', `${mapKey} is malformed: ${parsed.error.message}`);
  checkRanges(parsed.data);
  return parsed.data;
}

function checkRanges(map: PartitionMap): void {
  const ids = new Set<number>();
  let expectedLow = '';
  for (const [index, entry] of map.partitions.entries()) {
    const last = index === map.partitions.length - 1;
    const ordered = entry.low === expectedLow && (entry.high === null ? last : !last && entry.high > entry.low);
    if (!ordered || ids.has(entry.partitionId) || entry.partitionId >= map.nextPartitionId) {
      throw new StorageError('partition.corrupt', `${mapKey} ranges are not contiguous, sorted and unique at partition ${entry.partitionId}`);
    }
    ids.add(entry.partitionId);
    expectedLow = entry.high ?? '';
  }
}

/** Hex of key bytes (hex order of equal-length-per-byte strings is byte order). */
export function keyHex(key: Buffer): string {
  return key.toString('hex');
}

export function keyFromHex(hex: string): Buffer {
  return Buffer.from(hex, 'hex');
}

/** True if `hex` lies in [entry.low, entry.high). */
export function entryContains(entry: PartitionEntry, hex: string): boolean {
  return hex >= entry.low && (entry.high === null || hex < entry.high);
}

/** The partition whose range holds `key` (binary search; the map covers every key). */
export function routeKey(map: PartitionMap, key: Buffer): PartitionEntry {
  const hex = keyHex(key);
  let low = 0;
  let high = map.partitions.length - 1;
  while (low < high) {
    const middle = (low + high + 1) >> 1;
    const entry = map.partitions[middle];
    if (entry !== undefined && entry.low <= hex) low = middle;
    else high = middle - 1;
  }
  const found = map.partitions[low];
  if (found === undefined || !entryContains(found, hex)) throw new StorageError('partition.corrupt', 'the partition map does not cover a key');
  return found;
}

export function parseJson<T>(schema: z.ZodType<T>, kv: KeyValue): T {
  let json: unknown;
  try {
    json = JSON.parse(kv.value);
  } catch (error) {
    throw new StorageError('partition.corrupt', `${kv.key} is not JSON`, { cause: error });
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new StorageError('partition.corrupt', `${kv.key} is malformed: ${parsed.error.message}`);
  return parsed.data;
}
