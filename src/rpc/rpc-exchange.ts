// What TcpNetwork and SimNetwork share: turning calls into request frames, running a handler
// and turning its outcome into a response or error frame, and turning a received frame back
// into the caller's result. Keeping it in one place is what makes the two implementations
// agree on the Network contract (src/rpc/network.ts).
//
// Invariants:
// - A handler's StorageError crosses the wire with its code, message and retryable flag; any
//   other exception becomes rpc.remote; an AssertionFailure is a programmer error and crashes
//   the process (it is never turned into an answer).
// - Every answer fits in a frame: an over-limit response becomes a wire.too_large error frame.
//
// Fault model: a remote error header is untrusted input; an unknown code becomes rpc.remote.
import { rpcDeadlineMsDefault } from '../constants.ts';
import { AssertionFailure, assert } from '../util/assert.ts';
import { StorageError, isStorageErrorCode } from '../util/errors.ts';
import { encodeRpcFrameParts } from '../wire/rpc-frame.ts';
import type { RpcFrame } from '../wire/rpc-frame.ts';
import type { RpcCallOptions, RpcContext, RpcHandler, RpcRequest, RpcResponse } from './network.ts';
import { bodyBytes } from '../util/body-parts.ts';

export type EncodedFrame = readonly [Buffer, Buffer];

/** The relative deadline of a call, validated. */
export function callDeadlineMs(options: RpcCallOptions | undefined): number {
  const deadlineMs = options?.deadlineMs ?? rpcDeadlineMsDefault;
  assert(Number.isFinite(deadlineMs) && deadlineMs >= 0, `deadlineMs must be a non-negative number, got ${deadlineMs}`);
  return deadlineMs;
}

/** Encodes a request; throws wire.too_large before anything is sent. */
export function encodeRequest(requestId: number, request: RpcRequest, deadlineMs: number): EncodedFrame {
  return encodeRpcFrameParts({ kind: 'request', requestId, method: request.method, deadlineMs, header: request.header, body: bodyBytes(request.body) });
}

export function encodeError(requestId: number, error: StorageError): EncodedFrame {
  const header = { code: error.code, message: error.message, retryable: error.retryable };
  return encodeRpcFrameParts({ kind: 'error', requestId, method: '', deadlineMs: 0, header, body: Buffer.alloc(0) });
}

/** Runs the handler and encodes its answer; never rejects except on an assertion failure. */
export async function answerRequest(handler: RpcHandler, frame: RpcFrame, context: RpcContext): Promise<EncodedFrame> {
  let response: RpcResponse;
  try {
    response = await handler({ method: frame.method, header: frame.header, body: frame.body }, context);
  } catch (error) {
    return encodeError(frame.requestId, handlerError(error, frame.method));
  }
  try {
    return encodeRpcFrameParts({ kind: 'response', requestId: frame.requestId, method: '', deadlineMs: 0, header: response.header, body: response.body });
  } catch (error) {
    return encodeError(frame.requestId, handlerError(error, frame.method));
  }
}

/** What a caller sees of a handler's exception (LocalNetwork uses it without encoding). */
export function handlerError(error: unknown, method: string): StorageError {
  if (error instanceof AssertionFailure) crashLater(error);
  if (error instanceof StorageError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new StorageError('rpc.remote', `handler of ${method} failed: ${message}`);
}

/** An assertion failure is never answered or retried: rethrow it outside any promise. */
function crashLater(error: AssertionFailure): void {
  process.nextTick(() => {
    throw error;
  });
}

/** The caller's outcome of a response or error frame. */
export function callOutcome(frame: RpcFrame, context: { readonly address: string; readonly method: string }): RpcResponse | StorageError {
  if (frame.kind === 'response') return { header: frame.header, body: frame.body };
  assert(frame.kind === 'error', 'callOutcome of a request frame');
  const { code, message, retryable } = frame.header;
  const known = isStorageErrorCode(code);
  const text = typeof message === 'string' ? message : 'remote error without a message';
  return new StorageError(known ? code : 'rpc.remote', known ? text : `${text} (remote code ${JSON.stringify(code ?? null)})`, {
    retryable: retryable === true,
    context: { remote: context.address, method: context.method },
  });
}

export function unreachableError(address: string, reason: string, options: { readonly retryable: boolean; readonly cause?: unknown }): StorageError {
  return new StorageError('rpc.unreachable', `${address}: ${reason}`, { retryable: options.retryable, cause: options.cause, context: { remote: address } });
}

export function timeoutError(address: string, method: string, deadlineMs: number): StorageError {
  // Retryable: the caller decides whether a retry is safe (appends carry ids for that).
  return new StorageError('rpc.timeout', `${address}: ${method} got no answer within ${deadlineMs} ms`, {
    retryable: true,
    context: { remote: address, method, deadlineMs },
  });
}

export function overloadedError(address: string, inFlightBytes: number, capacityBytes: number): StorageError {
  return new StorageError('rpc.overloaded', `${address}: ${inFlightBytes} request bytes in flight, limit ${capacityBytes}`, { retryable: true });
}

/** Total bytes of an encoded frame. */
export function frameBytes(frame: EncodedFrame): number {
  return frame[0].length + frame[1].length;
}
