// Canonicalisation shared by SharedKey, SharedKeyLite and SAS: Azure's ordering of header
// names, the CanonicalizedHeaders string, HMAC-SHA256 signing and constant-time comparison.
//
// Azure sorts canonical header names with .NET's culture-aware (en-US) comparison, not by code
// unit: '-' and '\'' are ignored at the first level and only break ties by position, '_' sorts
// before digits and letters. compareHeaderNames implements that order deterministically, with
// no dependence on the process locale or ICU data (Intl/localeCompare would vary by machine).
// Invariants: the comparator is a total order on header-name tokens (lower-cased HTTP tokens);
// signatures are compared only as equal-length byte strings with crypto.timingSafeEqual.
// Fault model: names and values are hostile; nothing here logs or returns a computed signature
// except to its caller.

import { hash, timingSafeEqual } from 'node:crypto';
import { LruCache } from '../../util/lru-cache.ts';

/** Primary weights of HTTP token characters (lower-cased names), in Azure's order: symbols,
 * then '+', then digits, then letters. '-' and '\'' have no primary weight (ignorable). */
const primaryOrder = '!#$%&*.^_`|~+0123456789abcdefghijklmnopqrstuvwxyz';
const ignorableOrder = '\'-';

function primaryWeight(c: string): number {
  const index = primaryOrder.indexOf(c);
  // Characters outside HTTP tokens cannot occur in header names; order them after letters by code.
  return index === -1 ? primaryOrder.length + c.charCodeAt(0) : index;
}

function isIgnorable(c: string): boolean {
  return ignorableOrder.includes(c);
}

/** Negative when a sorts before b, 0 when equal, positive after, in Azure's order. */
export function compareHeaderNames(a: string, b: string): number {
  const primary = comparePrimary(a, b);
  if (primary !== 0) return primary;
  return compareIgnorables(a, b);
}

function comparePrimary(a: string, b: string): number {
  let i = 0;
  let j = 0;
  for (;;) {
    while (i < a.length && isIgnorable(a.charAt(i))) i += 1;
    while (j < b.length && isIgnorable(b.charAt(j))) j += 1;
    if (i === a.length || j === b.length) return (i === a.length ? 0 : 1) - (j === b.length ? 0 : 1);
    const difference = primaryWeight(a.charAt(i)) - primaryWeight(b.charAt(j));
    if (difference !== 0) return difference;
    i += 1;
    j += 1;
  }
}

/** Names equal but for ignorable characters: at the first position where they differ, the name
 * that has ended or has an ordinary character there sorts first; two different ignorables sort
 * '\'' before '-'. */
function compareIgnorables(a: string, b: string): number {
  const length = Math.max(a.length, b.length);
  for (let k = 0; k < length; k += 1) {
    const ca = a.charAt(k);
    const cb = b.charAt(k);
    if (ca === cb) continue;
    const ia = ca !== '' && isIgnorable(ca);
    const ib = cb !== '' && isIgnorable(cb);
    if (ia && ib) return ignorableOrder.indexOf(ca) - ignorableOrder.indexOf(cb);
    if (ia) return 1;
    if (ib) return -1;
    return 0; // unreachable for names with equal primary keys
  }
  return 0;
}

/**
 * The x-ms- names of a request in Azure's order, memoised by the names as they arrived: a client
 * sends the same headers in the same order on every request, and sorting them with
 * compareHeaderNames was ~3 % of a Get Blob's server CPU. Bounded: at most
 * canonicalOrdersMax distinct arrival orders are kept (a client varying its headers per request
 * only costs the sort again).
 */
const canonicalOrdersMax = 256;
const canonicalOrders = new LruCache<string, readonly string[]>(canonicalOrdersMax);

function sortedHeaderNames(headers: ReadonlyMap<string, string>): readonly string[] {
  if (isLastArrival(headers)) return lastOrder.sorted;
  const arrivalNames = [...headers.keys()].filter((name) => name.startsWith('x-ms-'));
  const arrival = arrivalNames.join('\n');
  const names = canonicalOrders.get(arrival) ?? [...arrivalNames].sort(compareHeaderNames);
  canonicalOrders.set(arrival, names);
  lastOrder = { arrival: arrivalNames, sorted: names };
  return names;
}

/** The last arrival order asked for and its canonical order: a client's requests of one kind
 * repeat it, and comparing names in place builds no key string to hash (the LRU's key was ~5 % of
 * parsing and verifying an SDK Put head, bench/blob/head-cost.ts). */
let lastOrder: { readonly arrival: readonly string[]; readonly sorted: readonly string[] } = { arrival: [], sorted: [] };

function isLastArrival(headers: ReadonlyMap<string, string>): boolean {
  const arrival = lastOrder.arrival;
  let index = 0;
  for (const name of headers.keys()) {
    if (!name.startsWith('x-ms-')) continue;
    if (arrival[index] !== name) return false;
    index += 1;
  }
  return index === arrival.length;
}

/** CanonicalizedHeaders: every x-ms- header, lower-cased, in Azure's order, "name:value\n". */
export function canonicalizedHeaders(headers: ReadonlyMap<string, string>): string {
  let text = '';
  for (const name of sortedHeaderNames(headers)) text += `${name}:${(headers.get(name) ?? '').trim()}\n`;
  return text;
}

/**
 * HMAC-SHA256 (RFC 2104) as two one-shot SHA-256 calls over precomputed pads:
 * H((K ^ opad) || H((K ^ ipad) || text)). createHmac builds an Hmac object (and OpenSSL a MAC
 * context) per call: ~27 us per signature with cold caches against ~19.5 us for the one-shot
 * calls (micro-benchmark, 2 MiB touched between calls as a server's other work does), and it was
 * ~5.5 % of a 4 KiB Put Blob's main thread. The pads are kept per key array (a rotated key is a
 * new array, AccountStore replaces it) together with the bytes they were made from, compared on
 * every use, so a key changed in place is never signed with stale pads.
 */
const sha256BlockBytes = 64;
const sha256Bytes = 32;
interface KeyPads {
  readonly bytes: Buffer;
  /** K' ^ 0x36 in [0, 64), room for the text after it (the inner hash's input). */
  readonly inner: Buffer;
  /** K' ^ 0x5c in [0, 64), the inner hash in [64, 96) (the outer hash's input). */
  readonly outer: Buffer;
}
const keyPads = new WeakMap<Uint8Array, KeyPads>();
/** Texts up to this many UTF-8 bytes are written into the key's inner buffer; longer ones allocate. */
const innerTextBytesMax = 4096;

function padsOf(key: Uint8Array): KeyPads {
  const cached = keyPads.get(key);
  if (cached !== undefined && cached.bytes.equals(key)) return cached;
  const bytes = Buffer.from(key);
  // A key longer than the block is hashed first (RFC 2104 section 2); a shorter one is zero-padded.
  const block = bytes.length > sha256BlockBytes ? hash('sha256', bytes, 'buffer') : bytes;
  const inner = Buffer.alloc(sha256BlockBytes + innerTextBytesMax);
  const outer = Buffer.alloc(sha256BlockBytes + sha256Bytes);
  for (let i = 0; i < sha256BlockBytes; i += 1) {
    const k = block[i] ?? 0;
    inner[i] = k ^ 0x36;
    outer[i] = k ^ 0x5c;
  }
  const pads = { bytes, inner, outer };
  keyPads.set(key, pads);
  return pads;
}

/** The HMAC-SHA256 of `text` (UTF-8) under `key`: 32 bytes. Synchronous, so the key's buffers are
 * never shared between two calls in flight. */
export function hmacSha256(key: Uint8Array, text: string): Buffer {
  const pads = padsOf(key);
  let innerInput: Buffer;
  if (text.length * 3 <= innerTextBytesMax) {
    innerInput = pads.inner.subarray(0, sha256BlockBytes + pads.inner.write(text, sha256BlockBytes, 'utf8'));
  } else {
    const textBytes = Buffer.from(text, 'utf8');
    innerInput = Buffer.concat([pads.inner.subarray(0, sha256BlockBytes), textBytes]);
  }
  pads.outer.set(hash('sha256', innerInput, 'buffer'), sha256BlockBytes);
  return hash('sha256', pads.outer, 'buffer');
}

export function hmacSha256Base64(key: Uint8Array, text: string): string {
  return hmacSha256(key, text).toString('base64');
}

/** True when `presented` (Base64) equals the HMAC of `text` under any of `keys`, compared in
 * constant time. Keys are tried in order and the first match ends the search: the time then
 * tells only which of the account's keys signed, which the signer already knows (a failed
 * signature still costs every key). One HMAC instead of two for a request signed with key1. */
export function signatureMatches(presented: string, text: string, keys: readonly Uint8Array[]): boolean {
  const presentedBytes = Buffer.from(presented, 'base64');
  if (presentedBytes.length !== 32 || presentedBytes.toString('base64') !== presented) return false;
  for (const key of keys) {
    const expected = hmacSha256(key, text);
    if (timingSafeEqual(expected, presentedBytes)) return true;
  }
  return false;
}
