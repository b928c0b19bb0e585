// Typed calls to extent nodes over the Network: one function per method that builds the request
// header, sets a deadline, and parses the response header with a zod schema (parse, don't
// inspect: a peer's answer is as untrusted as its request). Used by ExtentNode (replicate,
// copyFrom's reads) and by StreamClient (append, read, findAppend).
//
// Invariants: every call carries an explicit deadline; a read's body is returned only if its
// length is the one asked for and its CRC32C equals the one the serving node computed after
// verifying its on-disk blocks (an end-to-end check independent of the transport).
// Fault model: the peer may be down, slow, or answer garbage; garbage is rpc.remote.
import { z } from 'zod';
import type { Network, RpcHeader, RpcResponse } from '../rpc/network.ts';
import { crcMatches } from '../util/crc32c.ts';
import { StorageError } from '../util/errors.ts';
import { isCount, plainObject, safeParseFast, withFastPath } from '../util/fast-parse.ts';
import { byteCount, extentStateSchema, id, epoch as epochSchema } from './protocol.ts';
import type { AppendResult } from './extent-append-log.ts';
import type { Body } from '../util/body-parts.ts';

export const appendResultSchema = withFastPath(z.object({ offset: byteCount, length: byteCount }), (value) => {
  const header = plainObject(value);
  const offset = header?.['offset'];
  const length = header?.['length'];
  return isCount(offset) && isCount(length) ? { offset, length } : undefined;
});

export const readResponseSchema = z.object({ crc32c: z.number().int().nonnegative().max(0xffff_ffff) });

export const findAppendResponseSchema = z.discriminatedUnion('found', [
  z.object({ found: z.literal(false) }),
  z.object({ found: z.literal(true), offset: byteCount, length: byteCount }),
]);

export const extentInfoSchema = z.object({
  streamId: id,
  extentId: id,
  epoch: epochSchema,
  length: byteCount,
  state: extentStateSchema,
  createdAtMs: z.number(),
});
export type ExtentInfoView = z.infer<typeof extentInfoSchema>;

export interface CallTarget {
  readonly network: Network;
  readonly address: string;
  readonly deadlineMs: number;
}

async function call(target: CallTarget, method: string, header: RpcHeader, body: Body = Buffer.alloc(0)): Promise<RpcResponse> {
  return target.network.call(target.address, { method, header, body }, { deadlineMs: target.deadlineMs });
}

export function parseResponse<T>(schema: z.ZodType<T>, header: RpcHeader, what: string): T {
  const parsed = safeParseFast(schema, header);
  if (!parsed.success) throw new StorageError('rpc.remote', `malformed ${what} response: ${parsed.error.message}`);
  return parsed.data;
}

export async function callReplicate(
  target: CallTarget,
  request: { readonly epoch: number; readonly extentId: number; readonly appendId: string; readonly offset: number },
  data: Body,
): Promise<AppendResult> {
  const response = await call(target, 'extent.replicate', request, data);
  return parseResponse(appendResultSchema, response.header, 'extent.replicate');
}

export async function callAppend(
  target: CallTarget,
  request: { readonly epoch: number; readonly extentId: number; readonly appendId: string; readonly replicas: readonly { readonly nodeId: string; readonly address: string }[] },
  data: Body,
): Promise<AppendResult> {
  const response = await call(target, 'extent.append', { ...request, replicas: request.replicas.map((r) => ({ nodeId: r.nodeId, address: r.address })) }, data);
  return parseResponse(appendResultSchema, response.header, 'extent.append');
}

/** Reads verified bytes; throws wire.corrupt when the body does not match the sender's CRC (the
 * replica's disk was fine: the serving node verified it; the bytes broke on the way). */
export async function callRead(target: CallTarget, request: { readonly extentId: number; readonly offset: number; readonly length: number }): Promise<Buffer> {
  const response = await call(target, 'extent.read', request);
  const { crc32c } = parseResponse(readResponseSchema, response.header, 'extent.read');
  // In one process the body is the node's own buffer, checked by the node just before it answered
  // (its block check, or the read cache's re-check): a second pass over the same memory would
  // find what the first found. Across a wire (or SimNetwork) every answer is checked here.
  const checked = target.network.bodiesShared === true || crcMatches(response.body, crc32c);
  if (response.body.length !== request.length || !checked) {
    throw new StorageError('wire.corrupt', `extent.read from ${target.address} returned bytes that fail their checksum`, {
      context: { extentId: request.extentId, offset: request.offset, length: request.length, received: response.body.length },
    });
  }
  return response.body;
}

export async function callFindAppend(target: CallTarget, request: { readonly extentId: number; readonly appendId: string }): Promise<AppendResult | null> {
  const response = await call(target, 'extent.findAppend', request);
  const found = parseResponse(findAppendResponseSchema, response.header, 'extent.findAppend');
  return found.found ? { offset: found.offset, length: found.length } : null;
}

export async function callInfo(target: CallTarget, extentId: number): Promise<ExtentInfoView> {
  const response = await call(target, 'extent.info', { extentId });
  return parseResponse(extentInfoSchema, response.header, 'extent.info');
}
