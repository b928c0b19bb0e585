// Deterministic, unique blob contents: every payload is a fixed pseudo-random pattern with the
// blob's own name written at its start, so any blob can be regenerated from its name and size
// and a read-back that returns another blob's bytes, a stale version or a torn write is caught.
// The ledger of acknowledged writes therefore needs only names and sizes (bounded memory).
import { crc32c } from '../../src/util/crc32c.ts';
import { SeededRandom } from '../../src/util/random.ts';

const patternBytes = 8 << 20;
let pattern: Buffer | null = null;

function basePattern(): Buffer {
  if (pattern === null) {
    pattern = new SeededRandom(5).bytes(patternBytes);
  }
  return pattern;
}

/** The bytes of blob `name` of `sizeBytes` (at most 8 MiB: larger blobs are made of blocks). */
export function payloadFor(name: string, sizeBytes: number): Buffer {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0 || sizeBytes > patternBytes) throw new Error(`payload size ${sizeBytes} out of range`);
  const body = Buffer.allocUnsafe(sizeBytes);
  basePattern().copy(body, 0, 0, sizeBytes);
  body.write(`${name}\n`, 0, Math.min(sizeBytes, Buffer.byteLength(name) + 1), 'utf8');
  return body;
}

/**
 * Block bodies for large uploads without an 8 MiB allocation and copy per block inside the timed
 * loop: one buffer per block in flight, each a copy of the pattern made once, and `fill` writes
 * only the block's name at its start (after restoring the pattern there). The bytes are exactly
 * payloadFor(name, sizeBytes). A buffer is handed out by `take` and comes back by `give` once its
 * Put Block answered (the whole body was sent by then).
 */
export class BlockPayloads {
  private readonly sizeBytes: number;
  private readonly free: Buffer[] = [];
  private readonly nameBytesMax = 256;

  /** `slots` buffers are made now (before any timing): one per block in flight. */
  constructor(sizeBytes: number, slots: number) {
    this.sizeBytes = sizeBytes;
    for (let slot = 0; slot < slots; slot++) this.free.push(payloadFor('', sizeBytes));
  }

  /** Runs `send` with block `name`'s bytes in a buffer no other send holds meanwhile. */
  async with<T>(name: string, send: (body: Buffer) => Promise<T>): Promise<T> {
    const body = this.free.pop() ?? payloadFor('', this.sizeBytes);
    const head = Math.min(this.sizeBytes, this.nameBytesMax);
    if (Buffer.byteLength(name) + 1 > head) throw new Error(`block name ${name} longer than ${head - 1} bytes`);
    basePattern().copy(body, 0, 0, head);
    body.write(`${name}\n`, 0, Math.min(this.sizeBytes, Buffer.byteLength(name) + 1), 'utf8');
    try {
      return await send(body);
    } finally {
      this.free.push(body);
    }
  }
}

/** One acknowledged write: enough to regenerate and compare what a read returns. */
export interface LedgerEntry {
  readonly container: string;
  readonly name: string;
  readonly sizeBytes: number;
  /** Blobs above 8 MiB are `blockCount` blocks of `sizeBytes / blockCount`, block i named `name#i`. */
  readonly blockCount: number;
}

/** Compares a streamed read against the expected bytes, one block at a time. */
export class StreamVerifier {
  private readonly entry: LedgerEntry;
  private readonly blockBytes: number;
  private position = 0;
  private block: Buffer | null = null;
  private blockIndex = -1;
  private mismatch = false;

  constructor(entry: LedgerEntry) {
    this.entry = entry;
    this.blockBytes = entry.blockCount === 1 ? entry.sizeBytes : entry.sizeBytes / entry.blockCount;
  }

  push(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length && !this.mismatch) {
      if (this.position >= this.entry.sizeBytes) return void (this.mismatch = true);
      const index = Math.floor(this.position / this.blockBytes);
      const block = this.expectedBlock(index);
      const within = this.position - index * this.blockBytes;
      const size = Math.min(chunk.length - offset, block.length - within);
      if (!chunk.subarray(offset, offset + size).equals(block.subarray(within, within + size))) this.mismatch = true;
      offset += size;
      this.position += size;
    }
  }

  /** True when exactly the expected bytes were pushed. */
  matches(): boolean {
    return !this.mismatch && this.position === this.entry.sizeBytes;
  }

  private expectedBlock(index: number): Buffer {
    if (index !== this.blockIndex || this.block === null) {
      this.block = expectedBlock(this.entry, index);
      this.blockIndex = index;
    }
    return this.block;
  }
}

/** The bytes of block `index` of `entry` (the whole blob when it has one block). */
function expectedBlock(entry: LedgerEntry, index: number): Buffer {
  return entry.blockCount === 1 ? payloadFor(entry.name, entry.sizeBytes) : payloadFor(`${entry.name}#${index}`, entry.sizeBytes / entry.blockCount);
}

/** The CRC32C of what `entry` holds, block by block: computed before a timed download, untimed. */
export function expectedCrc32c(entry: LedgerEntry): number {
  let crc = 0;
  for (let index = 0; index < entry.blockCount; index++) crc = crc32c(expectedBlock(entry, index), crc);
  return crc;
}

/**
 * A timed download's check: the running CRC32C and length of what arrived, compared with
 * expectedCrc32c afterwards. Unlike StreamVerifier (which regenerates and compares every byte, and
 * stops at the first difference), it does the same per-byte work whatever the bytes are, so a
 * peer whose bytes cannot match (the null server serves a fixed buffer: it is held to the length)
 * does not get a cheaper client than one that is verified.
 */
export class StreamChecksum {
  #crc = 0;
  #bytes = 0;

  push(chunk: Uint8Array): void {
    this.#crc = crc32c(chunk, this.#crc);
    this.#bytes += chunk.length;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** True when exactly `length` bytes with this CRC32C arrived. */
  matches(length: number, crc: number): boolean {
    return this.#bytes === length && this.#crc === crc >>> 0;
  }
}
