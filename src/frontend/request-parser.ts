// The request parser: (method, URL, headers, host, client address) → a typed Operation or a
// typed FrontendError, once, at the edge (STYLE.md principle 5). Path-style
// (/account/container/blob) and host-style (account.blob.host/container/blob) addressing;
// comp/restype/method/header dispatch as Azure routes Blob requests; x-ms-version; limits.
//
// Invariants: parseRequest is total — for any input it returns { ok: true } or { ok: false }
// with an Azure error, never throws (a fuzz test holds it to that); it reads no body and does
// no I/O; an operation is built only from validated fields (fields.ts, header-fields.ts).
// Fault model: every byte of the request head is hostile: oversized, duplicated, malformed,
// percent-encoded traversal, unknown verbs. Unknown query parameters are ignored (as Azure
// does); unknown values of known ones are errors.

import {
  appendBlockBytesMax, listMarkerBytesMax, listResultsMax, putBlobBytesMax, putBlockBytesMax,
  queryParametersMax, requestHeadersCountMax, requestUrlBytesMax, xmlBodyBytesMax,
} from '../constants.ts';
import { FrontendError, invalidHeader, invalidQuery, missingHeader } from './errors.ts';
import { parseAccountName, parseApiVersion, parseBlobName, parseContainerName } from './fields.ts';
import type { HeaderMap, RawHeaders } from './header-fields.ts';
import type { AccountName, BlobName, ContainerName } from './model.ts';
import type { Operation, ResourceRef } from './operation.ts';
import { routeBlob, routeContainer, routeService } from './routes.ts';

export interface RequestHead {
  readonly method: string;
  /** The request target exactly as received (origin-form: path and query). */
  readonly target: string;
  /** As received (Node's own array, not copied into pairs). */
  readonly rawHeaders: RawHeaders;
  readonly clientAddress: string;
  readonly secure: boolean;
}

export interface ParserOptions {
  /** Newest x-ms-version Kura speaks; newer ones are refused as Azure refuses unknown ones. */
  readonly apiVersionLatest: string;
}

export type QueryMap = ReadonlyMap<string, readonly string[]>;
export type Addressing = 'path' | 'host';

export interface ParsedRequest {
  readonly operation: Operation;
  readonly account: AccountName;
  readonly resource: ResourceRef;
  readonly method: string;
  /** x-ms-version as given, or null (anonymous requests may omit it). */
  readonly version: string | null;
  readonly clientRequestId?: string;
  readonly addressing: Addressing;
  /** The encoded path as received, for SharedKey canonicalisation. */
  readonly rawPath: string;
  readonly query: QueryMap;
  readonly headers: HeaderMap;
  readonly rawHeaders: RawHeaders;
  readonly clientAddress: string;
  readonly secure: boolean;
}

export type ParseResult =
  | { readonly ok: true; readonly request: ParsedRequest }
  | { readonly ok: false; readonly error: FrontendError; readonly clientRequestId?: string };

/** Everything routing needs, already split and decoded. */
export interface RouteInput {
  readonly method: string;
  readonly account: AccountName;
  readonly query: QueryMap;
  readonly headers: HeaderMap;
  readonly rawHeaders: RawHeaders;
  /** x-ms-version as given (checked), or null. */
  readonly version: string | null;
  /** Decoded container segment and blob remainder (null when absent). */
  readonly container: string | null;
  readonly blob: string | null;
}

const methods = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'POST', 'OPTIONS']);

export function parseRequest(head: RequestHead, options: ParserOptions): ParseResult {
  let clientRequestId: string | undefined;
  try {
    const headers = headerMap(head.rawHeaders);
    clientRequestId = parseClientRequestId(headers);
    const request = parseHead(head, headers, options, clientRequestId);
    return { ok: true, request };
  } catch (error) {
    if (error instanceof FrontendError) {
      return { ok: false, error, ...(clientRequestId === undefined ? {} : { clientRequestId }) };
    }
    // A validator threw something untyped: a bug, but the edge must still answer.
    return { ok: false, error: new FrontendError('InvalidInput', `unparseable request: ${String(error)}`) };
  }
}

function parseHead(head: RequestHead, headers: HeaderMap, options: ParserOptions, clientRequestId: string | undefined): ParsedRequest {
  if (!methods.has(head.method)) throw new FrontendError('InvalidHttpVerb', 'unknown HTTP method');
  const { rawPath, rawQuery } = splitTarget(head.target);
  const query = parseQuery(rawQuery);
  const versionRaw = headers.get('x-ms-version');
  const version = versionRaw === undefined ? null : parseApiVersion(versionRaw, options.apiVersionLatest);
  const address = parseAddress(headers.get('host'), rawPath);
  const input: RouteInput = { method: head.method, account: address.account, query, headers, rawHeaders: head.rawHeaders, version, container: address.container, blob: address.blob };
  const operation = address.service === 'blob' ? route(input) : unsupportedService(address.account, address.service);
  return {
    operation, account: address.account, resource: resourceFor(operation, address), method: head.method, version,
    ...(clientRequestId === undefined ? {} : { clientRequestId }),
    addressing: address.addressing, rawPath, query, headers, rawHeaders: head.rawHeaders,
    clientAddress: head.clientAddress, secure: head.secure,
  };
}

function route(input: RouteInput): Operation {
  if (input.container === null) return routeService(input);
  const restype = single(input.query, 'restype');
  if (input.blob === null && (restype === 'container' || restype === 'account')) return routeContainer(input, parseContainerName(input.container));
  if (input.blob === null) {
    // Azure: /account/name without restype=container addresses blob "name" in $root.
    return routeBlob(input, '$root' as ContainerName, parseBlobName(input.container));
  }
  return routeBlob(input, parseContainerName(input.container), parseBlobName(input.blob));
}

function resourceFor(operation: Operation, address: Address): ResourceRef {
  if ('blob' in operation) return { kind: 'blob', container: operation.container, blob: operation.blob };
  if ('container' in operation && operation.container !== undefined && operation.kind !== 'FindBlobsByTags') {
    return { kind: 'container', container: operation.container };
  }
  void address;
  return { kind: 'service' };
}

function unsupportedService(account: AccountName, service: Service): Operation {
  return { kind: 'Unsupported', account, service: service === 'blob' ? 'blob' : service, operationName: `${service} service` };
}

/** Lower-cased header map. Duplicates of headers Kura reads (or signs) are refused: two
 * x-ms-date or Authorization values leave what was signed ambiguous. */
export function headerMap(rawHeaders: RawHeaders): HeaderMap {
  if (rawHeaders.length > 2 * requestHeadersCountMax) throw new FrontendError('InvalidInput', 'too many headers');
  const map = new Map<string, string>();
  for (let index = 0; index + 1 < rawHeaders.length; index += 2) {
    const rawName = rawHeaders[index] ?? '';
    const value = rawHeaders[index + 1] ?? '';
    const name = rawName.toLowerCase();
    if (map.has(name)) {
      if (isSignificant(name)) throw invalidHeader(rawName, value.slice(0, 64), 'duplicate header');
      map.set(name, `${map.get(name) ?? ''},${value}`);
      continue;
    }
    map.set(name, value);
  }
  return map;
}

function isSignificant(name: string): boolean {
  return name.startsWith('x-ms-') || name.startsWith('content-') || name.startsWith('if-') || name.startsWith('access-control-') ||
    ['authorization', 'date', 'range', 'host', 'origin', 'cache-control', 'transfer-encoding'].includes(name);
}

function parseClientRequestId(headers: HeaderMap): string | undefined {
  const id = headers.get('x-ms-client-request-id');
  if (id === undefined) return undefined;
  if (id.length > 1024 || !/^[\x20-\x7e]*$/.test(id)) throw invalidHeader('x-ms-client-request-id', id.slice(0, 64), 'over 1 KiB or not printable ASCII');
  return id;
}

function splitTarget(target: string): { rawPath: string; rawQuery: string } {
  if (target.length > requestUrlBytesMax) throw new FrontendError('InvalidUri', 'URL too long');
  if (!target.startsWith('/') || target.includes('#')) throw new FrontendError('InvalidUri', 'not an origin-form request target');
  const q = target.indexOf('?');
  return q === -1 ? { rawPath: target, rawQuery: '' } : { rawPath: target.slice(0, q), rawQuery: target.slice(q + 1) };
}

function decodeComponent(text: string, what: string): string {
  // Without a '%' there is nothing to decode (most names and values): no runtime call for them.
  if (!text.includes('%')) return text;
  try {
    return decodeURIComponent(text);
  } catch {
    throw new FrontendError('InvalidUri', `bad percent-encoding in ${what}`);
  }
}

/** Query parameters: names lower-cased (Azure treats them case-insensitively), names and values
 * form-decoded: '+' is a space, as Azure reads it (Go's url.Values, so rclone, sends
 * `prefix=a+b%2F` for "a b/" and signs the decoded value; the JavaScript and Python SDKs encode a
 * space as %20 and a plus as %2B, so they never send a raw '+'). */
export function parseQuery(rawQuery: string): QueryMap {
  const map = new Map<string, string[]>();
  if (rawQuery === '') return map;
  const parts = rawQuery.split('&');
  if (parts.length > queryParametersMax) throw new FrontendError('InvalidUri', 'too many query parameters');
  for (const part of parts) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = decodeComponent((eq === -1 ? part : part.slice(0, eq)).replaceAll('+', ' '), 'query').toLowerCase();
    const value = eq === -1 ? '' : decodeComponent(part.slice(eq + 1).replaceAll('+', ' '), 'query');
    const values = map.get(name);
    if (values === undefined) map.set(name, [value]);
    else values.push(value);
  }
  return map;
}

/** The single value of a parameter Kura interprets; duplicates are refused. */
export function single(query: QueryMap, name: string): string | undefined {
  const values = query.get(name);
  if (values === undefined) return undefined;
  if (values.length > 1) throw invalidQuery(name, values.join(',').slice(0, 128), 'given more than once');
  return values[0];
}

type Service = 'blob' | 'queue' | 'table' | 'file' | 'dfs';

interface Address {
  readonly service: Service;
  readonly account: AccountName;
  readonly addressing: Addressing;
  readonly container: string | null;
  readonly blob: string | null;
}

const hostStyle = /^([a-z0-9]{3,24})\.(blob|queue|table|file|dfs)\.[a-z0-9.-]+(?::\d{1,5})?$/;

/** Host-style when the Host is <account>.<service>.<domain>; path-style otherwise (IP
 * addresses, localhost, the emulator's 127.0.0.1:10000/devstoreaccount1/...). */
function parseAddress(host: string | undefined, rawPath: string): Address {
  const match = host === undefined ? null : hostStyle.exec(host.toLowerCase());
  const segments = rawPath.slice(1).split('/');
  if (match !== null) {
    const account = parseAccountName(match[1] ?? '');
    return { service: (match[2] ?? 'blob') as Service, account, addressing: 'host', ...splitResource(segments) };
  }
  const accountRaw = decodeComponent(segments[0] ?? '', 'account');
  if (accountRaw === '') throw new FrontendError('InvalidUri', 'no account in the path');
  const account = parseAccountName(accountRaw);
  return { service: 'blob', account, addressing: 'path', ...splitResource(segments.slice(1)) };
}

/** Container is the first segment, the blob the rest (decoded as a whole: %2F is a '/' in a
 * blob name, as in Azure). An empty trailing part means "absent". */
function splitResource(segments: readonly string[]): { container: string | null; blob: string | null } {
  const [first, ...rest] = segments;
  if (first === undefined || first === '') {
    if (rest.some((segment) => segment !== '')) throw new FrontendError('InvalidUri', 'empty container segment');
    return { container: null, blob: null };
  }
  const container = decodeComponent(first, 'container');
  const blobRaw = rest.join('/');
  return { container, blob: blobRaw === '' ? null : decodeComponent(blobRaw, 'blob') };
}

// ---- helpers shared with routes.ts ----

export function maxResults(query: QueryMap): number {
  const raw = single(query, 'maxresults');
  if (raw === undefined) return listResultsMax;
  if (!/^-?\d{1,10}$/.test(raw)) throw invalidQuery('maxresults', raw, 'not an integer');
  const value = Number(raw);
  if (value <= 0) throw new FrontendError('OutOfRangeQueryParameterValue', 'maxresults must be positive', [['QueryParameterName', 'maxresults'], ['QueryParameterValue', raw]]);
  return Math.min(value, listResultsMax);
}

export function listText(query: QueryMap, name: 'prefix' | 'delimiter' | 'marker'): { [key: string]: string } {
  const raw = single(query, name);
  if (raw === undefined || raw === '') return {};
  const limit = name === 'marker' ? listMarkerBytesMax : 1024;
  if (raw.length > limit) throw invalidQuery(name, raw.slice(0, 64), 'too long');
  return { [name]: raw };
}

/** Content-Length of a body operation: required (no chunked uploads, as Azure), bounded. */
export function bodyLength(headers: HeaderMap, kind: 'blob' | 'block' | 'append' | 'xml'): number {
  const raw = headers.get('content-length');
  if (raw === undefined) throw new FrontendError('MissingContentLengthHeader', 'Content-Length required');
  if (!/^\d{1,16}$/.test(raw)) throw invalidHeader('Content-Length', raw, 'not a length');
  const length = Number(raw);
  const limits = { blob: putBlobBytesMax, block: putBlockBytesMax, append: appendBlockBytesMax, xml: xmlBodyBytesMax };
  if (!Number.isSafeInteger(length) || length > limits[kind]) throw new FrontendError('RequestBodyTooLarge', `body over the ${kind} limit`);
  return length;
}

/** Operations without a body must not carry one: a body Kura would not read is refused rather
 * than left on the connection. */
export function noBody(headers: HeaderMap): void {
  const raw = headers.get('content-length');
  if (headers.has('transfer-encoding') || (raw !== undefined && raw !== '0')) {
    throw invalidHeader('Content-Length', raw ?? 'chunked', 'this operation takes no body');
  }
}

export function requireHeader(headers: HeaderMap, name: string): string {
  const value = headers.get(name);
  if (value === undefined) throw missingHeader(name);
  return value;
}

export type { BlobName };
