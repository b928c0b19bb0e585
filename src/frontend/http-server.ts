// The Blob front end's HTTP server (node:http): for each request, parse once into an Operation,
// authorise, read or stream its body under limits, dispatch to the injected BlobBackend, and
// answer in Azure's shape — x-ms-request-id, x-ms-version, Date, echoed x-ms-client-request-id,
// CORS — with every error mapped through the one error table (errors.ts).
//
// Invariants: stateless (no per-client state survives a request); blob bodies are streamed,
// never buffered whole (XML documents are read whole, bounded by xmlBodyBytesMax), and the bytes
// all data bodies may hold at once are bounded by frontendBodyBytesMax (each reserves
// min(Content-Length, two append chunks + 1 MiB) before it is read, FIFO); a request
// that fails before its body was read is answered and its connection closed, so unread bytes
// are never parsed as a next request; the backend is called only for parsed, authorised
// operations; valid signatures, keys and SAS tokens are never logged (targets are redacted).
// Fault model: hostile clients — oversized heads (Node's maxHeaderSize, 431), header floods
// (maxHeadersCount), slow heads (headersTimeout, 408), stalled bodies (idle timeout destroys
// the socket; the body iterator throws before its last chunk), disconnects mid-body, bodies
// that do not match Content-MD5; backends that throw.
//
// Close is bounded (a stop must finish even with keep-alive clients and stuck requests): stop
// accepting connections, close idle keep-alive ones, answer every response from then on with
// `Connection: close` and every request that arrives on a still-open connection with 503
// ServerBusy (the SDKs retry it elsewhere or later), let requests in flight finish for at most
// drainMs, then destroy every connection (a stalled body's iterator throws) and wait at most
// frontendCloseSettleMs for the handlers' backend calls to end, so the layers below stop under
// as few calls as possible. Nothing is lost by cutting: a write is acknowledged only after it is
// durable, and an unacknowledged one is all-or-nothing (docs/blob-schema.md "Bytes").

import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  dataAppendBytesMax, frontendBodyBytesMax, frontendCloseSettleMs, frontendConnectionsMax, frontendKeepAliveTimeoutMs, requestBodyIdleTimeoutMs, requestHeaderBytesMax, requestHeadersCountMax,
  requestHeadersTimeoutMs,
} from '../constants.ts';
import { ByteSemaphore } from '../util/byte-semaphore.ts';
import { settledWithin, type Clock } from '../util/clock.ts';
import type { ReadBufferPool } from '../util/read-buffer-pool.ts';
import { redactTarget, type Authorizer } from './auth/authorizer.ts';
import type { BlobBackend, CallContext } from './blob-backend.ts';
import { actualRequestHeaders, preflightHeaders, type CorsRulesLookup } from './cors.ts';
import { dispatch, type BodyInput, type Reply } from './dispatch.ts';
import { errorBodyXml, FrontendError, mapError } from './errors.ts';
import { httpDate, parseMd5 } from './fields.ts';
import { hasDataBody, hasXmlBody, type Operation } from './operation.ts';
import { headerMap, parseRequest, type ParsedRequest, type RequestHead } from './request-parser.ts';
import { DataBody, readXmlBody } from './request-body.ts';

/** The subset of a pino logger the server uses (constant messages, structured fields). */
export interface FrontendLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface FrontendServerOptions {
  readonly backend: BlobBackend;
  readonly authorizer: Authorizer;
  readonly clock: Clock;
  readonly corsRules: CorsRulesLookup;
  readonly apiVersionLatest: string;
  readonly logger?: FrontendLogger;
  /** Overrides for tests; defaults come from src/constants.ts. */
  readonly headersTimeoutMs?: number;
  readonly bodyIdleTimeoutMs?: number;
  /**
   * The pool the disks under this front end read large blocks into, when this front end is the
   * last holder of those bytes (`kura serve`: one process): each reply chunk is released once its
   * socket write completed (src/util/read-buffer-pool.ts). Absent: nothing is released.
   */
  readonly readBuffers?: ReadBufferPool;
}

/** What one data body may hold in the backend at once: one append chunk in flight and the next
 * being read (data.ts streamBody) plus the incoming chunks around them; the reservation against
 * frontendBodyBytesMax. */
const bodyReservationBytes = 2 * dataAppendBytesMax + 1024 * 1024;

/** Per-request state the response writers need. */
interface Exchange {
  readonly requestId: string;
  readonly request: IncomingMessage;
  readonly response: ServerResponse;
  version: string;
  bodyRead: boolean;
  cors: Readonly<Record<string, string>>;
  /** Echoed as x-ms-client-request-id. In the headers object writeHead gets, never by setHeader:
   * one header set before writeHead sends every other one through setHeader too. */
  clientRequestId: string | undefined;
}

/** The CORS headers of a request without Origin (most): none. */
const noCors: Readonly<Record<string, string>> = Object.freeze({});

export class FrontendServer {
  readonly server: Server;
  readonly #options: FrontendServerOptions;
  readonly #inFlight = new WeakMap<object, Set<ServerResponse>>();
  readonly #closeAfter = new WeakSet<object>();
  /** Handlers running now: close() waits (bounded) for them. */
  readonly #handlers = new Set<Promise<void>>();
  #closing = false;
  /** Request body bytes held at once across every request (frontendBodyBytesMax). */
  readonly #bodyBudget = new ByteSemaphore({ capacityBytes: frontendBodyBytesMax, waitersMax: frontendConnectionsMax });

  constructor(options: FrontendServerOptions) {
    this.#options = options;
    const headersTimeout = options.headersTimeoutMs ?? requestHeadersTimeoutMs;
    // Node checks the head deadline every connectionsCheckingInterval (30 s by default): check
    // often enough that a slowloris head is cut within about a quarter of the deadline.
    const serverOptions = {
      maxHeaderSize: requestHeaderBytesMax, requestTimeout: 0, headersTimeout, keepAliveTimeout: frontendKeepAliveTimeoutMs,
      connectionsCheckingInterval: Math.max(50, Math.floor(headersTimeout / 4)),
      // A request without Content-Length or Transfer-Encoding (a Get Blob from the SDKs) gets a
      // body stream that has already ended and closed: no 'end' and 'close' events, ticks and
      // listener churn per request. Such a request has no body Kura could read: parseRequest
      // refuses a body operation without Content-Length (MissingContentLengthHeader).
      optimizeEmptyRequests: true,
    };
    this.server = createServer(serverOptions, (request, response) => {
      const handler = this.#handle(request, response);
      this.#handlers.add(handler);
      // then, not finally (one derived promise, not three): #handle answers every error itself.
      void handler.then(() => this.#handlers.delete(handler));
    });
    // The body idle timeout, as the socket timeout Node itself sets at each request's start (and
    // replaces with keepAliveTimeout between requests): an idle socket is destroyed by Node's own
    // 'timeout' handler, as no request, response or server listens for 'timeout'. Armed per
    // connection, not per request (a timer re-armed and a listener added and removed per request).
    this.server.timeout = options.bodyIdleTimeoutMs ?? requestBodyIdleTimeoutMs;
    this.server.maxHeadersCount = requestHeadersCountMax;
    this.server.maxConnections = frontendConnectionsMax;
    this.server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
      // Oversized or malformed heads never reach a handler: answer in plain HTTP and close —
      // unless a response to an earlier request on this connection is still being written
      // (bytes past a Content-Length were parsed as a next request): finish it, then close.
      const inFlight = this.#inFlight.get(socket);
      if (inFlight !== undefined && inFlight.size > 0) {
        this.#closeAfter.add(socket);
        return;
      }
      const status = error.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
      if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      else socket.destroy();
    });
  }

  async listen(port: number, host: string): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve());
    });
    return (this.server.address() as AddressInfo).port;
  }

  /** Graceful, bounded close (see the file comment): requests in flight get up to drainMs to
   * finish (0: cut at once); returns how many were still running when the connections were cut. */
  async close(options: { readonly drainMs?: number } = {}): Promise<{ readonly cut: number }> {
    this.#closing = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    await settledWithin(this.#options.clock, [...this.#handlers], options.drainMs ?? 0);
    const cut = this.#handlers.size;
    this.server.closeAllConnections();
    await settledWithin(this.#options.clock, [closed, ...this.#handlers], frontendCloseSettleMs);
    return { cut };
  }

  /** Requests running now (tests and the stop's log). */
  get inFlight(): number {
    return this.#handlers.size;
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const exchange: Exchange = { requestId: randomUUID(), request, response, version: '2009-09-19', bodyRead: false, cors: noCors, clientRequestId: undefined };
    this.#track(request, response);
    try {
      if (this.#closing) throw new FrontendError('ServerBusy', 'the server is shutting down');
      if (request.method === 'OPTIONS') {
        await this.#preflight(exchange);
        return;
      }
      const head = requestHead(request);
      const parsed = parseRequest(head, { apiVersionLatest: this.#options.apiVersionLatest });
      if (!parsed.ok) {
        exchange.clientRequestId = parsed.clientRequestId;
        throw parsed.error;
      }
      await this.#serve(exchange, parsed.request);
    } catch (error) {
      this.#fail(exchange, error);
    }
  }

  #track(request: IncomingMessage, response: ServerResponse): void {
    const socket = request.socket;
    const set = this.#inFlight.get(socket) ?? new Set<ServerResponse>();
    this.#inFlight.set(socket, set);
    set.add(response);
    response.on('close', () => {
      set.delete(response);
      if (set.size === 0 && this.#closeAfter.has(socket)) socket.destroy();
    });
  }

  async #serve(exchange: Exchange, parsed: ParsedRequest): Promise<void> {
    exchange.clientRequestId = parsed.clientRequestId;
    if (parsed.version !== null) exchange.version = parsed.version;
    const origin = parsed.headers.get('origin');
    if (origin !== undefined) exchange.cors = actualRequestHeaders(await this.#options.corsRules(parsed.account), origin, parsed.method);
    // A signed request (most) is decided without waiting: no promise and no tick for it.
    const authorizer = this.#options.authorizer;
    const principal = authorizer.authorizeSigned(parsed) ?? await authorizer.authorize(parsed);
    const abort = new AbortController();
    // A request closed before it was complete: its client went away mid-body. Only a body can be
    // cut short (a bodyless request is complete once its head is parsed, and with
    // optimizeEmptyRequests its stream never emits 'close').
    const hasBody = hasDataBody(parsed.operation) || hasXmlBody(parsed.operation);
    // on, not once: 'close' comes once (no once wrapper per request).
    if (hasBody) exchange.request.on('close', () => { if (!exchange.request.complete) abort.abort(); });
    const ctx: CallContext = {
      requestId: exchange.requestId, principal, signal: abort.signal,
      createOnly: principal.kind === 'sas' && principal.grant.createOnly,
    };
    const host = parsed.headers.get('host') ?? 'localhost';
    const endpoint = parsed.addressing === 'host' ? `http://${host}/` : `http://${host}/${parsed.account}/`;
    // The body budget: what the backend may hold of this body at once, reserved before it is read.
    const reserved = hasDataBody(parsed.operation) ? Math.min(parsed.operation.contentLength, bodyReservationBytes) : 0;
    if (reserved > 0 && !this.#bodyBudget.tryAcquire(reserved)) await this.#bodyBudget.acquire(reserved, { signal: abort.signal });
    let reply: Reply;
    try {
      const body = hasXmlBody(parsed.operation) ? await this.#xmlBody(exchange, parsed.operation.contentLength, parsed.headers) : this.#streamedBody(exchange, parsed.operation, parsed.headers);
      reply = await dispatch(this.#options.backend, { operation: parsed.operation, body, ctx, endpoint });
      if (body.kind === 'data' && body.body instanceof DataBody && body.body.consumed) exchange.bodyRead = true;
    } finally {
      if (reserved > 0) this.#bodyBudget.release(reserved);
    }
    const headers = this.#commonHeaders(exchange);
    Object.assign(headers, reply.headers);
    if (principal.kind === 'sas') for (const [name, value] of principal.grant.responseHeaders) headers[name] = value;
    if (headers['content-length'] === undefined) setHeldBodyLength(headers, reply.body);
    const streaming = this.#send(exchange, { status: reply.status, headers, body: reply.body }, parsed.method === 'HEAD');
    if (streaming !== undefined) await streaming;
  }

  /** An XML document, read whole (bounded by xmlBodyBytesMax) before dispatch. */
  async #xmlBody(exchange: Exchange, contentLength: number, headers: ReadonlyMap<string, string>): Promise<BodyInput> {
    const bytes = await readXmlBody(exchange.request, contentLength, contentMd5(headers));
    exchange.bodyRead = true;
    return { kind: 'xml', bytes };
  }

  /** A data body, streamed by the backend; or none. Synchronous: nothing is read here. */
  #streamedBody(exchange: Exchange, op: Operation, headers: ReadonlyMap<string, string>): BodyInput {
    const md5 = contentMd5(headers); // checked on a bodyless request too, as for any other
    if (hasDataBody(op)) return { kind: 'data', body: new DataBody(exchange.request, op.contentLength, md5, op.contentCrc64) };
    exchange.bodyRead = true; // no body: parseRequest refused any Content-Length but 0
    return { kind: 'none' };
  }

  /** A new object: callers add to it. */
  #commonHeaders(exchange: Exchange): Record<string, string> {
    const headers: Record<string, string> = {
      'x-ms-request-id': exchange.requestId, 'x-ms-version': exchange.version, date: httpDate(this.#options.clock.nowMs()), server: 'Kura',
    };
    if (exchange.clientRequestId !== undefined) headers['x-ms-client-request-id'] = exchange.clientRequestId;
    if (exchange.cors !== noCors) Object.assign(headers, exchange.cors);
    if (this.#closing) headers.connection = 'close';
    return headers;
  }

  /** Writes `reply`, whose headers already hold the common ones (#serve). A promise only for a
   * streamed body (a reply held whole is written at once: no promise and no tick for it). */
  #send(exchange: Exchange, reply: Reply, isHead: boolean): Promise<void> | undefined {
    const { response } = exchange;
    response.writeHead(reply.status, reply.headers);
    if (isHead || reply.body === null) {
      response.end();
      return undefined;
    }
    if (typeof reply.body === 'string' || reply.body instanceof Uint8Array) {
      response.end(reply.body);
      return undefined;
    }
    return writeBody(response, reply.body, this.#options.readBuffers ?? null);
  }

  #fail(exchange: Exchange, error: unknown): void {
    const { response, request } = exchange;
    const mapped = mapError(error);
    const log = { requestId: exchange.requestId, method: request.method, target: redactTarget(request.url ?? ''), code: mapped.spec.azureCode };
    if (mapped.unexpected) this.#options.logger?.error({ ...log, err: error }, 'request failed unexpectedly');
    else this.#options.logger?.info(log, 'request refused');
    if (response.headersSent) {
      response.destroy();
      return;
    }
    const hasBody = mapped.spec.status !== 304 && request.method !== 'HEAD';
    const body = hasBody ? errorBodyXml(mapped, exchange.requestId, new Date(this.#options.clock.nowMs())) : '';
    const headers = this.#commonHeaders(exchange);
    headers['x-ms-error-code'] = mapped.spec.azureCode;
    if (hasBody) {
      headers['content-type'] = 'application/xml';
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    if (!exchange.bodyRead) headers.connection = 'close';
    // A copy source's own answer, also as Azure's response headers (docs/copy-sources.md).
    for (const [name, value] of mapped.details) {
      if (name === 'CopySourceStatusCode') headers['x-ms-copy-source-status-code'] = value;
      if (name === 'CopySourceErrorCode') headers['x-ms-copy-source-error-code'] = value.replace(/[^\x21-\x7e]/g, '');
    }
    response.writeHead(mapped.spec.status, headers);
    response.end(body);
  }

  async #preflight(exchange: Exchange): Promise<void> {
    const head = requestHead(exchange.request);
    const headers = headerMap(head.rawHeaders);
    const account = accountForPreflight(head.target, headers.get('host'));
    exchange.bodyRead = true;
    const cors = preflightHeaders(await this.#options.corsRules(account), headers);
    exchange.response.writeHead(200, Object.assign(this.#commonHeaders(exchange), cors, { 'content-length': '0' }));
    exchange.response.end();
  }
}

/**
 * Writes a streamed reply body and ends the response, honouring backpressure. Rejects when the
 * body throws or the client goes away first (then the body iterator is returned, so its reads
 * stop); #fail then destroys the response. Replaces stream.pipeline(Readable.from(...)), whose
 * adapter stream, AbortController and end-of-stream listeners cost ~5 % of the server's CPU per
 * 64 KiB Get Blob (one chunk). A chunk is given back to `readBuffers` only when its write
 * completed without error (the kernel holds a copy); a failed write leaves it to the collector.
 */
async function writeBody(response: ServerResponse, body: AsyncIterable<Uint8Array>, readBuffers: ReadBufferPool | null): Promise<void> {
  for await (const chunk of body) {
    if (response.destroyed) throw new FrontendError('InternalError', 'the client went away during the response body');
    const written = readBuffers === null ? response.write(chunk) : response.write(chunk, (error) => {
      if (error === null || error === undefined) readBuffers.release(chunk);
    });
    if (!written) await drained(response);
  }
  if (response.destroyed) throw new FrontendError('InternalError', 'the client went away during the response body');
  response.end();
}

/** Resolves on 'drain'; rejects if the response closes first. */
function drained(response: ServerResponse): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const settle = (closed: boolean): void => {
      response.off('drain', onDrain);
      response.off('close', onClose);
      if (closed) reject(new FrontendError('InternalError', 'the client went away during the response body'));
      else resolve();
    };
    const onDrain = (): void => settle(false);
    const onClose = (): void => settle(true);
    response.on('drain', onDrain);
    response.on('close', onClose);
  });
}

/**
 * Content-Length of a reply held whole (0 for none), as Azure sends it (`Content-Length: 0` on a
 * Put Blob's 201). Without it, Node frames the body chunked (writeHead fixes the head before
 * end() is called) and every client decodes a chunked body, if only its `0` terminator.
 */
function setHeldBodyLength(headers: Record<string, string>, body: Reply['body']): void {
  if (body === null) headers['content-length'] = '0';
  else if (typeof body === 'string') headers['content-length'] = String(Buffer.byteLength(body));
  else if (body instanceof Uint8Array) headers['content-length'] = String(body.byteLength);
}

function contentMd5(headers: ReadonlyMap<string, string>): Uint8Array | undefined {
  const raw = headers.get('content-md5');
  return raw === undefined ? undefined : parseMd5('Content-MD5', raw);
}

function requestHead(request: IncomingMessage): RequestHead {
  return {
    method: request.method ?? '', target: request.url ?? '', rawHeaders: request.rawHeaders,
    clientAddress: request.socket.remoteAddress ?? '', secure: false,
  };
}

/** The account a preflight is for: host-style first label, else the first path segment. */
function accountForPreflight(target: string, host: string | undefined): string {
  const hostStyle = host === undefined ? null : /^([a-z0-9]{3,24})\.blob\./.exec(host.toLowerCase());
  if (hostStyle?.[1] !== undefined) return hostStyle[1];
  const first = target.split('?')[0]?.split('/')[1] ?? '';
  if (!/^[a-z0-9]{3,24}$/.test(first)) throw new FrontendError('InvalidUri', 'no account in the preflight path');
  return first;
}
