// A byte body held as the pieces it arrived in: a large blob append is the 64 KiB socket chunks
// node:http read, passed from the front end through LocalNetwork, the partition, the stream
// client and the extent node to one pwritev, without being joined into a fresh 4 MiB buffer
// (a copy, and external memory that drives V8's full collections; bench/README.md "sixth
// session: large upload").
//
// Invariants: the bytes of a BodyParts are the concatenation of `parts` in order; `length` is
// their byte count (the same meaning as a Buffer's, so length checks read alike for both);
// parts are read-only once wrapped (the ownership rule of src/rpc/local-network.ts: a sender
// never modifies a body it handed over). A checksum over the parts equals the one over their
// concatenation (crc32c is chained), so what is checked is exactly what is written.
// Fault model: none (pure data).
import { assert } from './assert.ts';
import { crc32c } from './crc32c.ts';

export class BodyParts {
  readonly parts: readonly Buffer[];
  /** Bytes, as Buffer.length. */
  readonly length: number;

  constructor(parts: readonly Buffer[]) {
    assert(parts.length >= 2, 'a body of one part is passed as that Buffer');
    let length = 0;
    for (const part of parts) length += part.length;
    this.parts = parts;
    this.length = length;
  }
}

/** A body: one buffer, or the parts it arrived in. */
export type Body = Buffer | BodyParts;

/** The body as one buffer: itself, or its parts joined (one copy; for paths that need contiguous bytes). */
export function bodyBytes(body: Body): Buffer {
  return body instanceof BodyParts ? Buffer.concat(body.parts, body.length) : body;
}

/** The body as writev parts (no copy). */
export function bodyPartsOf(body: Uint8Array | BodyParts): readonly Uint8Array[] {
  return body instanceof BodyParts ? body.parts : [body];
}

/** CRC32C of the body's bytes, over its parts in order. */
export function bodyCrc32c(body: Uint8Array | BodyParts): number {
  if (!(body instanceof BodyParts)) return crc32c(body);
  let crc = 0;
  for (const part of body.parts) crc = crc32c(part, crc);
  return crc;
}

/**
 * Collects a streamed body's chunks as parts and hands out pieces of them. A chunk that fits the
 * open staging buffer is copied there; otherwise it is kept as a part (not copied) if it has at
 * least `chunkBytesMin` bytes or fewer than `partsUncopied` parts are held, else it opens a new
 * staging buffer of `stagingBytes`, which becomes a part when the next chunk does not fit (or a
 * piece is taken). Every byte is copied at most once.
 */
export class BodyPartsCollector {
  private parts: Buffer[] = [];
  private staging: Buffer | null = null;
  private stagingUsed = 0;
  private readonly chunkBytesMin: number;
  private readonly stagingBytes: number;
  private readonly partsUncopied: number;
  /** Bytes held (parts and staging). */
  length = 0;

  constructor(options: { readonly chunkBytesMin: number; readonly stagingBytes: number; readonly partsUncopied: number }) {
    assert(options.chunkBytesMin <= options.stagingBytes, 'a small chunk fits an empty staging buffer');
    this.chunkBytesMin = options.chunkBytesMin;
    this.stagingBytes = options.stagingBytes;
    this.partsUncopied = options.partsUncopied;
  }

  /** Parts held, not counting an open staging buffer. */
  get partCount(): number {
    return this.parts.length;
  }

  push(chunk: Buffer): void {
    this.length += chunk.length;
    const room = this.staging === null ? 0 : this.staging.length - this.stagingUsed;
    if (chunk.length > room) {
      this.sealStaging();
      if (chunk.length >= this.chunkBytesMin || this.parts.length < this.partsUncopied) {
        this.parts.push(chunk);
        return;
      }
      this.staging = Buffer.allocUnsafe(this.stagingBytes);
    }
    assert(this.staging !== null, 'a staging buffer is open');
    this.stagingUsed += chunk.copy(this.staging, this.stagingUsed);
  }

  /** The first `bytes` held, as a body (the part on the boundary split by a view, not copied). */
  take(bytes: number): Body {
    assert(bytes >= 1 && bytes <= this.length, 'take within the bytes held');
    this.sealStaging();
    const piece: Buffer[] = [];
    let taken = 0;
    let index = 0;
    let rest: Buffer | null = null;
    for (; taken < bytes; index++) {
      const part = this.parts[index];
      assert(part !== undefined, 'the parts hold the bytes taken');
      const want = bytes - taken;
      piece.push(part.length > want ? part.subarray(0, want) : part);
      if (part.length > want) rest = part.subarray(want);
      taken += Math.min(want, part.length);
    }
    this.parts = rest === null ? this.parts.slice(index) : [rest, ...this.parts.slice(index)];
    this.length -= bytes;
    return bodyOfParts(piece);
  }

  private sealStaging(): void {
    if (this.staging !== null && this.stagingUsed > 0) this.parts.push(this.staging.subarray(0, this.stagingUsed));
    this.staging = null;
    this.stagingUsed = 0;
  }
}

/** A body of `parts` (a single part is that Buffer itself). */
export function bodyOfParts(parts: readonly Buffer[]): Body {
  const only = parts.length === 1 ? parts[0] : undefined;
  return only ?? (parts.length === 0 ? Buffer.alloc(0) : new BodyParts(parts));
}
