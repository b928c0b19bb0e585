// RPC frames: the encoder and the incremental decoder of docs/formats/rpc-frame.md.
//
// Invariants:
// - No frame over rpcFrameBytesMax (header over rpcHeaderBytesMax, method over
//   rpcMethodBytesMax) is ever encoded or decoded.
// - A length read from the wire is checked against its limit, and the prefix CRC that covers
//   it is verified, before any buffer is allocated for the bytes it announces.
// - All three CRCs are verified before a frame is returned; decoded frames own their bytes
//   (nothing aliases the caller's chunks).
//
// Fault model: the byte stream may be truncated, corrupted or hostile. The decoder then throws a
// StorageError (wire.corrupt, wire.too_large, wire.unsupported_version) and stays failed: the
// owner must drop the connection. It never returns part of a frame.
import { rpcFrameBytesMax, rpcHeaderBytesMax } from '../constants.ts';
import { assert } from '../util/assert.ts';
import { crc32c, crcMatches } from '../util/crc32c.ts';
import { StorageError } from '../util/errors.ts';

/** Longest method name; it travels in a u16 but names like "extent.append" are short. */
export const rpcMethodBytesMax = 255;

export const rpcFrameMagic = 0x4b525043; // "KRPC"
export const rpcFrameVersion = 1;
export const rpcFramePrefixBytes = 36;

/** JSON values, as carried in a frame header. */
export type FrameJson = string | number | boolean | null | readonly FrameJson[] | { readonly [key: string]: FrameJson };
export type FrameHeader = { readonly [key: string]: FrameJson };

export type RpcFrameKind = 'request' | 'response' | 'error';

export interface RpcFrame {
  readonly kind: RpcFrameKind;
  readonly requestId: number;
  /** Empty for response and error frames. */
  readonly method: string;
  /** Request frames: milliseconds left before the caller gives up; 0 otherwise. */
  readonly deadlineMs: number;
  readonly header: FrameHeader;
  readonly body: Buffer;
}

const kindCodes: Readonly<Record<RpcFrameKind, number>> = { request: 1, response: 2, error: 3 };
const u32Max = 0xffff_ffff;

/** Largest body that fits in one frame next to this method and header. */
export function rpcBodyBytesMax(methodBytes: number, headerBytes: number): number {
  return rpcFrameBytesMax - rpcFramePrefixBytes - methodBytes - headerBytes;
}

/** Encodes a frame as [prefix + method + header, body], so a large body is never copied. */
export function encodeRpcFrameParts(frame: RpcFrame): readonly [Buffer, Buffer] {
  assert(Number.isInteger(frame.requestId) && frame.requestId >= 0 && frame.requestId <= u32Max, 'requestId must be a u32');
  assert(Number.isFinite(frame.deadlineMs) && frame.deadlineMs >= 0, 'deadlineMs must be non-negative');
  const method = Buffer.from(frame.method, 'utf8');
  const header = Buffer.from(JSON.stringify(frame.header), 'utf8');
  checkLimits(method.length, header.length, frame.body.length);
  const head = Buffer.allocUnsafe(rpcFramePrefixBytes + method.length + header.length);
  head.writeUInt32BE(rpcFrameMagic, 0);
  head.writeUInt8(rpcFrameVersion, 4);
  head.writeUInt8(kindCodes[frame.kind], 5);
  head.writeUInt16BE(method.length, 6);
  head.writeUInt32BE(frame.requestId, 8);
  head.writeUInt32BE(Math.min(u32Max, Math.ceil(frame.deadlineMs)), 12);
  head.writeUInt32BE(header.length, 16);
  head.writeUInt32BE(frame.body.length, 20);
  head.writeUInt32BE(crc32c(header, crc32c(method)), 24);
  head.writeUInt32BE(crc32c(frame.body), 28);
  head.writeUInt32BE(crc32c(head.subarray(0, 32)), 32);
  method.copy(head, rpcFramePrefixBytes);
  header.copy(head, rpcFramePrefixBytes + method.length);
  return [head, frame.body];
}

/** Encodes a frame into one buffer. */
export function encodeRpcFrame(frame: RpcFrame): Buffer {
  const [head, body] = encodeRpcFrameParts(frame);
  return Buffer.concat([head, body]);
}

/** Throws wire.too_large unless a frame of these sizes fits (LocalNetwork checks calls with it without encoding them). */
export function checkLimits(methodBytes: number, headerBytes: number, bodyBytes: number): void {
  if (methodBytes > rpcMethodBytesMax) {
    throw new StorageError('wire.too_large', `rpc method is ${methodBytes} bytes, limit ${rpcMethodBytesMax}`);
  }
  if (headerBytes > rpcHeaderBytesMax) {
    throw new StorageError('wire.too_large', `rpc header is ${headerBytes} bytes, limit ${rpcHeaderBytesMax}`);
  }
  const frameBytes = rpcFramePrefixBytes + methodBytes + headerBytes + bodyBytes;
  if (frameBytes > rpcFrameBytesMax) {
    throw new StorageError('wire.too_large', `rpc frame is ${frameBytes} bytes, limit ${rpcFrameBytesMax}`, {
      context: { bodyBytes, bodyBytesMax: rpcBodyBytesMax(methodBytes, headerBytes) },
    });
  }
}

interface Prefix {
  readonly kind: RpcFrameKind;
  readonly requestId: number;
  readonly deadlineMs: number;
  readonly methodBytes: number;
  readonly headerBytes: number;
  readonly bodyBytes: number;
  readonly headerCrc: number;
  readonly bodyCrc: number;
}

/** A decoded frame and its size on the wire (for in-flight byte accounting). */
export interface DecodedRpcFrame extends RpcFrame {
  readonly frameBytes: number;
}

type DecoderState =
  | { readonly kind: 'prefix'; readonly buffer: Buffer; filled: number }
  | { readonly kind: 'payload'; readonly prefix: Prefix; readonly buffer: Buffer; filled: number }
  | { readonly kind: 'failed'; readonly error: StorageError };

/**
 * Incremental decoder: push() chunks as they arrive and get back every frame they complete.
 * After an error every push() throws it again.
 */
export class RpcFrameDecoder {
  private state: DecoderState = newPrefixState();
  private framesDecoded = 0;

  /** Frames returned so far. */
  get frameCount(): number {
    return this.framesDecoded;
  }

  /** Bytes of a partly received frame (0 between frames). */
  get bufferedBytes(): number {
    const state = this.state;
    if (state.kind === 'failed') return 0;
    return state.kind === 'payload' ? rpcFramePrefixBytes + state.filled : state.filled;
  }

  push(chunk: Uint8Array): DecodedRpcFrame[] {
    const frames: DecodedRpcFrame[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      if (this.state.kind === 'failed') throw this.state.error;
      const state = this.state;
      const copied = Math.min(state.buffer.length - state.filled, chunk.length - offset);
      state.buffer.set(chunk.subarray(offset, offset + copied), state.filled);
      state.filled += copied;
      offset += copied;
      if (state.filled === state.buffer.length) {
        const frame = this.guard(() => this.advance());
        if (frame !== null) frames.push(frame);
      }
    }
    if (this.state.kind === 'failed') throw this.state.error;
    return frames;
  }

  private guard<T>(step: () => T): T {
    try {
      return step();
    } catch (error) {
      if (error instanceof StorageError) this.state = { kind: 'failed', error };
      throw error;
    }
  }

  /** Called when the current buffer is full: moves to the next state. */
  private advance(): DecodedRpcFrame | null {
    const state = this.state;
    if (state.kind === 'prefix') {
      const prefix = parsePrefix(state.buffer);
      const payloadBytes = prefix.methodBytes + prefix.headerBytes + prefix.bodyBytes;
      if (payloadBytes === 0) return this.emit(prefix, Buffer.alloc(0));
      this.state = { kind: 'payload', prefix, buffer: Buffer.allocUnsafe(payloadBytes), filled: 0 };
      return null;
    }
    assert(state.kind === 'payload', 'decoder advanced in failed state');
    return this.emit(state.prefix, state.buffer);
  }

  private emit(prefix: Prefix, payload: Buffer): DecodedRpcFrame {
    const frame = parsePayload(prefix, payload);
    this.state = newPrefixState();
    this.framesDecoded += 1;
    return frame;
  }
}

function newPrefixState(): DecoderState {
  return { kind: 'prefix', buffer: Buffer.allocUnsafe(rpcFramePrefixBytes), filled: 0 };
}

function parsePrefix(bytes: Buffer): Prefix {
  const magic = bytes.readUInt32BE(0);
  if (magic !== rpcFrameMagic) throw new StorageError('wire.corrupt', `rpc frame has bad magic 0x${magic.toString(16)}`);
  if (!crcMatches(bytes.subarray(0, 32), bytes.readUInt32BE(32))) {
    throw new StorageError('wire.corrupt', 'rpc frame prefix CRC mismatch');
  }
  const version = bytes.readUInt8(4);
  if (version !== rpcFrameVersion) {
    throw new StorageError('wire.unsupported_version', `rpc frame version ${version}, expected ${rpcFrameVersion}`);
  }
  const prefix: Prefix = {
    kind: parseKind(bytes.readUInt8(5)),
    methodBytes: bytes.readUInt16BE(6),
    requestId: bytes.readUInt32BE(8),
    deadlineMs: bytes.readUInt32BE(12),
    headerBytes: bytes.readUInt32BE(16),
    bodyBytes: bytes.readUInt32BE(20),
    headerCrc: bytes.readUInt32BE(24),
    bodyCrc: bytes.readUInt32BE(28),
  };
  checkLimits(prefix.methodBytes, prefix.headerBytes, prefix.bodyBytes);
  return prefix;
}

function parseKind(code: number): RpcFrameKind {
  if (code === kindCodes.request) return 'request';
  if (code === kindCodes.response) return 'response';
  if (code === kindCodes.error) return 'error';
  throw new StorageError('wire.corrupt', `rpc frame has unknown kind ${code}`);
}

function parsePayload(prefix: Prefix, payload: Buffer): DecodedRpcFrame {
  const methodEnd = prefix.methodBytes;
  const headerEnd = methodEnd + prefix.headerBytes;
  if (!crcMatches(payload.subarray(0, headerEnd), prefix.headerCrc)) {
    throw new StorageError('wire.corrupt', 'rpc frame header CRC mismatch');
  }
  const body = payload.subarray(headerEnd);
  if (!crcMatches(body, prefix.bodyCrc)) throw new StorageError('wire.corrupt', 'rpc frame body CRC mismatch');
  return {
    kind: prefix.kind,
    requestId: prefix.requestId,
    method: decodeUtf8(payload.subarray(0, methodEnd)),
    deadlineMs: prefix.deadlineMs,
    header: parseHeader(payload.subarray(methodEnd, headerEnd)),
    body,
    frameBytes: rpcFramePrefixBytes + payload.length,
  };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch (error) {
    throw new StorageError('wire.corrupt', 'rpc frame text is not UTF-8', { cause: error });
  }
}

function parseHeader(bytes: Uint8Array): FrameHeader {
  let value: unknown;
  try {
    value = JSON.parse(decodeUtf8(bytes));
  } catch (error) {
    throw new StorageError('wire.corrupt', 'rpc frame header is not JSON', { cause: error });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new StorageError('wire.corrupt', 'rpc frame header is not a JSON object');
  }
  // JSON.parse yields only JSON values, so an object from it is a FrameHeader.
  return value as FrameHeader;
}
