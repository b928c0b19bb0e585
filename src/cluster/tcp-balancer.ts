// TcpBalancer: the dev cluster's one endpoint in front of its front ends (`kura dev-cluster
// --listen`). A client connection is handed to the next live front end, round robin; bytes are
// piped both ways untouched (HTTP keep-alive, streaming bodies and SharedKey signatures pass
// through as they are: the front ends see the Host the client used).
//
// Hand-off (a backend with handOff, dev-cluster's front ends): the accepted connection itself (its
// descriptor) is passed to the front end's process, which serves it as if it had accepted it; no
// byte passes through the balancer (piping every byte cost 0.4-0.9 ms of CPU per 64 KiB request on
// 2 cores, bench/README.md "Dev cluster: where the CPU goes"). Accepted sockets are paused until
// then (pauseOnConnect), so nothing was read from them. A hand-off that is refused (the process
// died, no channel) marks the backend down and tries the next, like a refused connect; one that is
// not written in time closes the connection (the client retries; role-process.ts bounds it); a
// backend that says it drains (markDown) gets no more connections until its health check says
// ready again.
//
// In production any TCP or HTTP load balancer does this job (docs/ARCHITECTURE.md, "Endpoint");
// this one exists so a laptop needs nothing else.
//
// Liveness: a backend is skipped while its health check says not ready (polled every checkMs,
// e.g. the front end's admin /readyz) and, between polls, after a connect to it failed. A client
// connection is only accepted onto a backend once the connect to that backend succeeded; a
// refused connect is retried on the next backend, so a front end that died is skipped at once
// without waiting for the next poll. A connection already piped to a front end that dies is
// closed: the client sees a reset and retries (the Azure SDKs do), landing on a live one.
//
// Limits: at most connectionsMax client connections at once (more are refused), each backend
// connect is bounded by connectTimeoutMs. close() does not wait for connections handed off: Node's
// server.close() would wait until every front end closed every connection it was handed (idle
// keep-alive ones last frontendKeepAliveTimeoutMs, 60 s), and dev-cluster stops the front ends
// only after the balancer; they close those connections themselves when they drain.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { StorageError } from '../util/errors.ts';
import type { HandOffResult } from './role-process.ts';
import { hostPort, probeTcp } from './probes.ts';

export interface BalancerBackend {
  readonly name: string;
  /** host:port the client's bytes go to. */
  readonly address: string;
  /** Is the backend ready? Polled every checkMs; null: a TCP connect to `address` is the check. */
  readonly healthy: (() => Promise<boolean>) | null;
  /** Passes an accepted connection to the backend's process; null: pipe the bytes to `address`. */
  readonly handOff: ((socket: Socket) => Promise<HandOffResult>) | null;
}

export interface TcpBalancerOptions {
  readonly host: string;
  readonly port: number;
  readonly backends: readonly BalancerBackend[];
  readonly checkMs: number;
  readonly connectTimeoutMs: number;
  readonly connectionsMax: number;
}

interface BackendState {
  readonly backend: BalancerBackend;
  live: boolean;
  /** Connections piped now. */
  connections: number;
  /** Connections handed off so far. */
  handedOff: number;
}

export interface BalancerBackendStatus {
  readonly name: string;
  readonly address: string;
  readonly live: boolean;
  readonly connections: number;
  readonly handedOff: number;
}

export class TcpBalancer {
  private readonly server: Server;
  private readonly states: BackendState[];
  private readonly options: TcpBalancerOptions;
  private readonly sockets = new Set<Socket>();
  private next = 0;
  private checking: NodeJS.Timeout | null = null;
  private boundPort = 0;

  private constructor(options: TcpBalancerOptions) {
    this.options = options;
    this.states = options.backends.map((backend) => ({ backend, live: true, connections: 0, handedOff: 0 }));
    this.server = createServer({ pauseOnConnect: true }, (client) => this.accept(client));
    this.server.maxConnections = options.connectionsMax;
  }

  static async start(options: TcpBalancerOptions): Promise<TcpBalancer> {
    if (options.backends.length === 0) throw new StorageError('config.invalid', 'the balancer needs at least one front end');
    const balancer = new TcpBalancer(options);
    await balancer.checkAll();
    await new Promise<void>((resolve, reject) => {
      balancer.server.once('error', (error) => reject(new StorageError('config.invalid', `cannot listen on ${options.host}:${options.port}: ${error.message}`, { cause: error })));
      balancer.server.listen(options.port, options.host, () => resolve());
    });
    const bound = balancer.server.address();
    balancer.boundPort = bound !== null && typeof bound === 'object' ? bound.port : options.port;
    balancer.checking = setInterval(() => void balancer.checkAll(), options.checkMs);
    return balancer;
  }

  get port(): number {
    return this.boundPort;
  }

  status(): BalancerBackendStatus[] {
    return this.states.map((state) => ({ name: state.backend.name, address: state.backend.address, live: state.live, connections: state.connections, handedOff: state.handedOff }));
  }

  /** The backend said it stops serving: no new connections until its next health check passes. */
  markDown(name: string): void {
    for (const state of this.states) if (state.backend.name === name) state.live = false;
  }

  /** Stops accepting and closes every piped connection (not the ones handed off: see the header). */
  close(): Promise<void> {
    if (this.checking !== null) clearInterval(this.checking);
    this.checking = null;
    if (this.server.listening) this.server.close();
    for (const socket of this.sockets) socket.destroy();
    return Promise.resolve();
  }

  private async checkAll(): Promise<void> {
    await Promise.all(this.states.map(async (state) => {
      const check = state.backend.healthy ?? (async () => (await probeTcp(state.backend.address, this.options.connectTimeoutMs)).state === 'ready');
      try {
        state.live = await check();
      } catch {
        state.live = false;
      }
    }));
  }

  private accept(client: Socket): void {
    this.track(client);
    // A client that resets while its backend connect is pending must not crash the process.
    client.on('error', () => client.destroy());
    client.pause();
    void this.connectBackend(client, this.states.length);
  }

  /** Tries live backends round robin (then the rest, in case every check is stale) until one connects. */
  private async connectBackend(client: Socket, attemptsLeft: number): Promise<void> {
    const state = this.pick();
    if (state === null || attemptsLeft === 0 || client.destroyed) {
      client.destroy();
      return;
    }
    const handOff = state.backend.handOff;
    if (handOff !== null) {
      const result = await handOff(client);
      if (result === 'handed') state.handedOff++;
      if (result !== 'refused') return;
      state.live = false;
      await this.connectBackend(client, attemptsLeft - 1);
      return;
    }
    const upstream = await this.connect(state.backend.address);
    if (upstream === null) {
      state.live = false;
      await this.connectBackend(client, attemptsLeft - 1);
      return;
    }
    this.pipe(client, upstream, state);
  }

  private pick(): BackendState | null {
    const count = this.states.length;
    for (const wantLive of [true, false]) {
      for (let i = 0; i < count; i++) {
        const state = this.states[(this.next + i) % count];
        if (state === undefined || state.live !== wantLive) continue;
        this.next = (this.next + i + 1) % count;
        return state;
      }
    }
    return null;
  }

  private connect(address: string): Promise<Socket | null> {
    return new Promise((resolve) => {
      const socket = createConnection(hostPort(address));
      const timer = setTimeout(() => { socket.destroy(); resolve(null); }, this.options.connectTimeoutMs);
      socket.once('connect', () => { clearTimeout(timer); resolve(socket); });
      socket.once('error', () => { clearTimeout(timer); socket.destroy(); resolve(null); });
    });
  }

  private pipe(client: Socket, upstream: Socket, state: BackendState): void {
    this.track(upstream);
    state.connections++;
    let closed = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      state.connections--;
      client.destroy();
      upstream.destroy();
    };
    // An error or a close on either side ends both: a half-open pair would hang the client.
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.pipe(upstream);
    upstream.pipe(client);
    client.resume();
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }
}
