// Row keys of the blob tables (docs/blob-schema.md, "Keys"): pure builders and parsers.
//
// Invariants: components are joined with 0x00, which no account, container or blob name holds
// (fields.ts refuses control characters), so byte order of keys is Azure's listing order and
// every row of one blob sorts in the contiguous range K(blob) .. K(blob) 0x00 0xff…; a blob's
// own row is exactly K(blob) (no 0x00 after the name), aux rows are K(blob) 0x00 <tag> ….
// Fault model: none (pure); keys decoded from scans are checked for their table prefix.

import { assert } from '../../util/assert.ts';

const sep = Buffer.from([0]);

function utf8(text: string): Buffer {
  return Buffer.from(text, 'utf8');
}

export function servicePropertiesKey(account: string): Buffer {
  return Buffer.concat([utf8('P'), utf8(account)]);
}

/** Prefix of every container row of an account. */
export function containerPrefix(account: string): Buffer {
  return Buffer.concat([utf8('C'), utf8(account), sep]);
}

export function containerKey(account: string, container: string): Buffer {
  return Buffer.concat([containerPrefix(account), utf8(container)]);
}

/** A deleted container's incarnation, kept until its rows are swept (container-sweep.ts). */
export function graveyardKey(account: string, container: string, inc: string): Buffer {
  return Buffer.concat([containerKey(account, container), sep, utf8(inc)]);
}

/** The parts of a graveyard key (C <account> \0 <container> \0 <inc>); null for any other key. */
export function parseGraveyardKey(key: Buffer): { readonly account: string; readonly container: string; readonly inc: string } | null {
  if (key[0] !== 'C'.charCodeAt(0)) return null;
  const first = key.indexOf(0);
  const second = first === -1 ? -1 : key.indexOf(0, first + 1);
  if (second === -1) return null;
  return { account: key.subarray(1, first).toString('utf8'), container: key.subarray(first + 1, second).toString('utf8'), inc: key.subarray(second + 1).toString('utf8') };
}

/** Prefix of every blob row of one container incarnation. */
export function blobPrefix(account: string, container: string, inc: string): Buffer {
  return Buffer.concat([utf8('B'), utf8(account), sep, utf8(container), sep, utf8(inc), sep]);
}

/** Prefix of every blob row of an account (all containers, all incarnations). */
export function accountBlobsPrefix(account: string): Buffer {
  return Buffer.concat([utf8('B'), utf8(account), sep]);
}

export function blobKey(prefix: Buffer, name: string): Buffer {
  return Buffer.concat([prefix, utf8(name)]);
}

/** Start of a blob's aux rows (every key of the blob except its own row starts with this). */
export function auxPrefix(blob: Buffer): Buffer {
  return Buffer.concat([blob, sep]);
}

export function stagingKey(blob: Buffer): Buffer {
  return Buffer.concat([blob, sep, utf8('g')]);
}

export function snapshotPrefix(blob: Buffer): Buffer {
  return Buffer.concat([blob, sep, utf8('s')]);
}

/** The blob's snapshot horizon row (snapshot-horizon.ts): snapshots with ids up to its own are deleted. */
export function snapshotHorizonKey(blob: Buffer): Buffer {
  return Buffer.concat([blob, sep, utf8('h')]);
}

export function snapshotKey(blob: Buffer, snapshot: string): Buffer {
  return Buffer.concat([snapshotPrefix(blob), utf8(snapshot)]);
}

export function uncommittedPrefix(blob: Buffer, gen: string): Buffer {
  return Buffer.concat([blob, sep, utf8('u'), utf8(gen), sep]);
}

export function uncommittedKey(blob: Buffer, gen: string, blockId: Buffer): Buffer {
  return Buffer.concat([uncommittedPrefix(blob, gen), blockId]);
}

/** Prefix of the segment rows of one append incarnation. */
export function segmentPrefix(blob: Buffer, appendInc: string): Buffer {
  return Buffer.concat([blob, sep, utf8('a'), utf8(appendInc), sep]);
}

export function segmentKey(blob: Buffer, appendInc: string, index: number): Buffer {
  const position = Buffer.alloc(4);
  position.writeUInt32BE(index);
  return Buffer.concat([segmentPrefix(blob, appendInc), position]);
}

/** Prefix of the page rows of one paged committed block list. */
export function listPagePrefix(blob: Buffer, listId: string): Buffer {
  return Buffer.concat([blob, sep, utf8('l'), utf8(listId), sep]);
}

export function listPageKey(blob: Buffer, listId: string, index: number): Buffer {
  const position = Buffer.alloc(4);
  position.writeUInt32BE(index);
  return Buffer.concat([listPagePrefix(blob, listId), position]);
}

/** Prefix of every sweep intent row (sweep-intents.ts): S K(blob) 0x00 <id>. */
export const sweepIntentPrefix = utf8('S');

export function sweepIntentKey(blob: Buffer, id: string): Buffer {
  return Buffer.concat([sweepIntentPrefix, blob, sep, utf8(id)]);
}

/** The blob key a sweep intent names (its key minus 'S' and the id after the last 0x00); null for any other key. */
export function parseSweepIntentKey(key: Buffer): Buffer | null {
  const end = key.lastIndexOf(0);
  if (key[0] !== sweepIntentPrefix[0] || end <= 1) return null;
  return key.subarray(1, end);
}

export type AuxRowKind = 'append' | 'staging' | 'list' | 'snapshot' | 'uncommitted';

const auxTags: Readonly<Record<string, AuxRowKind>> = { a: 'append', g: 'staging', l: 'list', s: 'snapshot', u: 'uncommitted' };

/** What a row of a blob's range is (K 0x00 <tag> <id> …): its kind and id (appendInc, listId,
 * gen, snapshot id; '' for staging); null for a key that is not an aux row of `blob`. */
export function auxRow(blob: Buffer, key: Buffer): { readonly kind: AuxRowKind; readonly id: string } | null {
  if (key.length < blob.length + 2 || key[blob.length] !== 0 || !key.subarray(0, blob.length).equals(blob)) return null;
  const kind = auxTags[String.fromCharCode(key[blob.length + 1] ?? 0)];
  if (kind === undefined) return null;
  const rest = key.subarray(blob.length + 2);
  const end = kind === 'snapshot' ? -1 : rest.indexOf(0);
  return { kind, id: (end === -1 ? rest : rest.subarray(0, end)).toString('utf8') };
}

/** The name part of a key under `prefix`: up to the first 0x00 (null when the key is not under it). */
export function nameAfter(prefix: Buffer, key: Buffer): { readonly name: string; readonly own: boolean } | null {
  if (key.length < prefix.length || !key.subarray(0, prefix.length).equals(prefix)) return null;
  const rest = key.subarray(prefix.length);
  const at = rest.indexOf(0);
  return { name: (at === -1 ? rest : rest.subarray(0, at)).toString('utf8'), own: at === -1 };
}

/** The container name and incarnation of an account-wide blob key. */
export function splitBlobKey(accountPrefix: Buffer, key: Buffer): { readonly container: string; readonly inc: string; readonly name: string; readonly own: boolean } | null {
  if (!key.subarray(0, accountPrefix.length).equals(accountPrefix)) return null;
  const parts: string[] = [];
  let rest = key.subarray(accountPrefix.length);
  for (let i = 0; i < 2; i++) {
    const at = rest.indexOf(0);
    if (at === -1) return null;
    parts.push(rest.subarray(0, at).toString('utf8'));
    rest = rest.subarray(at + 1);
  }
  const at = rest.indexOf(0);
  const [container, inc] = parts;
  assert(container !== undefined && inc !== undefined, 'two components were read');
  return { container, inc, name: (at === -1 ? rest : rest.subarray(0, at)).toString('utf8'), own: at === -1 };
}

/** The smallest key above every key that starts with `prefix`, or null (all 0xff). */
export function keySuccessor(prefix: Buffer): Buffer | null {
  let end = prefix.length;
  while (end > 0 && prefix[end - 1] === 0xff) end -= 1;
  if (end === 0) return null;
  const next = Buffer.from(prefix.subarray(0, end));
  next[end - 1] = (next[end - 1] ?? 0) + 1;
  return next;
}
