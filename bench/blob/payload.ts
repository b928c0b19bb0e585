// Deterministic, unique blob contents: every payload is a fixed pseudo-random pattern with the
// blob's own name written at its start, so any blob can be regenerated from its name and size
// and a read-back that returns another blob's bytes, a stale version or a torn write is caught.
// The ledger of acknowledged writes therefore needs only names and sizes (bounded memory).
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
      this.block = this.entry.blockCount === 1 ? payloadFor(this.entry.name, this.entry.sizeBytes) : payloadFor(`${this.entry.name}#${index}`, this.blockBytes);
      this.blockIndex = index;
    }
    return this.block;
  }
}
