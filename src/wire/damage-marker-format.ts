// The damage marker format v1 (docs/formats/damage-marker.md): a 64-byte file next to an extent
// file saying that the replica's recovery could not prove it holds every acknowledged append.
// Pure encode/decode and the file name: no I/O.
//
// Invariants:
// - The marker's *presence* is the mark; its content only explains why. A caller that cannot
//   decode a marker still treats the extent it names as damaged.
// - Nothing is decoded from bytes whose CRC does not match; ids, lengths and times are safe
//   integers stored as u64.
//
// Fault model: any byte may be flipped or torn; decodeDamageMarker then throws StorageError
// (wire.corrupt, wire.unsupported_version), never returns damaged values.
import { assertByteCount } from '../util/assert.ts';
import { crc32c, crcMatches } from '../util/crc32c.ts';
import { StorageError } from '../util/errors.ts';
import { extentFileName } from './extent-format.ts';
import type { ExtentNameIdentity } from './extent-format.ts';
import { readSafeU64 } from './record-header.ts';

export const damageMarkerFormatVersion = 1;
export const damageMarkerBytes = 64;
export const damageMarkerSuffix = '.damaged';
const damageMarkerMagic = Buffer.from('KURADMGD', 'ascii');

/** Why a replica was marked damaged (codes 1..4 on disk; see the format document). */
export type DamageReason = 'journal_record_damaged' | 'journal_gap' | 'journal_damage_unattributed' | 'extent_tail_damaged';

const reasonCodes: Readonly<Record<DamageReason, number>> = {
  journal_record_damaged: 1,
  journal_gap: 2,
  journal_damage_unattributed: 3,
  extent_tail_damaged: 4,
};

export interface DamageMarker extends ExtentNameIdentity {
  readonly reason: DamageReason;
  /** The replica's length when the damage was found: the first offset it cannot prove. */
  readonly length: number;
  readonly markedAtMs: number;
}

export function encodeDamageMarker(marker: DamageMarker): Buffer {
  for (const [name, value] of [['streamId', marker.streamId], ['extentId', marker.extentId], ['epoch', marker.epoch], ['length', marker.length], ['markedAtMs', marker.markedAtMs]] as const) {
    assertByteCount(value, name);
  }
  const bytes = Buffer.alloc(damageMarkerBytes);
  damageMarkerMagic.copy(bytes, 0);
  bytes.writeUInt16BE(damageMarkerFormatVersion, 8);
  bytes.writeUInt16BE(damageMarkerBytes, 10);
  bytes.writeUInt32BE(reasonCodes[marker.reason], 12);
  bytes.writeBigUInt64BE(BigInt(marker.streamId), 16);
  bytes.writeBigUInt64BE(BigInt(marker.extentId), 24);
  bytes.writeBigUInt64BE(BigInt(marker.epoch), 32);
  bytes.writeBigUInt64BE(BigInt(marker.length), 40);
  bytes.writeBigUInt64BE(BigInt(marker.markedAtMs), 48);
  bytes.writeUInt32BE(crc32c(bytes.subarray(0, 60)), 60);
  return bytes;
}

export function decodeDamageMarker(input: Uint8Array): DamageMarker {
  if (input.length !== damageMarkerBytes) throw corrupt(`is ${input.length} bytes, not ${damageMarkerBytes}`);
  const bytes = Buffer.from(input.buffer, input.byteOffset, damageMarkerBytes);
  if (!bytes.subarray(0, 8).equals(damageMarkerMagic)) throw corrupt('bad magic');
  if (!crcMatches(bytes.subarray(0, 60), bytes.readUInt32BE(60))) throw corrupt('CRC mismatch');
  const version = bytes.readUInt16BE(8);
  if (version !== damageMarkerFormatVersion) {
    throw new StorageError('wire.unsupported_version', `damage marker version ${version} is not supported`, { context: { version } });
  }
  const reasonCode = bytes.readUInt32BE(12);
  const reason = (Object.keys(reasonCodes) as DamageReason[]).find((name) => reasonCodes[name] === reasonCode);
  if (bytes.readUInt16BE(10) !== damageMarkerBytes || bytes.readUInt32BE(56) !== 0 || reason === undefined) {
    throw corrupt('size, reason or reserved field not as in v1');
  }
  return {
    reason,
    streamId: readSafeU64(bytes, 16, 'damage marker'),
    extentId: readSafeU64(bytes, 24, 'damage marker'),
    epoch: readSafeU64(bytes, 32, 'damage marker'),
    length: readSafeU64(bytes, 40, 'damage marker'),
    markedAtMs: readSafeU64(bytes, 48, 'damage marker'),
  };
}

/** `<extentId 16 hex>-<identityCrc 8 hex>.damaged`: the extent file's name, another suffix. */
export function damageMarkerName(identity: ExtentNameIdentity): string {
  return extentFileName(identity).replace(/\.ext$/, damageMarkerSuffix);
}

/** The extent file name a marker name belongs to; null if `name` is not a marker's. */
export function extentFileNameOfMarker(name: string): string | null {
  return /^[0-9a-f]{16}-[0-9a-f]{8}\.damaged$/.test(name) ? name.replace(/\.damaged$/, '.ext') : null;
}

function corrupt(reason: string): StorageError {
  return new StorageError('wire.corrupt', `damage marker: ${reason}`, { context: { reason } });
}
