// CRC-64/NVME, the checksum of Azure Storage's x-ms-content-crc64 (reflected polynomial
// 0x9A6C9329AC4BC9B5, initial value and final XOR all ones; check value of "123456789":
// 0xAE8B14860A799888). Azure's header is the Base64 of the value's 8 bytes little-endian.
//
// Why not @aws-sdk/crc64-nvme (STYLE.md's choice): its pure-JS digest measured 29 MB/s here and it
// brings 10 packages (@aws-sdk/core, @smithy/*, ...) for one table-driven loop. This is that loop,
// slice-by-8 over two 32-bit halves (no BigInt in the hot path), checked in the unit test against a
// bit-at-a-time BigInt reference on random inputs and against the catalogue's check value.
//
// Invariants: update() may be called with any split of the input and gives the same value as one
// call; digest() does not end the hash (a running value).
// Fault model: none (pure computation).

const polyLo = 0xac4bc9b5;
const polyHi = 0x9a6c9329;

/** Tables T0..T7 (slice-by-8), each 256 entries, as low and high 32-bit halves. */
const tableLo = new Uint32Array(8 * 256);
const tableHi = new Uint32Array(8 * 256);

for (let byte = 0; byte < 256; byte++) {
  let lo = byte;
  let hi = 0;
  for (let bit = 0; bit < 8; bit++) {
    const carry = lo & 1;
    lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
    hi = hi >>> 1;
    if (carry !== 0) {
      lo = (lo ^ polyLo) >>> 0;
      hi = (hi ^ polyHi) >>> 0;
    }
  }
  tableLo[byte] = lo;
  tableHi[byte] = hi;
}
for (let slice = 1; slice < 8; slice++) {
  for (let byte = 0; byte < 256; byte++) {
    const previousLo = tableLo[(slice - 1) * 256 + byte] ?? 0;
    const previousHi = tableHi[(slice - 1) * 256 + byte] ?? 0;
    const index = previousLo & 0xff;
    tableLo[slice * 256 + byte] = (((previousLo >>> 8) | (previousHi << 24)) ^ (tableLo[index] ?? 0)) >>> 0;
    tableHi[slice * 256 + byte] = ((previousHi >>> 8) ^ (tableHi[index] ?? 0)) >>> 0;
  }
}

/** A running CRC-64/NVME. */
export class Crc64 {
  #lo = 0xffffffff;
  #hi = 0xffffffff;

  update(bytes: Uint8Array): this {
    let lo = this.#lo;
    let hi = this.#hi;
    const tLo = tableLo;
    const tHi = tableHi;
    const end8 = bytes.length - (bytes.length % 8);
    let at = 0;
    for (; at < end8; at += 8) {
      lo ^= ((bytes[at] ?? 0) | ((bytes[at + 1] ?? 0) << 8) | ((bytes[at + 2] ?? 0) << 16) | ((bytes[at + 3] ?? 0) << 24));
      hi ^= ((bytes[at + 4] ?? 0) | ((bytes[at + 5] ?? 0) << 8) | ((bytes[at + 6] ?? 0) << 16) | ((bytes[at + 7] ?? 0) << 24));
      const i7 = 7 * 256 + (lo & 0xff);
      const i6 = 6 * 256 + ((lo >>> 8) & 0xff);
      const i5 = 5 * 256 + ((lo >>> 16) & 0xff);
      const i4 = 4 * 256 + (lo >>> 24);
      const i3 = 3 * 256 + (hi & 0xff);
      const i2 = 2 * 256 + ((hi >>> 8) & 0xff);
      const i1 = 256 + ((hi >>> 16) & 0xff);
      const i0 = hi >>> 24;
      lo = ((tLo[i7] ?? 0) ^ (tLo[i6] ?? 0) ^ (tLo[i5] ?? 0) ^ (tLo[i4] ?? 0) ^ (tLo[i3] ?? 0) ^ (tLo[i2] ?? 0) ^ (tLo[i1] ?? 0) ^ (tLo[i0] ?? 0));
      hi = ((tHi[i7] ?? 0) ^ (tHi[i6] ?? 0) ^ (tHi[i5] ?? 0) ^ (tHi[i4] ?? 0) ^ (tHi[i3] ?? 0) ^ (tHi[i2] ?? 0) ^ (tHi[i1] ?? 0) ^ (tHi[i0] ?? 0));
    }
    for (; at < bytes.length; at++) {
      const index = (lo ^ (bytes[at] ?? 0)) & 0xff;
      lo = ((lo >>> 8) | (hi << 24)) ^ (tLo[index] ?? 0);
      hi = (hi >>> 8) ^ (tHi[index] ?? 0);
    }
    this.#lo = lo >>> 0;
    this.#hi = hi >>> 0;
    return this;
  }

  /** The CRC of everything so far. */
  value(): bigint {
    return (BigInt((~this.#hi) >>> 0) << 32n) | BigInt((~this.#lo) >>> 0);
  }

  /** The CRC as Azure's x-ms-content-crc64 carries it: 8 bytes, little-endian. */
  digest(): Buffer {
    const out = Buffer.alloc(8);
    out.writeUInt32LE((~this.#lo) >>> 0, 0);
    out.writeUInt32LE((~this.#hi) >>> 0, 4);
    return out;
  }
}

/** CRC-64/NVME of `bytes` in Azure's byte order. */
export function crc64(bytes: Uint8Array): Buffer {
  return new Crc64().update(bytes).digest();
}
