// The receiver's copy of an RPC header inside one process (LocalNetwork), and the byte length its
// JSON text would have on the wire, in one walk: what JSON.stringify + Buffer.byteLength +
// JSON.parse gave, at a third to a half of their cost for the usual header. Hot: every in-process
// hop copies two headers (request and answer), four hops per Put Blob.
//
// Invariant (test/unit/rpc/header-copy.test.ts, fast-check against JSON itself): when
// copyJsonHeader answers, `header` deep-equals JSON.parse(JSON.stringify(value)) and `bytes` is
// Buffer.byteLength(JSON.stringify(value)) (a string with a character JSON escapes, e.g. a quoted
// ETag, or not ASCII, is measured by stringifying that string alone). It answers null for anything it does not copy exactly as JSON would (undefined or a function in
// an array, -0, non-finite numbers, class instances, `__proto__` keys, depth past 64); the caller
// then takes the JSON round trip, so every header still crosses as it would cross a wire.
import type { RpcHeader } from './network.ts';

const unsupported = Symbol('unsupported');
const depthMax = 64;

interface Walk {
  bytes: number;
}

export function copyJsonHeader(value: RpcHeader): { readonly header: RpcHeader; readonly bytes: number } | null {
  const walk: Walk = { bytes: 0 };
  const header = copyValue(value, 0, walk);
  if (header === unsupported || header === null || typeof header !== 'object' || Array.isArray(header)) return null;
  return { header: header as RpcHeader, bytes: walk.bytes };
}

function copyValue(value: unknown, depth: number, walk: Walk): unknown {
  switch (typeof value) {
    case 'string':
      countString(value, walk);
      return value;
    case 'number':
      if (!Number.isFinite(value) || Object.is(value, -0)) return unsupported;
      walk.bytes += String(value).length;
      return value;
    case 'boolean':
      walk.bytes += value ? 4 : 5;
      return value;
    case 'object':
      if (value === null) {
        walk.bytes += 4;
        return null;
      }
      if (depth >= depthMax) return unsupported;
      return Array.isArray(value) ? copyArray(value, depth, walk) : copyObject(value, depth, walk);
    case 'bigint':
    case 'function':
    case 'symbol':
    case 'undefined':
      return unsupported;
  }
}

function copyArray(array: readonly unknown[], depth: number, walk: Walk): unknown {
  if (Object.getPrototypeOf(array) !== Array.prototype) return unsupported;
  const copy: unknown[] = new Array<unknown>(array.length);
  walk.bytes += 2 + Math.max(0, array.length - 1);
  for (let index = 0; index < array.length; index++) {
    const item = copyValue(array[index], depth + 1, walk);
    // JSON writes undefined (or a hole) in an array as null: not copied here, the JSON way takes it.
    if (item === unsupported || item === undefined) return unsupported;
    copy[index] = item;
  }
  return copy;
}

function copyObject(object: object, depth: number, walk: Walk): unknown {
  if (Object.getPrototypeOf(object) !== Object.prototype) return unsupported;
  const copy: Record<string, unknown> = {};
  const source = object as Record<string, unknown>;
  let members = 0;
  for (const key of Object.keys(source)) {
    const member = source[key];
    if (member === undefined) continue;
    if (key === '__proto__') return unsupported;
    const item = copyValue(member, depth + 1, walk);
    if (item === unsupported) return unsupported;
    countString(key, walk);
    walk.bytes += 1;
    copy[key] = item;
    members += 1;
  }
  walk.bytes += 2 + Math.max(0, members - 1);
  return copy;
}

/** Bytes of `text` as a JSON string: counted here for printable ASCII (a quote or a backslash
 * takes two), by JSON itself for anything else (control characters, non-ASCII). A loop, not a
 * regular expression: most strings are short, and the call to the regex was the larger cost. */
function countString(text: string, walk: Walk): void {
  let bytes = text.length + 2;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code < 0x20 || code > 0x7e) {
      walk.bytes += Buffer.byteLength(JSON.stringify(text), 'utf8');
      return;
    }
    if (code === 0x22 || code === 0x5c) bytes += 1;
  }
  walk.bytes += bytes;
}
