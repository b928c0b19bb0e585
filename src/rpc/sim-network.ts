// SimNetwork: the Network seam in memory, on an injected Clock and Random, for tests and the
// seeded simulation (TESTING.md). For a given seed, sequence of calls and handler behaviour,
// every delay, drop and outcome is the same on every run.
//
// One SimNetwork is a fabric shared by endpoints: `endpoint(address)` gives a Network whose
// calls come from `address` (the root network calls from options.localAddress, "client" by
// default). Faults apply to hosts: "en1" and "en1:7000" name the same node.
//
// Fault model (what it injects; figures in stats().faults):
// - delay: every message waits a uniform [delayMsMin, delayMsMax] ms; messages on one directed
//   link stay in order, as on one TCP connection.
// - drop: with dropProbability a message is lost together with its "connection": the caller
//   fails with rpc.unreachable (retryable) one delay later. A dropped answer means the handler
//   did run, so callers see the same ambiguity as on TCP.
// - partition / isolate: a message across a partition is refused; the caller fails with
//   rpc.unreachable one delay later. Messages already in flight are checked again on arrival.
// - blackhole: messages to or from the host vanish; only the caller's deadline ends the call.
//
// Same contract as TcpNetwork (src/rpc/network.ts): frames are really encoded and decoded
// (rpc-frame.ts), so the limits are the same and no buffer is shared between sender and
// receiver; servers bound in-flight request bytes and answer rpc.overloaded; a request whose
// deadline passed before it arrived is skipped; closing a server fails the calls pending on it.
import { rpcInFlightBytesMax } from '../constants.ts';
import { assert } from '../util/assert.ts';
import { ByteSemaphore } from '../util/byte-semaphore.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import { StorageError } from '../util/errors.ts';
import type { Random } from '../util/random.ts';
import { RpcFrameDecoder } from '../wire/rpc-frame.ts';
import type { DecodedRpcFrame } from '../wire/rpc-frame.ts';
import type { Network, RpcCallOptions, RpcHandler, RpcRequest, RpcResponse, RpcServer } from './network.ts';
import {
  answerRequest, callDeadlineMs, callOutcome, encodeError, encodeRequest, overloadedError, timeoutError, unreachableError,
} from './rpc-exchange.ts';
import type { EncodedFrame } from './rpc-exchange.ts';

export interface SimNetworkFaults {
  readonly delayMsMin: number;
  readonly delayMsMax: number;
  readonly dropProbability: number;
}

export interface SimNetworkOptions {
  readonly clock: Clock;
  readonly random: Random;
  readonly faults?: Partial<SimNetworkFaults>;
  /** Address the root network's calls come from. */
  readonly localAddress?: string;
  /** Request bytes each server handles at once. */
  readonly inFlightBytesMax?: number;
}

export interface SimEndpointOptions {
  readonly shareWith: SimNetwork;
  readonly localAddress: string;
}

export const simFaultKinds = ['drop', 'partition', 'isolate', 'blackhole'] as const;
export type SimFaultKind = (typeof simFaultKinds)[number];

export interface SimNetworkStats {
  readonly callsStarted: number;
  readonly callsSucceeded: number;
  readonly callsFailed: number;
  readonly callsTimedOut: number;
  readonly messagesSent: number;
  readonly messagesDelivered: number;
  readonly requestsExpired: number;
  readonly requestsOverloaded: number;
  readonly faults: Readonly<Record<SimFaultKind, number>>;
}

type Counters = { -readonly [K in Exclude<keyof SimNetworkStats, 'faults'>]: number };

interface PendingCall {
  readonly from: string;
  readonly to: string;
  readonly method: string;
  readonly endpoint: SimNetwork;
  readonly resolve: (response: RpcResponse) => void;
  readonly reject: (error: StorageError) => void;
  readonly timer: TimerHandle;
}

interface Message {
  readonly kind: 'request' | 'answer';
  readonly callId: number;
  readonly from: string;
  readonly to: string;
  readonly bytes: Buffer;
  readonly deadlineAtMs: number;
}

interface SimServer extends RpcServer {
  readonly handler: RpcHandler;
  readonly semaphore: ByteSemaphore;
  readonly isClosed: () => boolean;
}

type LinkFault = 'partition' | 'isolate' | 'blackhole' | null;

/** The state every endpoint of one simulated network shares. */
class SimFabric {
  readonly clock: Clock;
  readonly random: Random;
  readonly inFlightBytesMax: number;
  faults: SimNetworkFaults;
  readonly servers = new Map<string, SimServer>();
  readonly pending = new Map<number, PendingCall>();
  readonly partitions: Array<readonly [ReadonlySet<string>, ReadonlySet<string>]> = [];
  readonly isolated = new Set<string>();
  readonly blackholed = new Set<string>();
  /** Per directed link, the time of its last scheduled delivery (keeps links FIFO). */
  readonly linkReadyAtMs = new Map<string, number>();
  readonly counters: Counters = {
    callsStarted: 0, callsSucceeded: 0, callsFailed: 0, callsTimedOut: 0, messagesSent: 0, messagesDelivered: 0,
    requestsExpired: 0, requestsOverloaded: 0,
  };
  readonly faultCounts: Record<SimFaultKind, number> = { drop: 0, partition: 0, isolate: 0, blackhole: 0 };
  nextCallId = 1;
  nextPort = 40_000;

  constructor(options: SimNetworkOptions) {
    this.clock = options.clock;
    this.random = options.random;
    this.inFlightBytesMax = options.inFlightBytesMax ?? rpcInFlightBytesMax;
    this.faults = checkFaults({ delayMsMin: 1, delayMsMax: 1, dropProbability: 0, ...options.faults });
  }

  linkFault(from: string, to: string): LinkFault {
    const a = hostOf(from);
    const b = hostOf(to);
    if (this.blackholed.has(a) || this.blackholed.has(b)) return 'blackhole';
    if (a === b) return null;
    if (this.isolated.has(a) || this.isolated.has(b)) return 'isolate';
    const split = this.partitions.some(([left, right]) => (left.has(a) && right.has(b)) || (left.has(b) && right.has(a)));
    return split ? 'partition' : null;
  }

  /** Sends a message, applying the faults; draws the same random numbers whatever happens. */
  send(message: Message): void {
    const { delayMsMin, delayMsMax, dropProbability } = this.faults;
    const delayMs = delayMsMin + this.random.int(delayMsMax - delayMsMin + 1);
    const dropped = this.random.next() < dropProbability;
    this.counters.messagesSent += 1;
    const fault = this.linkFault(message.from, message.to);
    if (fault !== null || dropped) {
      this.injectFault(message, fault ?? 'drop', delayMs);
      return;
    }
    const link = `${message.from}>${message.to}`;
    const deliverAtMs = Math.max(this.clock.monotonicMs() + delayMs, this.linkReadyAtMs.get(link) ?? 0);
    this.linkReadyAtMs.set(link, deliverAtMs);
    this.clock.setTimer(deliverAtMs - this.clock.monotonicMs(), () => this.arrive(message));
  }

  private injectFault(message: Message, fault: SimFaultKind, delayMs: number): void {
    this.faultCounts[fault] += 1;
    if (fault === 'blackhole') return;
    const reason = fault === 'drop' ? 'connection lost (message dropped)' : `unreachable (${fault})`;
    this.clock.setTimer(delayMs, () => this.failCall(message.callId, reason));
  }

  private arrive(message: Message): void {
    const fault = this.linkFault(message.from, message.to);
    if (fault !== null) {
      this.injectFault(message, fault, 0);
      return;
    }
    this.counters.messagesDelivered += 1;
    if (message.kind === 'request') this.arriveRequest(message);
    else this.arriveAnswer(message);
  }

  private arriveRequest(message: Message): void {
    const server = this.servers.get(message.to);
    if (server === undefined) {
      this.failCall(message.callId, 'connection refused: nothing listens there');
      return;
    }
    if (this.clock.monotonicMs() >= message.deadlineAtMs) {
      this.counters.requestsExpired += 1; // the caller has already given up
      return;
    }
    const frame = decodeOne(message.bytes);
    if (!server.semaphore.tryAcquire(frame.frameBytes)) {
      this.counters.requestsOverloaded += 1;
      const error = overloadedError(server.address, server.semaphore.inUseBytes, server.semaphore.capacityBytes);
      this.answer(message, encodeError(frame.requestId, error));
      return;
    }
    const context = { deadlineAtMs: message.deadlineAtMs, from: message.from };
    void answerRequest(server.handler, frame, context).then((answer) => {
      server.semaphore.release(frame.frameBytes);
      // A closed server's connections are gone: its pending calls already failed.
      if (!server.isClosed()) this.answer(message, answer);
    });
  }

  private answer(request: Message, answer: EncodedFrame): void {
    const bytes = Buffer.concat([answer[0], answer[1]]);
    this.send({ kind: 'answer', callId: request.callId, from: request.to, to: request.from, bytes, deadlineAtMs: request.deadlineAtMs });
  }

  private arriveAnswer(message: Message): void {
    const pending = this.pending.get(message.callId);
    if (pending === undefined) return; // answered after the deadline: dropped
    const outcome = callOutcome(decodeOne(message.bytes), { address: pending.to, method: pending.method });
    this.settle(message.callId, outcome);
  }

  failCall(callId: number, reason: string, retryable = true): void {
    const pending = this.pending.get(callId);
    if (pending !== undefined) this.settle(callId, unreachableError(pending.to, reason, { retryable }));
  }

  settle(callId: number, outcome: RpcResponse | StorageError): void {
    const pending = this.pending.get(callId);
    if (pending === undefined) return;
    this.pending.delete(callId);
    pending.timer.cancel();
    if (outcome instanceof StorageError) {
      this.counters.callsFailed += 1;
      if (outcome.code === 'rpc.timeout') this.counters.callsTimedOut += 1;
      pending.reject(outcome);
    } else {
      this.counters.callsSucceeded += 1;
      pending.resolve(outcome);
    }
  }
}

function checkFaults(faults: SimNetworkFaults): SimNetworkFaults {
  const { delayMsMin, delayMsMax, dropProbability } = faults;
  assert(Number.isSafeInteger(delayMsMin) && delayMsMin >= 0 && Number.isSafeInteger(delayMsMax) && delayMsMax >= delayMsMin, 'bad delay range');
  assert(dropProbability >= 0 && dropProbability <= 1, 'dropProbability must be in [0, 1]');
  return faults;
}

function decodeOne(bytes: Buffer): DecodedRpcFrame {
  const frames = new RpcFrameDecoder().push(bytes);
  assert(frames.length === 1 && frames[0] !== undefined, 'a sim message holds exactly one frame');
  return frames[0];
}

/** "en1:7000" → "en1"; "client" → "client". */
function hostOf(address: string): string {
  const colon = address.lastIndexOf(':');
  return colon > 0 && /^\d+$/.test(address.slice(colon + 1)) ? address.slice(0, colon) : address;
}

export class SimNetwork implements Network {
  /** Address this endpoint's calls come from. */
  readonly localAddress: string;
  private readonly fabric: SimFabric;
  private closed = false;

  /** A new network, or with `shareWith` another endpoint of an existing one (see endpoint()). */
  constructor(options: SimNetworkOptions | SimEndpointOptions) {
    if ('shareWith' in options) {
      this.fabric = options.shareWith.fabric;
      this.localAddress = options.localAddress;
    } else {
      this.fabric = new SimFabric(options);
      this.localAddress = options.localAddress ?? 'client';
    }
  }

  /** A Network on the same fabric whose calls come from `address`. */
  endpoint(address: string): SimNetwork {
    return new SimNetwork({ shareWith: this, localAddress: address });
  }

  listen(address: string, handler: RpcHandler): Promise<RpcServer> {
    const fabric = this.fabric;
    const bound = address.endsWith(':0') ? `${address.slice(0, -2)}:${fabric.nextPort++}` : address;
    if (fabric.servers.has(bound)) return Promise.reject(new StorageError('config.invalid', `sim address ${bound} already in use`));
    let closed = false;
    const server: SimServer = {
      address: bound,
      handler,
      semaphore: new ByteSemaphore({ capacityBytes: fabric.inFlightBytesMax, waitersMax: 0 }),
      isClosed: () => closed,
      close: () => {
        if (closed) return Promise.resolve();
        closed = true;
        fabric.servers.delete(bound);
        for (const [callId, pending] of fabric.pending) if (pending.to === bound) fabric.failCall(callId, 'connection closed by server');
        return Promise.resolve();
      },
    };
    fabric.servers.set(bound, server);
    return Promise.resolve(server);
  }

  async call(address: string, request: RpcRequest, options?: RpcCallOptions): Promise<RpcResponse> {
    const fabric = this.fabric;
    const deadlineMs = callDeadlineMs(options);
    if (this.closed) throw unreachableError(address, 'network closed', { retryable: false });
    const callId = fabric.nextCallId++;
    const frame = encodeRequest(callId % 0x1_0000_0000, request, deadlineMs);
    const bytes = Buffer.concat([frame[0], frame[1]]); // a copy: the caller may reuse its buffers
    fabric.counters.callsStarted += 1;
    return new Promise((resolve, reject) => {
      const timer = fabric.clock.setTimer(deadlineMs, () => fabric.settle(callId, timeoutError(address, request.method, deadlineMs)));
      fabric.pending.set(callId, { from: this.localAddress, to: address, method: request.method, endpoint: this, resolve, reject, timer });
      const deadlineAtMs = fabric.clock.monotonicMs() + deadlineMs;
      fabric.send({ kind: 'request', callId, from: this.localAddress, to: address, bytes, deadlineAtMs });
    });
  }

  /** Fails this endpoint's pending calls; later calls reject rpc.unreachable. */
  close(): Promise<void> {
    this.closed = true;
    for (const [callId, pending] of this.fabric.pending) {
      if (pending.endpoint === this) this.fabric.failCall(callId, 'network closed', false);
    }
    return Promise.resolve();
  }

  /** Changes delay and drop settings from now on. */
  setFaults(faults: Partial<SimNetworkFaults>): void {
    this.fabric.faults = checkFaults({ ...this.fabric.faults, ...faults });
  }

  /** Refuses messages between every host of groupA and every host of groupB (both ways). */
  partition(groupA: readonly string[], groupB: readonly string[]): void {
    this.fabric.partitions.push([new Set(groupA.map(hostOf)), new Set(groupB.map(hostOf))]);
  }

  /** Refuses messages between `address`'s host and every other host. */
  isolate(address: string): void {
    this.fabric.isolated.add(hostOf(address));
  }

  /** Messages to or from `address`'s host vanish without an answer. */
  blackhole(address: string): void {
    this.fabric.blackholed.add(hostOf(address));
  }

  /** Removes every partition, isolation and blackhole. */
  heal(): void {
    this.fabric.partitions.length = 0;
    this.fabric.isolated.clear();
    this.fabric.blackholed.clear();
  }

  stats(): SimNetworkStats {
    return { ...this.fabric.counters, faults: { ...this.fabric.faultCounts } };
  }

  /** Calls not yet settled, over all endpoints. */
  get pendingCallCount(): number {
    return this.fabric.pending.size;
  }
}
