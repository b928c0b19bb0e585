// The null server: the least work an HTTP server can do and still answer the Azure Blob
// requests the benchmark sends correctly (the status codes and headers the official SDK
// expects). It discards uploaded bytes and serves slices of one fixed buffer, so a client's
// figures against it are the client's own ceiling on this machine. It keeps only names and
// sizes (bounded by blobsMax), so Get Blob returns the right length and List Blobs the right
// names. It does no authentication and no per-byte work: Content-MD5 is echoed when the client
// sent one, never computed. Run as its own process: `node bench/blob/null-server.ts --port N`.
//
// Requests (path style, /<account>/<container>[/<blob>]):
//   PUT  ?restype=container            Create Container   201 | 409
//   DELETE ?restype=container          Delete Container   202
//   GET  ?restype=container&comp=list  List Blobs         200 XML, paged by marker/maxresults
//   PUT  <blob>                        Put Blob           201
//   PUT  <blob>?comp=block&blockid=    Put Block          201
//   PUT  <blob>?comp=blocklist         Put Block List     201
//   GET|HEAD <blob>                    Get Blob / Get Blob Properties  200 | 206 | 404
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { headerUsage, parseBenchArgs } from '../lib/cli-args.ts';

const serviceVersion = '2025-07-05';
const fixedBuffer = Buffer.alloc(8 << 20, 0x4e);
const blobsMax = 2_000_000;
const blockListBodyBytesMax = 4 << 20;
const listPageMax = 5000;

interface BlobEntry {
  readonly contentLength: number;
  readonly etag: string;
  readonly lastModified: string;
}

interface ContainerEntry {
  readonly blobs: Map<string, BlobEntry>;
  /** Staged block sizes per blob, dropped at Put Block List. */
  readonly staged: Map<string, Map<string, number>>;
  sortedNames: string[] | null;
}

interface Target {
  readonly container: string;
  readonly blob: string | null;
  readonly query: URLSearchParams;
}

export class NullBlobService {
  private readonly containers = new Map<string, ContainerEntry>();
  private blobCount = 0;
  private etagCounter = 0;

  handle(request: IncomingMessage, response: ServerResponse): void {
    const target = parseTarget(request.url ?? '/');
    if (target === null) return sendError(response, 400, 'InvalidUri', 'expected /<account>/<container>[/<blob>]');
    const method = request.method ?? 'GET';
    const restype = target.query.get('restype');
    const comp = target.query.get('comp');
    if (target.blob === null && restype === 'container') return this.handleContainer(method, comp, target, request, response);
    if (target.blob !== null && method === 'PUT') return this.handlePut(comp, target, request, response);
    if (target.blob !== null && (method === 'GET' || method === 'HEAD') && comp === null) return this.handleGet(method, target, request, response);
    drain(request, () => sendError(response, 400, 'UnsupportedHttpVerb', `${method} ${request.url ?? ''} is not served by the null server`));
  }

  private handleContainer(method: string, comp: string | null, target: Target, request: IncomingMessage, response: ServerResponse): void {
    if (method === 'PUT' && comp === null) {
      if (this.containers.has(target.container)) return drain(request, () => sendError(response, 409, 'ContainerAlreadyExists', 'The specified container already exists.'));
      this.containers.set(target.container, { blobs: new Map(), staged: new Map(), sortedNames: null });
      return drain(request, () => this.sendCreated(response, {}));
    }
    if (method === 'DELETE' && comp === null) {
      const container = this.containers.get(target.container);
      if (container !== undefined) this.blobCount -= container.blobs.size;
      this.containers.delete(target.container);
      return drain(request, () => send(response, 202, commonHeaders()));
    }
    if (method === 'GET' && comp === 'list') return drain(request, () => this.listBlobs(target, request, response));
    drain(request, () => sendError(response, 400, 'InvalidQueryParameterValue', 'unsupported container operation'));
  }

  private handlePut(comp: string | null, target: Target, request: IncomingMessage, response: ServerResponse): void {
    const container = this.containers.get(target.container);
    const blob = target.blob ?? '';
    if (container === undefined) return drain(request, () => sendError(response, 404, 'ContainerNotFound', 'The specified container does not exist.'));
    const md5 = headerValue(request, 'content-md5');
    if (comp === null) {
      let bytes = 0;
      request.on('data', (chunk: Buffer) => (bytes += chunk.length));
      request.on('end', () => this.commit({ container, blob, contentLength: bytes, md5, response }));
      return;
    }
    if (comp === 'block') {
      const blockId = target.query.get('blockid') ?? '';
      let bytes = 0;
      request.on('data', (chunk: Buffer) => (bytes += chunk.length));
      request.on('end', () => this.stageBlock({ container, blob, blockId, bytes, md5, response }));
      return;
    }
    if (comp === 'blocklist') return readSmallBody(request, blockListBodyBytesMax, (body) => this.commitBlockList(container, blob, body, response));
    drain(request, () => sendError(response, 400, 'InvalidQueryParameterValue', `comp=${comp} is not served by the null server`));
  }

  private stageBlock(options: { container: ContainerEntry; blob: string; blockId: string; bytes: number; md5: string | null; response: ServerResponse }): void {
    let blocks = options.container.staged.get(options.blob);
    if (blocks === undefined) {
      blocks = new Map();
      options.container.staged.set(options.blob, blocks);
    }
    blocks.set(options.blockId, options.bytes);
    const headers: Record<string, string> = { ...commonHeaders(), 'x-ms-request-server-encrypted': 'true' };
    if (options.md5 !== null) headers['content-md5'] = options.md5;
    send(options.response, 201, headers);
  }

  private commitBlockList(container: ContainerEntry, blob: string, body: string | null, response: ServerResponse): void {
    if (body === null) return sendError(response, 413, 'RequestBodyTooLarge', 'block list too large');
    const staged = container.staged.get(blob) ?? new Map<string, number>();
    let contentLength = 0;
    for (const match of body.matchAll(/<(?:Latest|Uncommitted|Committed)>([^<]*)<\//g)) {
      const size = staged.get(match[1] ?? '');
      if (size === undefined) return sendError(response, 400, 'InvalidBlockList', 'The specified block list is invalid.');
      contentLength += size;
    }
    container.staged.delete(blob);
    this.commit({ container, blob, contentLength, md5: null, response });
  }

  private commit(options: { container: ContainerEntry; blob: string; contentLength: number; md5: string | null; response: ServerResponse }): void {
    const isNew = !options.container.blobs.has(options.blob);
    if (isNew && this.blobCount >= blobsMax) return sendError(options.response, 503, 'ServerBusy', `the null server keeps at most ${blobsMax} names`);
    const entry: BlobEntry = { contentLength: options.contentLength, etag: `"0x8DC${(++this.etagCounter).toString(16).toUpperCase().padStart(11, '0')}"`, lastModified: httpDate() };
    options.container.blobs.set(options.blob, entry);
    if (isNew) {
      this.blobCount += 1;
      options.container.sortedNames = null;
    }
    const headers: Record<string, string> = { etag: entry.etag, 'last-modified': entry.lastModified, 'x-ms-request-server-encrypted': 'true' };
    if (options.md5 !== null) headers['content-md5'] = options.md5;
    this.sendCreated(options.response, headers);
  }

  private sendCreated(response: ServerResponse, headers: Record<string, string>): void {
    send(response, 201, { etag: `"0x8DC${(++this.etagCounter).toString(16).toUpperCase().padStart(11, '0')}"`, 'last-modified': httpDate(), ...headers, ...commonHeaders() });
  }

  private handleGet(method: string, target: Target, request: IncomingMessage, response: ServerResponse): void {
    const entry = this.containers.get(target.container)?.blobs.get(target.blob ?? '');
    if (entry === undefined) return drain(request, () => sendError(response, 404, 'BlobNotFound', 'The specified blob does not exist.'));
    const range = parseRange(headerValue(request, 'x-ms-range') ?? headerValue(request, 'range'), entry.contentLength);
    if (range === 'invalid') return drain(request, () => sendError(response, 416, 'InvalidRange', 'The range specified is invalid for the current size of the resource.'));
    const start = range?.start ?? 0;
    const length = range === null ? entry.contentLength : range.end - range.start + 1;
    const headers: Record<string, string> = {
      ...commonHeaders(),
      'content-length': String(length),
      'content-type': 'application/octet-stream',
      etag: entry.etag,
      'last-modified': entry.lastModified,
      'x-ms-creation-time': entry.lastModified,
      'x-ms-blob-type': 'BlockBlob',
      'x-ms-lease-state': 'available',
      'x-ms-lease-status': 'unlocked',
      'x-ms-server-encrypted': 'true',
      'accept-ranges': 'bytes',
    };
    if (range !== null) headers['content-range'] = `bytes ${range.start}-${range.end}/${entry.contentLength}`;
    response.writeHead(range === null ? 200 : 206, headers);
    if (method === 'HEAD') return void response.end();
    writeFixedBytes(response, length, start);
  }

  private listBlobs(target: Target, request: IncomingMessage, response: ServerResponse): void {
    const container = this.containers.get(target.container);
    if (container === undefined) return sendError(response, 404, 'ContainerNotFound', 'The specified container does not exist.');
    container.sortedNames ??= [...container.blobs.keys()].sort();
    const names = container.sortedNames;
    const prefix = target.query.get('prefix') ?? '';
    const marker = target.query.get('marker') ?? '';
    const requested = Number(target.query.get('maxresults') ?? listPageMax);
    const maxResults = Number.isInteger(requested) && requested > 0 ? Math.min(listPageMax, requested) : listPageMax;
    let index = lowerBound(names, marker === '' ? prefix : marker);
    const items: string[] = [];
    while (index < names.length && items.length < maxResults) {
      const name = names[index] ?? '';
      if (!name.startsWith(prefix)) break;
      const entry = container.blobs.get(name);
      if (entry !== undefined) items.push(blobXml(name, entry));
      index += 1;
    }
    const next = index < names.length && (names[index] ?? '').startsWith(prefix) ? (names[index] ?? '') : '';
    const host = headerValue(request, 'host') ?? '127.0.0.1';
    const account = (request.url ?? '/').split('/')[1] ?? '';
    const xml = `<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="http://${escapeXml(host)}/${escapeXml(account)}" ContainerName="${escapeXml(target.container)}"><Prefix>${escapeXml(prefix)}</Prefix><Marker>${escapeXml(marker)}</Marker><MaxResults>${maxResults}</MaxResults><Blobs>${items.join('')}</Blobs><NextMarker>${escapeXml(next)}</NextMarker></EnumerationResults>`;
    const body = Buffer.from(xml, 'utf8');
    send(response, 200, { ...commonHeaders(), 'content-type': 'application/xml', 'content-length': String(body.length) }, body);
  }
}

function blobXml(name: string, entry: BlobEntry): string {
  return `<Blob><Name>${escapeXml(name)}</Name><Properties><Creation-Time>${entry.lastModified}</Creation-Time><Last-Modified>${entry.lastModified}</Last-Modified><Etag>${entry.etag}</Etag><Content-Length>${entry.contentLength}</Content-Length><Content-Type>application/octet-stream</Content-Type><BlobType>BlockBlob</BlobType><AccessTier>Hot</AccessTier><AccessTierInferred>true</AccessTierInferred><LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState><ServerEncrypted>true</ServerEncrypted></Properties><OrMetadata /></Blob>`;
}

/** Writes `length` bytes from the fixed buffer, respecting backpressure. */
function writeFixedBytes(response: ServerResponse, length: number, offset: number): void {
  let remaining = length;
  let position = offset % fixedBuffer.length;
  const pump = (): void => {
    while (remaining > 0) {
      const size = Math.min(remaining, fixedBuffer.length - position);
      const chunk = fixedBuffer.subarray(position, position + size);
      remaining -= size;
      position = (position + size) % fixedBuffer.length;
      if (remaining === 0) return void response.end(chunk);
      if (!response.write(chunk)) return void response.once('drain', pump);
    }
  };
  if (length === 0) return void response.end();
  pump();
}

export function parseTarget(url: string): Target | null {
  const queryStart = url.indexOf('?');
  const path = queryStart === -1 ? url : url.slice(0, queryStart);
  const query = new URLSearchParams(queryStart === -1 ? '' : url.slice(queryStart + 1));
  const parts = path.split('/');
  // parts: ['', account, container, ...blob]
  const container = parts[2];
  if (parts.length < 3 || container === undefined || container === '') return null;
  const blob = parts.length > 3 ? decodeURIComponent(parts.slice(3).join('/')) : null;
  return { container: decodeURIComponent(container), blob: blob === '' ? null : blob, query };
}

/** `bytes=a-b` or `bytes=a-`; null for no range, 'invalid' for one past the end. */
export function parseRange(header: string | null, size: number): { start: number; end: number } | null | 'invalid' {
  if (header === null) return null;
  const match = /^bytes=(\d+)-(\d*)$/.exec(header.trim());
  if (match === null) return null;
  const start = Number(match[1]);
  const end = match[2] === undefined || match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (start >= size || end < start) return 'invalid';
  return { start, end };
}

function lowerBound(names: readonly string[], key: string): number {
  let low = 0;
  let high = names.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((names[middle] ?? '') < key) low = middle + 1;
    else high = middle;
  }
  return low;
}

function headerValue(request: IncomingMessage, name: string): string | null {
  const value = request.headers[name];
  return typeof value === 'string' ? value : null;
}

function drain(request: IncomingMessage, then: () => void): void {
  request.resume();
  request.once('end', then);
}

function readSmallBody(request: IncomingMessage, bytesMax: number, then: (body: string | null) => void): void {
  const chunks: Buffer[] = [];
  let bytes = 0;
  request.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes <= bytesMax) chunks.push(chunk);
  });
  request.once('end', () => then(bytes <= bytesMax ? Buffer.concat(chunks).toString('utf8') : null));
}

let dateCacheSecond = -1;
let dateCache = '';

function httpDate(): string {
  const second = Math.floor(Date.now() / 1000);
  if (second !== dateCacheSecond) {
    dateCacheSecond = second;
    dateCache = new Date(second * 1000).toUTCString();
  }
  return dateCache;
}

function commonHeaders(): Record<string, string> {
  return { 'x-ms-request-id': randomUUID(), 'x-ms-version': serviceVersion, date: httpDate(), server: 'kura-bench-null-server' };
}

function send(response: ServerResponse, status: number, headers: Record<string, string>, body?: Buffer): void {
  response.writeHead(status, { 'content-length': body === undefined ? '0' : String(body.length), ...headers });
  response.end(body);
}

function sendError(response: ServerResponse, status: number, code: string, message: string): void {
  const body = Buffer.from(`<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${escapeXml(message)}</Message></Error>`, 'utf8');
  send(response, status, { ...commonHeaders(), 'x-ms-error-code': code, 'content-type': 'application/xml' }, body);
}

function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => `&#${character.charCodeAt(0)};`);
}

/** Starts a null server on 127.0.0.1; `port` 0 lets the kernel choose. */
export function startNullServer(port: number, service = new NullBlobService()): Promise<{ readonly server: Server; readonly port: number }> {
  const server = createServer({ keepAliveTimeout: 30_000 }, (request, response) => service.handle(request, response));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port }, () => {
      const address = server.address();
      resolve({ server, port: typeof address === 'object' && address !== null ? address.port : port });
    });
  });
}

if (import.meta.main) {
  const values = parseBenchArgs(headerUsage(import.meta.url), { port: { type: 'string' } });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`--port must be a TCP port, got ${String(values.port)}`);
  const { server } = await startNullServer(port);
  // Nothing to flush: the null server keeps nothing worth keeping.
  process.once('SIGTERM', () => {
    server.closeAllConnections();
    process.exit(0);
  });
}
