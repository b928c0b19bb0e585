// The admin HTTP port of a Kura process (`--admin ADDR`): what a Prometheus scraper, a load
// balancer and an orchestrator ask.
//
//   GET /metrics   200, Prometheus text exposition of the process's registry
//   GET /healthz   200 "ok" while the process runs its event loop (liveness: restart if it fails)
//   GET /readyz    200 when the process can do its job, 503 when not; JSON { ready, reason }
//   other paths    404; other methods 405 (HEAD is answered like GET, without a body)
//
// Invariants: the port only reads state, it changes nothing; requests are bounded (head size,
// time to arrive, connections at once: src/constants.ts); the readiness answer comes from the
// process's own check, evaluated per request, never cached.
// Fault model: clients may be slow, hostile or disconnect mid-answer; a failing metrics collect
// answers 500 and is logged, it never takes the process down. It listens where it is told: give
// it a loopback or management-network address (it has no authentication).
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { adminConnectionsMax, adminHeaderBytesMax, adminRequestTimeoutMs } from '../constants.ts';
import { StorageError } from '../util/errors.ts';

export interface Readiness {
  readonly ready: boolean;
  /** Why not ready, or what the process is doing when it is. */
  readonly reason: string;
  /** Roles with a leader: 'leader' or 'standby' (a controller), so tools need not parse `reason`. */
  readonly role?: string;
}

export interface AdminServerOptions {
  /** "host:port"; port 0 picks a free port (see `address`). */
  readonly address: string;
  readonly registry: Registry;
  readonly readiness: () => Readiness;
  readonly logger: Logger;
}

export class AdminServer {
  private readonly server: Server;
  private readonly boundAddress: string;

  private constructor(server: Server, boundAddress: string) {
    this.server = server;
    this.boundAddress = boundAddress;
  }

  static async start(options: AdminServerOptions): Promise<AdminServer> {
    const { host, port } = parseListenAddress(options.address);
    const logger = options.logger.child({ component: 'admin' });
    const server = createServer({ maxHeaderSize: adminHeaderBytesMax, requestTimeout: adminRequestTimeoutMs, headersTimeout: adminRequestTimeoutMs }, (request, response) => {
      void answer(options, logger, request, response);
    });
    server.maxConnections = adminConnectionsMax;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const bound = server.address();
    const boundPort = bound !== null && typeof bound === 'object' ? bound.port : port;
    const admin = new AdminServer(server, `${host.includes(':') ? `[${host}]` : host}:${boundPort}`);
    logger.info({ address: admin.address }, 'admin server listening');
    return admin;
  }

  /** "host:port" it listens on (the real port when started with port 0). */
  get address(): string {
    return this.boundAddress;
  }

  /** Stops accepting, drops idle and open connections, resolves when closed. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }
}

async function answer(options: AdminServerOptions, logger: Logger, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const method = request.method ?? '';
  const path = (request.url ?? '').split('?')[0] ?? '';
  if (method !== 'GET' && method !== 'HEAD') {
    send(response, { status: 405, type: 'text/plain', body: 'method not allowed\n', head: false, allow: 'GET, HEAD' });
    return;
  }
  const head = method === 'HEAD';
  try {
    switch (path) {
      case '/metrics':
        send(response, { status: 200, type: options.registry.contentType, body: await options.registry.metrics(), head });
        return;
      case '/healthz':
        send(response, { status: 200, type: 'text/plain', body: 'ok\n', head });
        return;
      case '/readyz': {
        const readiness = options.readiness();
        send(response, { status: readiness.ready ? 200 : 503, type: 'application/json', body: `${JSON.stringify(readiness)}\n`, head });
        return;
      }
      default:
        send(response, { status: 404, type: 'text/plain', body: 'not found\n', head });
    }
  } catch (error) {
    logger.error({ err: error, path }, 'admin request failed');
    send(response, { status: 500, type: 'text/plain', body: 'internal error\n', head });
  }
}

function send(response: ServerResponse, reply: { status: number; type: string; body: string; head: boolean; allow?: string }): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  const headers: Record<string, string | number> = {
    'content-type': reply.type,
    'content-length': Buffer.byteLength(reply.body),
    'cache-control': 'no-store',
  };
  if (reply.allow !== undefined) headers['allow'] = reply.allow;
  response.writeHead(reply.status, headers);
  response.end(reply.head ? undefined : reply.body);
}

/** "host:port" → parts; IPv6 hosts in brackets ("[::1]:9100"). */
export function parseListenAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  const rawHost = colon === -1 ? '' : address.slice(0, colon);
  const host = rawHost.startsWith('[') && rawHost.endsWith(']') ? rawHost.slice(1, -1) : rawHost;
  const portText = address.slice(colon + 1);
  const port = Number(portText);
  if (colon === -1 || host === '' || !/^\d{1,5}$/.test(portText) || port > 65535) {
    throw new StorageError('config.invalid', `admin address must be host:port, got ${JSON.stringify(address)}`);
  }
  return { host, port };
}
