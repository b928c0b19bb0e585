// The Network seam (STYLE.md principle 7): node-to-node calls go through this interface, so the
// same stream-layer code runs over real TCP sockets (TcpNetwork) and over SimNetwork, which
// drops, delays and partitions messages on a virtual clock.
//
// Contract, honoured by every implementation:
// - call() resolves with the handler's response or rejects with a StorageError:
//   rpc.timeout (deadline passed: the call may or may not have been applied),
//   rpc.unreachable (no connection; retryable), rpc.overloaded (in-flight byte limit reached;
//   retryable), or the handler's own StorageError code, carried across the wire.
// - a handler that throws a StorageError has it re-raised at the caller with the same code,
//   message and retryable flag; any other exception becomes rpc.remote.
// - request and response bodies are bounded by rpcFrameBytesMax; headers by rpcHeaderBytesMax.

import type { Body } from '../util/body-parts.ts';

/** JSON-serialisable header values. */
export type RpcHeaderValue = string | number | boolean | null | readonly RpcHeaderValue[] | { readonly [key: string]: RpcHeaderValue };
export type RpcHeader = { readonly [key: string]: RpcHeaderValue };

export interface RpcRequest {
  /** e.g. "extent.append". */
  readonly method: string;
  readonly header: RpcHeader;
  /** One buffer, or (a large append) the parts it arrived in; a handler that needs contiguous
   * bytes joins them (bodyBytes), a network that sends bytes writes them in order. */
  readonly body: Body;
}

export interface RpcResponse {
  readonly header: RpcHeader;
  readonly body: Buffer;
}

export interface RpcCallOptions {
  /** Relative deadline; defaults to rpcDeadlineMsDefault. */
  readonly deadlineMs?: number;
}

export interface RpcContext {
  /** Monotonic time (of the network's clock) by which the caller stops waiting. */
  readonly deadlineAtMs: number;
  /** Address of the caller, if known. */
  readonly from: string;
}

export type RpcHandler = (request: RpcRequest, context: RpcContext) => Promise<RpcResponse>;

export interface RpcServer {
  /** The address callers use, e.g. "127.0.0.1:41234" (a resolved port if 0 was asked). */
  readonly address: string;
  close(): Promise<void>;
}

export interface Network {
  /** Starts serving `handler` at `address` ("host:port"; port 0 picks one). */
  listen(address: string, handler: RpcHandler): Promise<RpcServer>;
  call(address: string, request: RpcRequest, options?: RpcCallOptions): Promise<RpcResponse>;
  /**
   * True when a response body is the very buffer the handler answered with (one process, no copy,
   * no fault injection): a checksum the handler computed over that buffer proves nothing more when
   * checked again by the caller, so the caller may skip its check. Absent = false.
   */
  readonly bodiesShared?: boolean;
  /** Closes client connections. */
  close(): Promise<void>;
}
