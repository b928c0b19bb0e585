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

/** A body of `parts` (a single part is that Buffer itself). */
export function bodyOfParts(parts: readonly Buffer[]): Body {
  const only = parts.length === 1 ? parts[0] : undefined;
  return only ?? (parts.length === 0 ? Buffer.alloc(0) : new BodyParts(parts));
}
