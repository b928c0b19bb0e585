// LocalNetwork: the Network seam inside one process, for the embedded stamp (`kura serve`), where
// the front end, partition servers, stream manager and extent nodes all live in one process.
// No sockets and no frame encoding: a call looks up the listening handler in a shared table and
// invokes it on a later microtask; the answer comes back the same way.
//
// Same contract as TcpNetwork and SimNetwork (src/rpc/network.ts, test/contract/network.test.ts):
// - limits: a call over the frame limits (method, header, body) rejects wire.too_large before the
//   handler runs; an over-limit answer becomes wire.too_large at the caller;
// - errors: a handler's StorageError reaches the caller with its code, message and retryable flag
//   (a new error object, with the remote address and method as context, the original as cause);
//   any other exception becomes rpc.remote; an AssertionFailure crashes the process;
// - deadlines: every call has one on the injected clock (rpc.timeout, retryable); the handler
//   sees it as context.deadlineAtMs; a late answer is dropped;
// - admission: each server bounds the request bytes it handles at once (rpc.overloaded, nothing
//   run); nothing listening → rpc.unreachable (retryable); a closed server fails its pending
//   calls with rpc.unreachable (retryable); a closed network fails its own pending and later
//   calls with rpc.unreachable (not retryable).
// - headers are JSON, as on the wire: the callee gets a JSON copy (what it would have decoded),
//   never the caller's object, so nothing that would not survive the wire can leak across.
//
// Bodies are not copied (the point of this class: blob bytes cross four hops in the embedded
// stamp). That is safe under the ownership rule the other networks already imply: a sender never
// modifies a body after handing it over (TcpNetwork writes the caller's body buffer to the socket
// without a copy, so it too may still read it after call() returned), and a receiver treats a
// received body as read-only (it may keep it). `copyBodies: true` restores copy semantics for a
// test that wants to prove a suspected aliasing bug.
//
// Invariant: a pending call settles exactly once: by its answer, its deadline, or a close.
// Fault model: none injected (use SimNetwork for that); handlers may be slow, throw, or never
// answer, and servers and networks may close while calls are pending.
import { rpcInFlightBytesMax } from '../constants.ts';
import { bodyBytes } from '../util/body-parts.ts';
import { ByteSemaphore } from '../util/byte-semaphore.ts';
import { SystemClock } from '../util/clock.ts';
import type { Clock } from '../util/clock.ts';
import { StorageError } from '../util/errors.ts';
import { checkLimits, rpcFramePrefixBytes } from '../wire/rpc-frame.ts';
import type { Network, RpcCallOptions, RpcHandler, RpcHeader, RpcRequest, RpcResponse, RpcServer } from './network.ts';
import { DeadlineQueue } from './deadline-queue.ts';
import { copyJsonHeader } from './header-copy.ts';
import { callDeadlineMs, handlerError, overloadedError, timeoutError, unreachableError } from './rpc-exchange.ts';

export interface LocalNetworkOptions {
  /** Clock for deadlines; defaults to SystemClock. */
  readonly clock?: Clock;
  /** Request bytes each server handles at once. */
  readonly inFlightBytesMax?: number;
  /** Address this network's calls come from (what handlers see as context.from). */
  readonly localAddress?: string;
  /** Copy request and response bodies (tests); off by default, see the header comment. */
  readonly copyBodies?: boolean;
}

export interface LocalNetworkStats {
  readonly callsStarted: number;
  readonly callsSucceeded: number;
  readonly callsFailed: number;
  readonly callsTimedOut: number;
  readonly requestsOverloaded: number;
}

type Counters = { -readonly [K in keyof LocalNetworkStats]: number };

interface PendingCall {
  readonly server: LocalServer;
  readonly owner: LocalNetwork;
  readonly settle: (outcome: RpcResponse | StorageError) => void;
}

/** The table every endpoint of one in-process network shares. */
class LocalFabric {
  readonly clock: Clock;
  readonly inFlightBytesMax: number;
  readonly copyBodies: boolean;
  /** Every pending call's deadline, behind one timer of the clock. */
  readonly deadlines: DeadlineQueue;
  readonly servers = new Map<string, LocalServer>();
  readonly pending = new Set<PendingCall>();
  readonly counters: Counters = { callsStarted: 0, callsSucceeded: 0, callsFailed: 0, callsTimedOut: 0, requestsOverloaded: 0 };
  nextPort = 30_000;

  constructor(options: LocalNetworkOptions) {
    this.clock = options.clock ?? new SystemClock();
    this.inFlightBytesMax = options.inFlightBytesMax ?? rpcInFlightBytesMax;
    this.copyBodies = options.copyBodies ?? false;
    this.deadlines = new DeadlineQueue(this.clock);
  }

  /** Fails every pending call that `matches` with rpc.unreachable. */
  failPending(matches: (call: PendingCall) => boolean, reason: string, retryable: boolean): void {
    for (const call of [...this.pending]) {
      if (matches(call)) call.settle(unreachableError(call.server.address, reason, { retryable }));
    }
  }
}

class LocalServer implements RpcServer {
  readonly address: string;
  readonly handler: RpcHandler;
  readonly semaphore: ByteSemaphore;
  private readonly fabric: LocalFabric;
  private closed = false;

  constructor(fabric: LocalFabric, address: string, handler: RpcHandler) {
    this.fabric = fabric;
    this.address = address;
    this.handler = handler;
    this.semaphore = new ByteSemaphore({ capacityBytes: fabric.inFlightBytesMax, waitersMax: 0 });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.fabric.servers.delete(this.address);
    this.fabric.failPending((call) => call.server === this, 'connection closed by server', true);
    return Promise.resolve();
  }
}

export class LocalNetwork implements Network {
  readonly localAddress: string;
  private readonly fabric: LocalFabric;
  private closed = false;

  /** A new in-process network; endpoint() gives more callers on the same one. */
  constructor(options: LocalNetworkOptions = {}, fabric?: LocalFabric) {
    this.fabric = fabric ?? new LocalFabric(options);
    this.localAddress = options.localAddress ?? 'local';
  }

  /** A Network on the same table whose calls come from `address`; closing it closes only it. */
  /** Bodies cross by reference unless copyBodies is on (Network.bodiesShared). */
  get bodiesShared(): boolean {
    return !this.fabric.copyBodies;
  }

  endpoint(address: string): LocalNetwork {
    return new LocalNetwork({ localAddress: address }, this.fabric);
  }

  stats(): LocalNetworkStats {
    return { ...this.fabric.counters };
  }

  listen(address: string, handler: RpcHandler): Promise<RpcServer> {
    const bound = address.endsWith(':0') ? `${address.slice(0, -2)}:${this.fabric.nextPort++}` : address;
    if (this.fabric.servers.has(bound)) return Promise.reject(new StorageError('config.invalid', `local address ${bound} already in use`));
    const server = new LocalServer(this.fabric, bound, handler);
    this.fabric.servers.set(bound, server);
    return Promise.resolve(server);
  }

  // One promise per call (the caller's), settled by the handler's answer, the deadline or a close:
  // no async frames, no promise adopted from another (each was a promise and a microtask or two).
  call(address: string, request: RpcRequest, options?: RpcCallOptions): Promise<RpcResponse> {
    let prepared: { deadlineMs: number; header: RpcHeader; frameBytes: number; body: RpcRequest['body'] };
    try {
      const deadlineMs = callDeadlineMs(options);
      if (this.closed) throw unreachableError(address, 'network closed', { retryable: false });
      const { header, frameBytes } = transferHeader(request.method, request.header, request.body.length);
      prepared = { deadlineMs, header, frameBytes, body: this.fabric.copyBodies ? Buffer.from(bodyBytes(request.body)) : request.body };
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    const server = this.fabric.servers.get(address);
    this.fabric.counters.callsStarted += 1;
    return new Promise<RpcResponse>((resolve, reject) => {
      // Always asynchronous, like a socket: the handler never runs inside call().
      queueMicrotask(() => {
        if (server === undefined || server.isClosed) {
          this.fabric.counters.callsFailed += 1;
          reject(unreachableError(address, 'connection refused: nothing listens there', { retryable: true }));
        } else if (!server.semaphore.tryAcquire(prepared.frameBytes)) {
          this.fabric.counters.requestsOverloaded += 1;
          this.fabric.counters.callsFailed += 1;
          reject(overloadedError(address, server.semaphore.inUseBytes, server.semaphore.capacityBytes));
        } else {
          this.dispatch(server, { method: request.method, header: prepared.header, body: prepared.body }, prepared.deadlineMs, prepared.frameBytes, resolve, reject);
        }
      });
    });
  }

  /** Fails this endpoint's pending calls; later calls reject rpc.unreachable (not retryable). */
  close(): Promise<void> {
    this.closed = true;
    this.fabric.failPending((call) => call.owner === this, 'network closed', false);
    return Promise.resolve();
  }

  /** Runs the handler under the deadline; the first of answer, deadline and close settles. */
  private dispatch(server: LocalServer, request: RpcRequest, deadlineMs: number, frameBytes: number, resolve: (response: RpcResponse) => void, reject: (error: StorageError) => void): void {
    const fabric = this.fabric;
    const context = { deadlineAtMs: fabric.clock.monotonicMs() + deadlineMs, from: this.localAddress };
    const call: PendingCall = {
      server, owner: this,
      settle: (outcome) => {
        if (!fabric.pending.delete(call)) return;
        timer.cancel();
        if (outcome instanceof StorageError) {
          fabric.counters.callsFailed += 1;
          if (outcome.code === 'rpc.timeout') fabric.counters.callsTimedOut += 1;
          reject(outcome);
        } else {
          fabric.counters.callsSucceeded += 1;
          resolve(outcome);
        }
      },
    };
    fabric.pending.add(call);
    const timer = fabric.deadlines.add(deadlineMs, () => call.settle(timeoutError(server.address, request.method, deadlineMs)));
    let answer: Promise<RpcResponse>;
    try {
      answer = Promise.resolve(server.handler(request, context));
    } catch (error) {
      answer = Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    answer.then(
      (response) => {
        server.semaphore.release(frameBytes);
        call.settle(answerOutcome(server, request, response, fabric.copyBodies));
      },
      (error: unknown) => {
        server.semaphore.release(frameBytes);
        call.settle(errorOutcome(server, request, error));
      },
    );
  }
}

/** The handler's answer as the caller sees it (an over-limit answer becomes its error). */
function answerOutcome(server: LocalServer, request: RpcRequest, response: RpcResponse, copyBodies: boolean): RpcResponse | StorageError {
  try {
    const { header } = transferHeader('', response.header, response.body.length);
    return { header, body: copyBodies ? Buffer.from(response.body) : response.body };
  } catch (error) {
    return errorOutcome(server, request, error);
  }
}

/** A handler's exception as the caller sees it (an assertion failure crashes: handlerError). */
function errorOutcome(server: LocalServer, request: RpcRequest, error: unknown): StorageError {
  const cause = handlerError(error, request.method);
  return new StorageError(cause.code, cause.message, { retryable: cause.retryable, cause, context: { remote: server.address, method: request.method } });
}

/**
 * Checks the frame limits a wire transfer would, and gives the receiver its JSON copy of the
 * header: copied and measured in one walk (copyJsonHeader), or by a JSON round trip for a header
 * the walk does not copy exactly.
 */
function transferHeader(method: string, header: RpcHeader, bodyBytes: number): { header: RpcHeader; frameBytes: number } {
  const methodBytes = Buffer.byteLength(method, 'utf8');
  const copied = copyJsonHeader(header) ?? jsonCopy(header);
  checkLimits(methodBytes, copied.bytes, bodyBytes);
  return { header: copied.header, frameBytes: rpcFramePrefixBytes + methodBytes + copied.bytes + bodyBytes };
}

function jsonCopy(header: RpcHeader): { header: RpcHeader; bytes: number } {
  const json = JSON.stringify(header);
  return { header: JSON.parse(json) as RpcHeader, bytes: Buffer.byteLength(json, 'utf8') };
}
