// Self-checking payloads (docs/simulation.md, "Workload"): every byte the workload writes can be
// checked on its own. A payload is
//
//   0      4        8           16       20       24        32
//   "KSIM" │writer  │sequence    │length  │crc32c  │part     │ body (length − 32 bytes) ...
//          u32 BE   u64 BE       u32 BE   of body  u32 BE
//
// and its body is derived from (writer, sequence, part), so it can be regenerated to compare
// byte for byte. A page write carries one such payload per 512-byte page (part = page index).
//
// Invariants: generate() is a pure function of its identity; verify() accepts only bytes equal to
// generate() of the identity written in their own header.
import { crc32c } from '../src/util/crc32c.ts';

export const payloadHeaderBytes = 32;
const magic = Buffer.from('KSIM', 'latin1');

export interface PayloadId {
  readonly writer: number;
  readonly sequence: number;
  readonly part: number;
}

export function payloadKey(id: PayloadId): string {
  return `${id.writer}.${id.sequence}.${id.part}`;
}

/** The payload of `id`, `length` bytes (≥ the header). */
export function generatePayload(id: PayloadId, length: number): Buffer {
  const out = Buffer.alloc(Math.max(length, payloadHeaderBytes));
  let x = (Math.imul(id.writer + 1, 0x9e3779b1) ^ Math.imul(id.sequence + 1, 0x85ebca6b) ^ Math.imul(id.part + 1, 0xc2b2ae35)) >>> 0;
  for (let i = payloadHeaderBytes; i < out.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  magic.copy(out, 0);
  out.writeUInt32BE(id.writer, 4);
  out.writeBigUInt64BE(BigInt(id.sequence), 8);
  out.writeUInt32BE(out.length, 16);
  out.writeUInt32BE(crc32c(out.subarray(payloadHeaderBytes)), 20);
  out.writeUInt32BE(id.part, 24);
  return out;
}

export type PayloadVerdict = { readonly ok: true; readonly id: PayloadId } | { readonly ok: false; readonly why: string };

/** Checks bytes against their own header and against a regeneration of that identity. */
export function verifyPayload(bytes: Buffer): PayloadVerdict {
  if (bytes.length < payloadHeaderBytes || !bytes.subarray(0, 4).equals(magic)) return { ok: false, why: 'no payload header' };
  const length = bytes.readUInt32BE(16);
  if (length !== bytes.length) return { ok: false, why: `length ${bytes.length}, header says ${length}` };
  if (crc32c(bytes.subarray(payloadHeaderBytes)) !== bytes.readUInt32BE(20)) return { ok: false, why: 'body crc mismatch' };
  const id = { writer: bytes.readUInt32BE(4), sequence: Number(bytes.readBigUInt64BE(8)), part: bytes.readUInt32BE(24) };
  if (!generatePayload(id, length).equals(bytes)) return { ok: false, why: 'bytes differ from their regeneration' };
  return { ok: true, id };
}
