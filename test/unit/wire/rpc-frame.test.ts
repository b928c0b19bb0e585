// RPC frame codec (docs/formats/rpc-frame.md): round trips, feeding split at every byte,
// corruption always detected, hostile lengths rejected before any allocation.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { rpcFrameBytesMax, rpcHeaderBytesMax } from '../../../src/constants.ts';
import { crc32c } from '../../../src/util/crc32c.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import type { StorageErrorCode } from '../../../src/util/errors.ts';
import {
  RpcFrameDecoder, encodeRpcFrame, rpcBodyBytesMax, rpcFrameMagic, rpcFramePrefixBytes, rpcFrameVersion, rpcMethodBytesMax,
} from '../../../src/wire/rpc-frame.ts';
import type { FrameHeader, RpcFrame, RpcFrameKind } from '../../../src/wire/rpc-frame.ts';

const frameArbitrary: fc.Arbitrary<RpcFrame> = fc.record({
  kind: fc.constantFrom<RpcFrameKind>('request', 'response', 'error'),
  requestId: fc.nat({ max: 0xffff_ffff }),
  method: fc.string({ maxLength: 60, unit: 'grapheme' }),
  deadlineMs: fc.nat({ max: 0xffff_ffff }),
  header: fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 }) as fc.Arbitrary<FrameHeader>,
  body: fc.uint8Array({ maxLength: 2048 }).map((bytes) => Buffer.from(bytes)),
});

/** What a frame decodes to: its header after a JSON round trip (-0 becomes 0). */
function expected(frame: RpcFrame): RpcFrame {
  return { ...frame, header: JSON.parse(JSON.stringify(frame.header)) as FrameHeader };
}

function strip(frame: RpcFrame): RpcFrame {
  return { kind: frame.kind, requestId: frame.requestId, method: frame.method, deadlineMs: frame.deadlineMs, header: frame.header, body: frame.body };
}

function decodeAll(chunks: readonly Uint8Array[]): RpcFrame[] {
  const decoder = new RpcFrameDecoder();
  const frames = chunks.flatMap((chunk) => decoder.push(chunk).map(strip));
  assert.equal(decoder.bufferedBytes, 0, 'no partial frame left');
  return frames;
}

function throwsCode(run: () => unknown, codes: readonly StorageErrorCode[]): void {
  assert.throws(run, (error: unknown) => isStorageError(error) && codes.includes(error.code));
}

interface RawFrame {
  magic?: number;
  version?: number;
  kind?: number;
  method?: Buffer;
  header?: Buffer;
  body?: Buffer;
  headerBytes?: number;
  bodyBytes?: number;
}

/** A frame built by hand with correct CRCs, to reach the checks behind the prefix CRC. */
function rawFrame(raw: RawFrame): Buffer {
  const method = raw.method ?? Buffer.from('m');
  const header = raw.header ?? Buffer.from('{}');
  const body = raw.body ?? Buffer.alloc(0);
  const prefix = Buffer.alloc(rpcFramePrefixBytes);
  prefix.writeUInt32BE(raw.magic ?? rpcFrameMagic, 0);
  prefix.writeUInt8(raw.version ?? rpcFrameVersion, 4);
  prefix.writeUInt8(raw.kind ?? 1, 5);
  prefix.writeUInt16BE(method.length, 6);
  prefix.writeUInt32BE(9, 8);
  prefix.writeUInt32BE(100, 12);
  prefix.writeUInt32BE(raw.headerBytes ?? header.length, 16);
  prefix.writeUInt32BE(raw.bodyBytes ?? body.length, 20);
  prefix.writeUInt32BE(crc32c(header, crc32c(method)), 24);
  prefix.writeUInt32BE(crc32c(body), 28);
  prefix.writeUInt32BE(crc32c(prefix.subarray(0, 32)), 32);
  return Buffer.concat([prefix, method, header, body]);
}

const sample: RpcFrame = { kind: 'request', requestId: 77, method: 'extent.append', deadlineMs: 5000, header: { extent: 'e1', offset: 4096 }, body: Buffer.from('payload bytes') };

describe('rpc frame codec', { timeout: 60_000 }, () => {
  it('round-trips arbitrary frames, one or many per chunk', () => {
    let runs = 0;
    fc.assert(fc.property(fc.array(frameArbitrary, { minLength: 1, maxLength: 4 }), (frames) => {
      runs += 1;
      const bytes = Buffer.concat(frames.map(encodeRpcFrame));
      assert.deepEqual(decodeAll([bytes]), frames.map(expected));
    }), { numRuns: 300 });
    assert.equal(runs, 300);
  });

  it('decodes the same frames however the bytes are split', () => {
    fc.assert(fc.property(frameArbitrary, frameArbitrary, (a, b) => {
      const bytes = Buffer.concat([encodeRpcFrame(a), encodeRpcFrame(b)]);
      for (let split = 0; split <= bytes.length; split += Math.max(1, Math.floor(bytes.length / 40))) {
        assert.deepEqual(decodeAll([bytes.subarray(0, split), bytes.subarray(split)]), [expected(a), expected(b)]);
      }
    }), { numRuns: 50 });
  });

  it('decodes when split at every byte, and when fed one byte at a time', (t) => {
    const bytes = Buffer.concat([encodeRpcFrame(sample), encodeRpcFrame({ ...sample, kind: 'response', method: '', requestId: 78 })]);
    for (let split = 0; split <= bytes.length; split++) {
      assert.equal(decodeAll([bytes.subarray(0, split), bytes.subarray(split)]).length, 2, `split at ${split}`);
    }
    const oneByOne = decodeAll(Array.from(bytes, (byte) => Uint8Array.of(byte)));
    assert.deepEqual(oneByOne[0], sample);
    t.diagnostic(`${bytes.length + 1} split points checked`);
  });

  it('returns nothing for a truncated frame', () => {
    const bytes = encodeRpcFrame(sample);
    for (let length = 0; length < bytes.length; length++) {
      const decoder = new RpcFrameDecoder();
      assert.deepEqual(decoder.push(bytes.subarray(0, length)), []);
      assert.equal(decoder.bufferedBytes, length);
    }
  });

  it('detects every single-bit flip, and stays failed afterwards', (t) => {
    const bytes = encodeRpcFrame(sample);
    let detected = 0;
    for (let bit = 0; bit < bytes.length * 8; bit++) {
      const corrupt = Buffer.from(bytes);
      corrupt[bit >> 3]! ^= 1 << (bit & 7);
      const decoder = new RpcFrameDecoder();
      throwsCode(() => decoder.push(corrupt), ['wire.corrupt', 'wire.too_large', 'wire.unsupported_version']);
      throwsCode(() => decoder.push(encodeRpcFrame(sample)), ['wire.corrupt', 'wire.too_large', 'wire.unsupported_version']);
      detected += 1;
    }
    t.diagnostic(`${detected}/${bytes.length * 8} bit flips detected`);
  });

  it('detects random byte corruption of arbitrary frames', () => {
    fc.assert(fc.property(frameArbitrary, fc.nat(), fc.integer({ min: 1, max: 255 }), (frame, at, mask) => {
      const corrupt = Buffer.from(encodeRpcFrame(frame));
      corrupt[at % corrupt.length]! ^= mask;
      throwsCode(() => new RpcFrameDecoder().push(corrupt), ['wire.corrupt', 'wire.too_large', 'wire.unsupported_version']);
    }), { numRuns: 500 });
  });

  it('throws only StorageErrors on arbitrary garbage', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (garbage) => {
      try {
        new RpcFrameDecoder().push(garbage);
      } catch (error) {
        assert.ok(isStorageError(error), String(error));
      }
    }), { numRuns: 500 });
  });

  it('rejects lengths over the limits without allocating for them', (t) => {
    const allocUnsafe = t.mock.method(Buffer, 'allocUnsafe');
    throwsCode(() => new RpcFrameDecoder().push(rawFrame({ bodyBytes: 0xffff_ffff })), ['wire.too_large']);
    throwsCode(() => new RpcFrameDecoder().push(rawFrame({ headerBytes: rpcHeaderBytesMax + 1 })), ['wire.too_large']);
    throwsCode(() => new RpcFrameDecoder().push(rawFrame({ bodyBytes: rpcBodyBytesMax(1, 2) + 1 })), ['wire.too_large']);
    throwsCode(() => new RpcFrameDecoder().push(rawFrame({ method: Buffer.alloc(rpcMethodBytesMax + 1, 0x61) })), ['wire.too_large']);
    const largest = Math.max(...allocUnsafe.mock.calls.map((call) => Number(call.arguments[0])));
    assert.ok(largest <= rpcFramePrefixBytes, `largest allocation ${largest} bytes`);
    t.diagnostic(`${allocUnsafe.mock.callCount()} allocations, largest ${largest} bytes`);
  });

  it('rejects bad magic, version, kind and header', () => {
    throwsCode(() => new RpcFrameDecoder().push(rawFrame({ magic: 0x12345678 })), ['wire.corrupt']);
    throwsCode(() => new RpcFrameDecoder().push(rawFrame({ version: 2 })), ['wire.unsupported_version']);
    throwsCode(() => new RpcFrameDecoder().push(rawFrame({ kind: 4 })), ['wire.corrupt']);
    throwsCode(() => new RpcFrameDecoder().push(rawFrame({ header: Buffer.from('[1]') })), ['wire.corrupt']);
    throwsCode(() => new RpcFrameDecoder().push(rawFrame({ header: Buffer.from('{"a":') })), ['wire.corrupt']);
    throwsCode(() => new RpcFrameDecoder().push(rawFrame({ method: Buffer.from([0xff, 0xfe]) })), ['wire.corrupt']);
    assert.equal(new RpcFrameDecoder().push(rawFrame({})).length, 1, 'the hand-built frame itself is valid');
  });

  it('refuses to encode over-limit frames and accepts the largest body', () => {
    const method = 'x';
    const bodyBytesMax = rpcBodyBytesMax(1, 2);
    const largest = encodeRpcFrame({ ...sample, method, header: {}, body: Buffer.alloc(bodyBytesMax) });
    assert.equal(largest.length, rpcFrameBytesMax);
    assert.equal(decodeAll([largest])[0]?.body.length, bodyBytesMax);
    throwsCode(() => encodeRpcFrame({ ...sample, method, header: {}, body: Buffer.alloc(bodyBytesMax + 1) }), ['wire.too_large']);
    throwsCode(() => encodeRpcFrame({ ...sample, header: { pad: 'x'.repeat(rpcHeaderBytesMax) } }), ['wire.too_large']);
    throwsCode(() => encodeRpcFrame({ ...sample, method: 'm'.repeat(rpcMethodBytesMax + 1) }), ['wire.too_large']);
  });

  it('returns bodies that do not alias the input chunks', () => {
    const bytes = encodeRpcFrame(sample);
    const [frame] = new RpcFrameDecoder().push(bytes);
    bytes.fill(0);
    assert.equal(frame?.body.toString(), 'payload bytes');
  });
});
