// TcpNetwork: the Network seam over node:net, framed by docs/formats/rpc-frame.md.
//
// Client: one persistent connection per peer address, multiplexed by request id. A call has a
// deadline on the injected clock (rpc.timeout); the remaining time travels in the frame so the
// server can skip work nobody waits for. A lost connection fails its pending calls with
// rpc.unreachable (retryable) and is forgotten; the next call to that address reconnects.
//
// Server: decodes requests, admits each one only if its bytes fit the in-flight byte semaphore
// (otherwise answers rpc.overloaded, retryable), runs the handler and answers through
// rpc-exchange.ts (StorageErrors keep their code; other exceptions become rpc.remote).
//
// Invariants:
// - Nothing is sent over the frame limits (call() rejects wire.too_large before writing).
// - A pending call settles exactly once: by its answer, its deadline, or the connection's loss.
// - An idle client connection does not keep the process alive (it is unref'd when no call is
//   pending); close() ends every socket this network opened.
//
// Fault model: peers may be down, slow, disconnect at any byte, or send corrupt frames. A bad
// frame (in either direction) closes the connection; nothing of it is delivered. Deadlines are
// measured from call(); time spent connecting counts against them.
import net from 'node:net';
import type { Socket } from 'node:net';
import { rpcInFlightBytesMax } from '../constants.ts';
import { ByteSemaphore } from '../util/byte-semaphore.ts';
import { SystemClock } from '../util/clock.ts';
import type { Clock, TimerHandle } from '../util/clock.ts';
import { StorageError } from '../util/errors.ts';
import { RpcFrameDecoder } from '../wire/rpc-frame.ts';
import type { DecodedRpcFrame } from '../wire/rpc-frame.ts';
import type { Network, RpcCallOptions, RpcHandler, RpcRequest, RpcResponse, RpcServer } from './network.ts';
import {
  answerRequest, callDeadlineMs, callOutcome, encodeError, encodeRequest, overloadedError, timeoutError, unreachableError,
} from './rpc-exchange.ts';
import type { EncodedFrame } from './rpc-exchange.ts';

export interface TcpNetworkOptions {
  /** Clock for deadlines; defaults to SystemClock (real sockets need real time). */
  readonly clock?: Clock;
  /** Request bytes each server started by this network handles at once. */
  readonly inFlightBytesMax?: number;
}

export interface TcpNetworkStats {
  readonly callsStarted: number;
  readonly callsSucceeded: number;
  readonly callsFailed: number;
  readonly connectsStarted: number;
  readonly connectionsLost: number;
  readonly badFramesReceived: number;
  readonly requestsServed: number;
  readonly requestsOverloaded: number;
  readonly requestsExpired: number;
  readonly serverConnectionsAccepted: number;
}

type MutableStats = { -readonly [K in keyof TcpNetworkStats]: number };

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Parses "host:port" or "[v6]:port". */
export function parseAddress(address: string): HostPort {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const portText = address.slice(colon + 1);
  const port = Number(portText);
  if (colon <= 0 || host === '' || !/^\d+$/.test(portText) || port > 65535) {
    throw new StorageError('config.invalid', `bad network address ${JSON.stringify(address)}: expected host:port`);
  }
  return { host, port };
}

function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export class TcpNetwork implements Network {
  private readonly clock: Clock;
  private readonly inFlightBytesMax: number;
  private readonly connections = new Map<string, ClientConnection>();
  private readonly counters: MutableStats = {
    callsStarted: 0, callsSucceeded: 0, callsFailed: 0, connectsStarted: 0, connectionsLost: 0, badFramesReceived: 0,
    requestsServed: 0, requestsOverloaded: 0, requestsExpired: 0, serverConnectionsAccepted: 0,
  };
  private closed = false;

  constructor(options: TcpNetworkOptions = {}) {
    this.clock = options.clock ?? new SystemClock();
    this.inFlightBytesMax = options.inFlightBytesMax ?? rpcInFlightBytesMax;
  }

  stats(): TcpNetworkStats {
    return { ...this.counters };
  }

  /** Client connections currently open or opening. */
  get connectionCount(): number {
    return this.connections.size;
  }

  async listen(address: string, handler: RpcHandler): Promise<RpcServer> {
    const { host, port } = parseAddress(address);
    const semaphore = new ByteSemaphore({ capacityBytes: this.inFlightBytesMax, waitersMax: 0 });
    const server = new TcpRpcServer({ handler, clock: this.clock, semaphore, stats: this.counters });
    await server.start(host, port);
    return server;
  }

  async call(address: string, request: RpcRequest, options?: RpcCallOptions): Promise<RpcResponse> {
    const deadlineMs = callDeadlineMs(options);
    if (this.closed) throw unreachableError(address, 'network closed', { retryable: false });
    this.counters.callsStarted += 1;
    try {
      const response = await this.connectionTo(address).call(request, deadlineMs);
      this.counters.callsSucceeded += 1;
      return response;
    } catch (error) {
      this.counters.callsFailed += 1;
      throw error;
    }
  }

  private connectionTo(address: string): ClientConnection {
    const existing = this.connections.get(address);
    if (existing !== undefined) return existing;
    const { host, port } = parseAddress(address);
    this.counters.connectsStarted += 1;
    const connection = new ClientConnection({
      address, host, port, clock: this.clock,
      onBadFrame: () => { this.counters.badFramesReceived += 1; },
      onClosed: (lost) => {
        this.counters.connectionsLost += 1;
        if (this.connections.get(address) === lost) this.connections.delete(address);
      },
    });
    this.connections.set(address, connection);
    return connection;
  }

  async close(): Promise<void> {
    this.closed = true;
    const connections = [...this.connections.values()];
    this.connections.clear();
    await Promise.all(connections.map((connection) => connection.destroy('network closed')));
  }
}

interface PendingCall {
  readonly method: string;
  readonly resolve: (response: RpcResponse) => void;
  readonly reject: (error: StorageError) => void;
  readonly timer: TimerHandle;
}

interface ClientConnectionOptions {
  readonly address: string;
  readonly host: string;
  readonly port: number;
  readonly clock: Clock;
  readonly onBadFrame: () => void;
  readonly onClosed: (connection: ClientConnection) => void;
}

/** One multiplexed connection to a peer; lives until the socket closes, then is replaced. */
class ClientConnection {
  private readonly options: ClientConnectionOptions;
  private readonly socket: Socket;
  private readonly decoder = new RpcFrameDecoder();
  private readonly pending = new Map<number, PendingCall>();
  private readonly closedPromise: Promise<void>;
  private nextRequestId = 1;
  private closeReason: { readonly reason: string; readonly retryable: boolean; cause?: unknown } | null = null;

  constructor(options: ClientConnectionOptions) {
    this.options = options;
    this.socket = net.connect({ host: options.host, port: options.port });
    this.socket.setNoDelay(true);
    this.socket.unref();
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', (error) => {
      this.closeReason ??= { reason: `connection failed: ${error.message}`, retryable: true, cause: error };
    });
    this.closedPromise = new Promise((resolve) => {
      this.socket.on('close', () => {
        this.onClose();
        resolve();
      });
    });
  }

  call(request: RpcRequest, deadlineMs: number): Promise<RpcResponse> {
    const requestId = this.allocateRequestId();
    const frame = encodeRequest(requestId, request, deadlineMs);
    return new Promise((resolve, reject) => {
      const timer = this.options.clock.setTimer(deadlineMs, () => {
        this.forget(requestId);
        reject(timeoutError(this.options.address, request.method, deadlineMs));
      });
      this.pending.set(requestId, { method: request.method, resolve, reject, timer });
      this.socket.ref();
      writeFrame(this.socket, frame);
    });
  }

  destroy(reason: string): Promise<void> {
    this.closeReason ??= { reason, retryable: false };
    this.socket.destroy();
    return this.closedPromise;
  }

  private allocateRequestId(): number {
    for (;;) {
      const id = this.nextRequestId;
      this.nextRequestId = id === 0xffff_ffff ? 1 : id + 1;
      if (!this.pending.has(id)) return id;
    }
  }

  private forget(requestId: number): PendingCall | undefined {
    const pending = this.pending.get(requestId);
    if (pending === undefined) return undefined;
    this.pending.delete(requestId);
    pending.timer.cancel();
    if (this.pending.size === 0) this.socket.unref();
    return pending;
  }

  private onData(chunk: Buffer): void {
    let frames: DecodedRpcFrame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (error) {
      this.badFrame('bad frame from server', error);
      return;
    }
    for (const frame of frames) {
      if (frame.kind === 'request') {
        this.badFrame('server sent a request frame', null);
        return;
      }
      // A missing entry is an answer that arrived after its call's deadline: dropped.
      const pending = this.forget(frame.requestId);
      if (pending === undefined) continue;
      const outcome = callOutcome(frame, { address: this.options.address, method: pending.method });
      if (outcome instanceof StorageError) pending.reject(outcome);
      else pending.resolve(outcome);
    }
  }

  private badFrame(reason: string, cause: unknown): void {
    this.options.onBadFrame();
    this.closeReason ??= { reason, retryable: true, cause };
    this.socket.destroy();
  }

  private onClose(): void {
    const { reason, retryable, cause } = this.closeReason ?? { reason: 'connection closed by peer', retryable: true };
    for (const requestId of [...this.pending.keys()]) {
      const pending = this.forget(requestId);
      pending?.reject(unreachableError(this.options.address, reason, { retryable, cause }));
    }
    this.options.onClosed(this);
  }
}

function writeFrame(socket: Socket, frame: EncodedFrame): void {
  socket.cork();
  socket.write(frame[0]);
  if (frame[1].length > 0) socket.write(frame[1]);
  socket.uncork();
}

interface TcpRpcServerOptions {
  readonly handler: RpcHandler;
  readonly clock: Clock;
  readonly semaphore: ByteSemaphore;
  readonly stats: MutableStats;
}

class TcpRpcServer implements RpcServer {
  private readonly options: TcpRpcServerOptions;
  private readonly server: net.Server;
  private readonly sockets = new Set<Socket>();
  private boundAddress = '';
  private closing: Promise<void> | null = null;

  constructor(options: TcpRpcServerOptions) {
    this.options = options;
    this.server = net.createServer((socket) => this.onConnection(socket));
  }

  get address(): string {
    return this.boundAddress;
  }

  start(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => {
        reject(new StorageError('config.invalid', `cannot listen on ${formatAddress(host, port)}: ${error.message}`, { cause: error }));
      };
      this.server.once('error', onError);
      this.server.listen({ host, port }, () => {
        this.server.off('error', onError);
        const bound = this.server.address();
        const boundPort = typeof bound === 'object' && bound !== null ? bound.port : port;
        this.boundAddress = formatAddress(host, boundPort);
        resolve();
      });
    });
  }

  close(): Promise<void> {
    this.closing ??= new Promise((resolve) => {
      this.server.close(() => resolve());
      for (const socket of this.sockets) socket.destroy();
    });
    return this.closing;
  }

  private onConnection(socket: Socket): void {
    if (this.closing !== null) {
      socket.destroy();
      return;
    }
    this.options.stats.serverConnectionsAccepted += 1;
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const decoder = new RpcFrameDecoder();
    const from = formatAddress(socket.remoteAddress ?? 'unknown', socket.remotePort ?? 0);
    socket.on('error', () => { /* 'close' follows; the caller sees rpc.unreachable */ });
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('data', (chunk: Buffer) => {
      let frames: DecodedRpcFrame[];
      try {
        frames = decoder.push(chunk);
      } catch {
        this.options.stats.badFramesReceived += 1;
        socket.destroy();
        return;
      }
      for (const frame of frames) this.onFrame(socket, from, frame);
    });
  }

  private onFrame(socket: Socket, from: string, frame: DecodedRpcFrame): void {
    const { stats, semaphore, clock, handler } = this.options;
    if (frame.kind !== 'request') {
      stats.badFramesReceived += 1;
      socket.destroy();
      return;
    }
    if (frame.deadlineMs === 0) {
      stats.requestsExpired += 1; // the caller has already given up
      return;
    }
    if (!semaphore.tryAcquire(frame.frameBytes)) {
      stats.requestsOverloaded += 1;
      sendIfOpen(socket, encodeError(frame.requestId, overloadedError(this.address, semaphore.inUseBytes, semaphore.capacityBytes)));
      return;
    }
    const context = { deadlineAtMs: clock.monotonicMs() + frame.deadlineMs, from };
    void answerRequest(handler, frame, context).then((answer) => {
      semaphore.release(frame.frameBytes);
      stats.requestsServed += 1;
      sendIfOpen(socket, answer);
    });
  }
}

function sendIfOpen(socket: Socket, frame: EncodedFrame): void {
  if (socket.writable) writeFrame(socket, frame);
}
