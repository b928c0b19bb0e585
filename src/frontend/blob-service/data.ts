// Blob bytes in the partition's data stream (docs/blob-schema.md, "Bytes"): a request body is
// streamed into appendData in chunks of at most dataAppendBytesMax (8 MiB), and a blob (or a range of it) is
// streamed back from its refs, one readData per ref piece.
//
// Invariants: a body holds at most two pieces (≤ dataAppendBytesMax each) plus one incoming chunk:
// one append in flight while the next piece is read (http-server.ts reserves that much per body);
// a body's appends are issued one after another, each after the one before it is durable, and
// their refs are in body order (reads: the piece being written plus one read ahead); the refs are returned only after the body iterator completed (so its length and MD5
// were verified: request-body.ts holds back the last chunk until then); a ref is read only over
// the bytes the range needs.
// Fault model: appendData / readData throw StorageErrors; a body that fails mid-way leaves
// unreferenced, harmless data behind; the client may go away (the signal aborts the reads).

import { appendBodyChunkBytesMin, appendBodyPartsUncopied, appendBodyStagingBytes, dataAppendBytesMax, md5WorkerBodyBytesMin } from '../../constants.ts';
import { type Body, BodyPartsCollector, bodyBytes, bodyPartsOf } from '../../util/body-parts.ts';
import { sharedMd5Pool } from '../../util/md5-pool.ts';
import { assert } from '../../util/assert.ts';
import { md5 } from '../../util/md5.ts';
import type { DataRef } from '../../wire/partition-row.ts';
import type { RequestBody } from '../blob-backend.ts';
import type { BlobTables } from './blob-tables.ts';
import type { DataCache } from './data-cache.ts';

export interface WrittenData {
  readonly refs: readonly DataRef[];
  readonly size: number;
  readonly md5: Buffer;
}

/** A Put Block's or Append Block's bytes: the MD5 only when the client sent Content-MD5 or an old
 * x-ms-version asked for it (Azure keeps no MD5 per block). */
export interface WrittenBlock {
  readonly refs: readonly DataRef[];
  readonly size: number;
  readonly md5: Buffer | null;
}

/** A body as writeBody takes it: a RequestBody, or (internal copies, tests) any iterable of chunks. */
type DataBodyLike = AsyncIterable<Uint8Array> & Pick<RequestBody, 'chunks'> & { readonly length?: number; readonly contentMd5?: Uint8Array | undefined };

/** Streams `body` into the data stream of `key`'s partition; md5 is the body's (Put Blob stores it). */
export async function writeBody(tables: BlobTables, key: Buffer, body: DataBodyLike): Promise<WrittenData> {
  const sent = body.contentMd5;
  // A body that carried Content-MD5 checked it before its last chunk: that is its MD5, no second hash.
  const hash = sent === undefined ? bodyHash(body.length) : null;
  try {
    const written = await streamBody(tables, key, body, hash);
    return { ...written, md5: hash === null ? Buffer.from(sent ?? []) : await hash.digest() };
  } finally {
    hash?.drop();
  }
}

/**
 * Streams a Put Block / Append Block body without hashing it: MD5 costs ~3 ms of CPU per MiB (a
 * fifth of a large upload's server CPU) and nothing reads a block's MD5 (Put Block List and Get
 * Block List use sizes and refs; an append blob has no MD5). The Content-MD5 the client sent, if
 * any, was checked by the body and is echoed; `computeMd5` (x-ms-version before 2019-02-02, where
 * Azure answers the MD5 of every block) hashes a body that sent none.
 */
export async function writeBlock(tables: BlobTables, key: Buffer, body: DataBodyLike, options: { readonly computeMd5: boolean }): Promise<WrittenBlock> {
  if (options.computeMd5 && body.contentMd5 === undefined) return writeBody(tables, key, body);
  const written = await streamBody(tables, key, body, null);
  return { ...written, md5: body.contentMd5 === undefined ? null : Buffer.from(body.contentMd5) };
}

/** A body's running MD5: on the main thread, or for a large (or unknown-length) body on an Md5Pool worker. */
interface BodyHash {
  /** True when update() takes the piece as one buffer (a worker gets a copy anyway): a piece in parts is joined once, and that buffer is appended. */
  readonly joins: boolean;
  /** Hashes `piece` (after every earlier update); its bytes may be appended meanwhile. */
  update(piece: Body): Promise<void>;
  digest(): Promise<Buffer>;
  /** Ends the hash unused (the body failed); a no-op after digest. */
  drop(): void;
}

function bodyHash(length: number | undefined): BodyHash {
  if (length === undefined || length >= md5WorkerBodyBytesMin) {
    const session = sharedMd5Pool().session();
    return { joins: true, update: (piece) => session.update(bodyBytes(piece)), digest: () => session.digest(), drop: () => session.drop() };
  }
  // Below md5WorkerBodyBytesMin the body is one piece (dataAppendBytesMax is larger), hashed at the end
  // over the parts it arrived in (md5.ts: one part by the one-shot call, several by a Hash object),
  // so it is never joined: a 64 KiB body in two socket chunks hashes in ~117 µs as parts against
  // ~148 µs joined then hashed (the join ~28 µs and a fresh 64 KiB buffer), and goes down to the
  // journal as those parts (bench/README.md, "eighth session: 64 KiB Put").
  const parts: Uint8Array[] = [];
  return { joins: false, update: (piece) => { parts.push(...bodyPartsOf(piece)); return Promise.resolve(); }, digest: () => Promise.resolve(md5(parts)), drop: () => undefined };
}

async function streamBody(tables: BlobTables, key: Buffer, body: DataBodyLike, hash: BodyHash | null): Promise<{ refs: DataRef[]; size: number }> {
  const refs: DataRef[] = [];
  // Tiny chunks (a slow client) are coalesced rather than held as thousands of parts.
  const pending = new BodyPartsCollector({ chunkBytesMin: appendBodyChunkBytesMin, stagingBytes: appendBodyStagingBytes, partsUncopied: appendBodyPartsUncopied });
  let size = 0;
  // At most one append of this body in flight: the next piece is read from the socket while the
  // previous one is made durable (the extent's write and fsync no longer stop this body's reading),
  // and a piece is appended only after the one before it was (its ref is pushed in body order).
  let inFlight: Promise<void> | null = null;
  const settled = async (): Promise<void> => {
    const previous = inFlight;
    inFlight = null;
    await previous;
  };
  const flush = async (all: boolean): Promise<void> => {
    while (pending.length >= dataAppendBytesMax || (all && pending.length > 0)) {
      await settled();
      // The chunks go down as they arrived (one pwritev on every replica, no 4 MiB join); a body
      // hashed on the MD5 worker is joined, since the worker gets a copy of it anyway. One chunk
      // (most small Put Blobs) is appended as is.
      const parts = pending.take(Math.min(dataAppendBytesMax, pending.length));
      const bytes = hash?.joins === true ? bodyBytes(parts) : parts;
      // The piece is hashed (on a worker, for a large body) while it is made durable.
      const append = Promise.all([tables.appendData(key, bytes), hash?.update(bytes)]).then(([ref]) => { refs.push(ref); });
      // Handled here so a failure while the body is still being read is not an unhandled
      // rejection; settled() (before the next append, at the end, or on the way out) rethrows it.
      append.catch(() => {});
      inFlight = append;
    }
  };
  try {
    // A body below md5WorkerBodyBytesMin is one append held whole before it anyway (dataAppendBytesMax is
    // larger): read by chunks(), without the async generator over the stream's iterator per request.
    const whole = body.chunks !== undefined && body.length !== undefined && body.length < md5WorkerBodyBytesMin ? await body.chunks() : null;
    for await (const chunk of whole ?? body) {
      size += chunk.length;
      pending.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      await flush(false);
    }
    await flush(true);
    await settled();
  } finally {
    // A body that failed mid-way (client gone, bad length or MD5) still waits for its append in
    // flight: nothing of it outlives the request's body reservation (http-server.ts).
    const orphan = inFlight as Promise<void> | null;
    if (orphan !== null) await orphan.catch(() => {});
  }
  return { refs, size };
}

/** A small body read whole (an inline body, docs/blob-schema.md "Inline bodies"). */
export async function readBodyWhole(body: RequestBody): Promise<{ bytes: Buffer; md5: Buffer }> {
  const sent = body.contentMd5;
  const chunks: Uint8Array[] = body.chunks === undefined ? [] : await body.chunks();
  if (body.chunks === undefined) for await (const chunk of body) chunks.push(chunk);
  let size = 0;
  for (const chunk of chunks) size += chunk.length;
  assert(size === body.length, 'a request body yields exactly its length');
  // One chunk (most small bodies) is used as is: the RPC that carries the row copies it anyway,
  // and the partition keeps its own decoded copy, so nothing here outlives the request.
  const only = chunks.length === 1 ? chunks[0] : undefined;
  const bytes = only === undefined ? Buffer.concat(chunks, size) : Buffer.from(only.buffer, only.byteOffset, only.byteLength);
  // As writeBody: a body that carried Content-MD5 checked it before its last chunk, no second hash;
  // else one one-shot hash of the bytes held whole (md5.ts).
  return { bytes, md5: sent === undefined ? md5([bytes]) : Buffer.from(sent) };
}

/**
 * The bytes [start, end] (inclusive) of the concatenation of `refs`, streamed. One piece is read
 * ahead: the next ref's bytes are fetched while the consumer writes the current ones to its
 * client (a large download otherwise waits for each 4 MiB read between writes), so at most two
 * pieces are held.
 */
export async function* readRefs(tables: BlobTables, key: Buffer, refs: readonly DataRef[], range: { readonly start: number; readonly end: number }, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  const pieces = piecesOf(refs, range);
  let ahead: Promise<Buffer> | null = null;
  try {
    for (const [index, piece] of pieces.entries()) {
      signal?.throwIfAborted();
      const current: Promise<Buffer> = ahead ?? tables.readData(key, piece);
      ahead = null;
      const bytes = await current;
      const next = pieces[index + 1];
      if (next !== undefined) ahead = tables.readData(key, next);
      yield bytes;
    }
  } finally {
    // A consumer that stopped early (client gone) leaves the read ahead unawaited: its failure is moot.
    ahead?.catch(() => {});
  }
}

/**
 * The bytes [start, end] (inclusive) of the concatenation of `refs`, read whole (a small range,
 * getBlobWholeBodyBytesMax, or a range hashed before it is served). One piece (a small blob's
 * only ref) is answered as read, not copied. With a cache, a ref it may hold is read whole through
 * it (a small ref is one block, which the extent store reads and checks whole anyway) and sliced.
 */
export async function readRefsWhole(tables: BlobTables, key: Buffer, refs: readonly DataRef[], range: { readonly start: number; readonly end: number }, cache?: DataCache): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (const { ref, from, to } of spansOf(refs, range)) {
    if (cache?.holds(ref) === true) parts.push((await cache.read(tables, key, ref)).subarray(from, to));
    else parts.push(await tables.readData(key, { extentId: ref.extentId, offset: ref.offset + from, length: to - from }));
  }
  const bytes = parts.length === 1 && parts[0] !== undefined ? parts[0] : Buffer.concat(parts);
  assert(bytes.length === Math.max(0, range.end - range.start + 1), 'a whole read yields exactly its range');
  return bytes;
}

/** The ref pieces (extent ranges) holding [start, end] of the concatenation of `refs`. */
function piecesOf(refs: readonly DataRef[], range: { readonly start: number; readonly end: number }): DataRef[] {
  return spansOf(refs, range).map(({ ref, from, to }) => ({ extentId: ref.extentId, offset: ref.offset + from, length: to - from }));
}

/** The refs overlapping [start, end] of the concatenation of `refs`, each with the part [from, to) of it inside. */
function spansOf(refs: readonly DataRef[], range: { readonly start: number; readonly end: number }): { ref: DataRef; from: number; to: number }[] {
  const spans: { ref: DataRef; from: number; to: number }[] = [];
  let base = 0;
  for (const ref of refs) {
    const refEnd = base + ref.length;
    if (refEnd > range.start && base <= range.end) {
      const from = Math.max(range.start, base) - base;
      const to = Math.min(range.end + 1, refEnd) - base;
      assert(to > from, 'an overlapping ref contributes bytes');
      spans.push({ ref, from, to });
    }
    base = refEnd;
    if (base > range.end) break;
  }
  return spans;
}

export function refsLength(refs: readonly DataRef[]): number {
  return refs.reduce((sum, ref) => sum + ref.length, 0);
}

/** A request body read as is (for tests and internal copies): satisfies RequestBody. */
export function bodyOf(chunks: readonly Uint8Array[]): RequestBody {
  const length = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
  return { length, async *[Symbol.asyncIterator]() { for (const chunk of chunks) yield await Promise.resolve(chunk); } };
}
