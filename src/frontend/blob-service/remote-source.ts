// RemoteSourceFetcher: reads a copy source outside this Kura endpoint over HTTP(S) with undici, for
// Copy Blob, Copy Blob From URL and Put Block From URL (docs/copy-sources.md).
//
//   open(url) ── slot (≤ fetchesMax, else 503) ── URL check (policy) ── connect: resolve, check
//   every address (policy + this process's endpoints), connect to the first allowed one
//   ── GET (conditions, Range, Bearer) ── 2xx? head checked (size ≤ bytesMax) ── body: counted,
//   cut at the limit, idle and whole-fetch deadlines ── release the slot when the body ends or fails
//
// Invariants: no redirect is followed (a 3xx is a failure); nothing is sent to an endpoint the
// policy refuses (checked on the URL and on the address connected to); a body never yields more
// than the length it announced or bytesMax; every slot taken is released exactly once (the body's
// end, failure or return, or close() of an unread source).
// Fault model: the source is untrusted: it may refuse, redirect, stall before or during the
// body, lie about its length, send more than the limit, or vanish; each ends the fetch with a
// FrontendError (CannotVerifyCopySource family, Azure's statuses) and nothing of it is committed
// by the callers until the body completed.

import { lookup } from 'node:dns';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import type * as UndiciModule from 'undici';
import type { Agent, buildConnector, Dispatcher } from 'undici';

/** undici is loaded on the first copy from outside this endpoint: a server that never copies from
 * outside does not carry its ~6 MiB of heap, which every major garbage collection marks again. */
type Undici = typeof UndiciModule;
import {
  copySourceAsyncTimeoutMs, copySourceConnectTimeoutMs, copySourceFetchesMax, copySourceHeaderBytesMax, copySourceHeadersTimeoutMs,
  copySourceIdleTimeoutMs, copySourceSyncTimeoutMs, copyFromUrlBytesMax, putBlobBytesMax, putBlockBytesMax,
} from '../../constants.ts';
import { FrontendError, type ErrorDetails, type FrontendErrorCode } from '../errors.ts';
import type { BlobHttpHeaders } from '../model.ts';
import type { Conditions, CopySource } from '../operation.ts';
import { checkAddress, checkEndpoint, copySourceAllowDefault, parseCopySourcePolicy, type CopySourcePolicy } from './copy-source-policy.ts';

export interface CopySourceLimits {
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** Whole fetch of Copy Blob From URL and Put Block From URL. */
  readonly syncTimeoutMs: number;
  /** Whole fetch of an asynchronous Copy Blob. */
  readonly asyncTimeoutMs: number;
  readonly fetchesMax: number;
  /** Source bytes: Copy Blob From URL (Azure: 256 MiB), Put Block From URL (a block), Copy Blob. */
  readonly copyFromUrlBytesMax: number;
  readonly blockBytesMax: number;
  readonly copyBytesMax: number;
}

export const copySourceLimitsDefault: CopySourceLimits = {
  connectTimeoutMs: copySourceConnectTimeoutMs, headersTimeoutMs: copySourceHeadersTimeoutMs, idleTimeoutMs: copySourceIdleTimeoutMs,
  syncTimeoutMs: copySourceSyncTimeoutMs, asyncTimeoutMs: copySourceAsyncTimeoutMs, fetchesMax: copySourceFetchesMax,
  copyFromUrlBytesMax, blockBytesMax: putBlockBytesMax, copyBytesMax: putBlobBytesMax,
};

export interface CopySourceOptions {
  readonly policy: CopySourcePolicy;
  readonly limits?: Partial<CopySourceLimits>;
}

export const copySourceOptionsDefault: CopySourceOptions = { policy: parseCopySourcePolicy(copySourceAllowDefault) };

export interface OpenRequest {
  readonly source: CopySource;
  readonly conditions: Conditions;
  /** Inclusive; end null = to the end. */
  readonly range?: { readonly start: number; readonly end: number | null };
  readonly bytesMax: number;
  readonly mode: 'sync' | 'async';
  /** Aborts the fetch (client gone, Abort Copy, stop). */
  readonly signal?: AbortSignal;
}

/** An opened source: its head checked, its body not read yet. */
export interface OpenedSource {
  /** Bytes the body will yield (null: the source did not say; counted against bytesMax). */
  readonly length: number | null;
  readonly headers: BlobHttpHeaders;
  readonly metadata: readonly (readonly [string, string])[];
  /** The bytes, counted and bounded; release the slot at their end (read once). */
  readonly body: AsyncIterable<Uint8Array>;
  /** Abandons an unread or partly read body and releases the slot (idempotent). */
  close(): void;
}

export interface RemoteSourceStats {
  fetches: number;
  refused: number;
  bytes: number;
  active: number;
}

/** The Azure answer for a source that answered `status` (docs/copy-sources.md, "Source errors"). */
export function sourceStatusError(status: number, sourceCode: string | undefined): FrontendError {
  const code: FrontendErrorCode = status === 304 || status === 412 ? 'SourceConditionNotMet'
    : status === 400 ? 'CopySourceBadRequest' : status === 401 ? 'CopySourceUnauthorized' : status === 404 ? 'CopySourceNotFound'
      : status === 409 ? 'CopySourceConflict' : status === 416 ? 'CopySourceRangeNotSatisfiable'
        : status >= 500 ? 'CopySourceUnavailable' : status >= 400 && status !== 403 ? 'CopySourceBadRequest' : 'CannotVerifyCopySource';
  const details: [string, string][] = [['CopySourceStatusCode', String(status)]];
  if (sourceCode !== undefined) details.push(['CopySourceErrorCode', sourceCode.slice(0, 128)]);
  if (status >= 300 && status < 400 && status !== 304) details.push(['Reason', 'the copy source redirected; Kura follows no redirect']);
  return new FrontendError(code, `copy source answered ${status}${sourceCode === undefined ? '' : ` ${sourceCode}`}`, details);
}

export function cannotVerify(reason: string, extra: ErrorDetails = []): FrontendError {
  return new FrontendError('CannotVerifyCopySource', `copy source: ${reason}`, [['Reason', reason], ...extra]);
}

export function sourceTooLarge(bytes: number | 'more', bytesMax: number): FrontendError {
  const reason = `the copy source is ${bytes === 'more' ? 'larger than' : `${bytes} bytes, over`} the limit of ${bytesMax} bytes`;
  return new FrontendError('CopySourceTooLarge', reason, [['Reason', reason]]);
}

const sourceApiVersion = '2021-12-02';
const copiedHeaderNames = [
  ['content-type', 'contentType'], ['content-encoding', 'contentEncoding'], ['content-language', 'contentLanguage'],
  ['cache-control', 'cacheControl'], ['content-disposition', 'contentDisposition'],
] as const;

export class RemoteSourceFetcher {
  readonly stats: RemoteSourceStats = { fetches: 0, refused: 0, bytes: 0, active: 0 };
  readonly #policy: CopySourcePolicy;
  readonly #limits: CopySourceLimits;
  #client: Promise<{ readonly undici: Undici; readonly agent: Agent }> | null = null;
  /** Set once undici is loaded (its error classes name a failed fetch). */
  #undici: Undici | null = null;

  constructor(options: CopySourceOptions = copySourceOptionsDefault) {
    this.#policy = options.policy;
    this.#limits = { ...copySourceLimitsDefault, ...options.limits };
  }

  get limits(): CopySourceLimits {
    return this.#limits;
  }

  async close(): Promise<void> {
    const client = this.#client;
    if (client !== null) await (await client).agent.destroy();
  }

  /** undici and this fetcher's one Agent, loaded and built on first use. */
  #started(): Promise<{ readonly undici: Undici; readonly agent: Agent }> {
    this.#client ??= import('undici').then((undici) => {
      const base = undici.buildConnector({ timeout: this.#limits.connectTimeoutMs });
      const agent = new undici.Agent({
        connect: (connectOptions, callback) => { this.#connect(base, connectOptions, callback); },
        headersTimeout: this.#limits.headersTimeoutMs, bodyTimeout: this.#limits.idleTimeoutMs,
        maxHeaderSize: copySourceHeaderBytesMax, connections: 4, keepAliveTimeout: 4_000,
      });
      this.#undici = undici;
      return { undici, agent };
    });
    return this.#client;
  }

  /** GETs the source and checks its head; the caller reads (or closes) the body. */
  async open(input: OpenRequest): Promise<OpenedSource> {
    if (this.stats.active >= this.#limits.fetchesMax) throw new FrontendError('ServerBusy', `${this.#limits.fetchesMax} copy sources are being fetched by this front end`);
    const url = new URL(input.source.url);
    const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
    const verdict = checkEndpoint(this.#policy, url.hostname, port);
    if (!verdict.ok) {
      this.stats.refused += 1;
      throw cannotVerify(verdict.reason);
    }
    this.stats.active += 1;
    this.stats.fetches += 1;
    let released = false;
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), input.mode === 'sync' ? this.#limits.syncTimeoutMs : this.#limits.asyncTimeoutMs);
    const release = (): void => {
      if (released) return;
      released = true;
      clearTimeout(timer);
      this.stats.active -= 1;
    };
    const signal = input.signal === undefined ? deadline.signal : AbortSignal.any([deadline.signal, input.signal]);
    try {
      const { undici, agent } = await this.#started();
      const response = await undici.request(url, { dispatcher: agent, method: 'GET', headers: requestHeaders(input), signal });
      return this.#opened(response, input, { release, deadline: deadline.signal });
    } catch (error) {
      release();
      throw fetchError(error, deadline.signal.aborted, this.#undici);
    }
  }

  #opened(response: Dispatcher.ResponseData, input: OpenRequest, control: { readonly release: () => void; readonly deadline: AbortSignal }): OpenedSource {
    const { statusCode, headers } = response;
    const header = (name: string): string | undefined => {
      const value = headers[name];
      return Array.isArray(value) ? value[0] : value;
    };
    const wantsRange = input.range !== undefined;
    if (statusCode !== 200 && !(statusCode === 206 && wantsRange)) {
      discard(response.body);
      throw sourceStatusError(statusCode, header('x-ms-error-code'));
    }
    const announced = header('content-length');
    const announcedLength = announced !== undefined && /^\d{1,16}$/.test(announced) ? Number(announced) : null;
    // A 200 to a range request: the source ignored Range; Kura takes the range from the whole body.
    const skip = statusCode === 200 && input.range !== undefined ? input.range.start : 0;
    const take = statusCode === 200 && input.range?.end !== undefined && input.range.end !== null ? input.range.end - input.range.start + 1 : null;
    const available = announcedLength === null ? null : Math.max(0, announcedLength - skip);
    if (statusCode === 200 && input.range !== undefined && announcedLength !== null && input.range.start >= announcedLength) {
      discard(response.body);
      throw sourceStatusError(416, undefined);
    }
    const length = available === null ? take : take === null ? available : Math.min(available, take);
    if (length !== null && length > input.bytesMax) {
      discard(response.body);
      throw sourceTooLarge(length, input.bytesMax);
    }
    const httpHeaders: { -readonly [K in keyof BlobHttpHeaders]: BlobHttpHeaders[K] } = {};
    for (const [name, field] of copiedHeaderNames) {
      const value = header(name);
      if (value !== undefined) httpHeaders[field] = value;
    }
    const md5 = header('content-md5');
    if (md5 !== undefined && statusCode === 200 && skip === 0 && take === null && /^[A-Za-z0-9+/]{22}==$/.test(md5)) httpHeaders.contentMd5 = Buffer.from(md5, 'base64');
    const metadata = Object.entries(headers).flatMap(([name, value]) => (name.startsWith('x-ms-meta-') && typeof value === 'string' ? [[name.slice('x-ms-meta-'.length), value] as const] : []));
    const stats = this.stats;
    const undici = this.#undici;
    async function* counted(): AsyncGenerator<Uint8Array> {
      let skipped = 0;
      let yielded = 0;
      try {
        for await (const raw of response.body as AsyncIterable<Buffer>) {
          let chunk = raw;
          if (skipped < skip) {
            const drop = Math.min(skip - skipped, chunk.length);
            skipped += drop;
            chunk = chunk.subarray(drop);
          }
          if (length !== null && yielded + chunk.length > length) chunk = chunk.subarray(0, length - yielded);
          if (chunk.length === 0) {
            if (length !== null && yielded === length) break;
            continue;
          }
          yielded += chunk.length;
          if (yielded > input.bytesMax) throw sourceTooLarge('more', input.bytesMax);
          stats.bytes += chunk.length;
          yield chunk;
          if (length !== null && yielded === length) break;
        }
        if (length !== null && yielded !== length) throw cannotVerify(`the copy source ended after ${yielded} of ${length} bytes`);
      } catch (error) {
        throw fetchError(error, control.deadline.aborted, undici);
      } finally {
        discard(response.body);
        control.release();
      }
    }
    return {
      length, headers: httpHeaders, metadata, body: counted(),
      close: () => { discard(response.body); control.release(); },
    };
  }

  /** Resolves, checks every address against the policy and this process's endpoints, and connects
   * to the first allowed one (by IP, so the socket goes where the check looked). */
  #connect(base: buildConnector.connector, options: buildConnector.Options, callback: buildConnector.Callback): void {
    const host = options.hostname.replace(/^\[|\]$/g, '');
    const port = Number(options.port === '' ? (options.protocol === 'https:' ? 443 : 80) : options.port);
    const byName = checkEndpoint(this.#policy, host, port);
    if (!byName.ok) {
      callback(new PolicyRefusal(byName.reason), null);
      return;
    }
    lookup(host, { all: true }, (error, addresses) => {
      if (error !== null) {
        callback(error, null);
        return;
      }
      const refusals: string[] = [];
      const chosen = addresses.find(({ address }) => {
        const own = ownEndpoint(this.#policy, address, port);
        const verdict = own ?? (byName.byName ? { ok: true as const, byName: true } : checkAddress(this.#policy, address));
        if (!verdict.ok) refusals.push(verdict.reason);
        return verdict.ok;
      });
      if (chosen === undefined) {
        this.stats.refused += 1;
        callback(new PolicyRefusal(refusals[0] ?? `${host} has no address`), null);
        return;
      }
      const servername = isIP(host) === 0 ? host : undefined;
      base({ ...options, hostname: chosen.address, ...(servername === undefined ? {} : { servername }) }, callback);
    });
  }
}

/** Destroys an undici body; its 'error' (AbortError when unread) is expected and not reported. */
function discard(body: Dispatcher.ResponseData['body']): void {
  body.on('error', () => {});
  body.destroy();
}

class PolicyRefusal extends Error {
  override readonly name = 'PolicyRefusal';
}

/** This process's own endpoints (admin, control plane) by address: loopback and the machine's
 * interface addresses stand for a wildcard or loopback listener. */
function ownEndpoint(policy: CopySourcePolicy, address: string, port: number): { readonly ok: false; readonly reason: string } | null {
  for (const denied of policy.denied) {
    if (denied.port !== port) continue;
    const local = address.startsWith('127.') || address === '::1' || localAddresses().has(address);
    const wildcard = denied.host === '0.0.0.0' || denied.host === '::' || denied.host === 'localhost' || denied.host.startsWith('127.') || denied.host === '::1';
    if (denied.host === address || (wildcard && local)) return { ok: false, reason: `${address}:${port} is an endpoint of this Kura process (admin or control plane), never a copy source` };
  }
  return null;
}

function localAddresses(): Set<string> {
  return new Set(Object.values(networkInterfaces()).flatMap((entries) => (entries ?? []).map((entry) => entry.address)));
}

function requestHeaders(input: OpenRequest): Record<string, string> {
  const headers: Record<string, string> = { 'x-ms-version': sourceApiVersion, 'user-agent': 'Kura copy' };
  if (input.source.authorization !== undefined) headers.authorization = input.source.authorization;
  const { conditions, range } = input;
  const etags = (condition: NonNullable<Conditions['ifMatch']>): string => (condition.kind === 'any' ? '*' : condition.etags.map((etag) => (etag.startsWith('"') ? etag : `"${etag}"`)).join(', '));
  if (conditions.ifMatch !== undefined) headers['if-match'] = etags(conditions.ifMatch);
  if (conditions.ifNoneMatch !== undefined) headers['if-none-match'] = etags(conditions.ifNoneMatch);
  if (conditions.ifModifiedSince !== undefined) headers['if-modified-since'] = conditions.ifModifiedSince.toUTCString();
  if (conditions.ifUnmodifiedSince !== undefined) headers['if-unmodified-since'] = conditions.ifUnmodifiedSince.toUTCString();
  if (conditions.ifTags !== undefined) headers['x-ms-if-tags'] = conditions.ifTags;
  if (range !== undefined) headers.range = `bytes=${range.start}-${range.end ?? ''}`;
  return headers;
}

/** Any failure of the fetch as the Azure answer (a FrontendError passes through). */
function fetchError(error: unknown, deadlinePassed: boolean, undici: Undici | null): unknown {
  if (error instanceof FrontendError) return error;
  if (deadlinePassed) return cannotVerify('the copy source was not read within the time allowed');
  if (error instanceof PolicyRefusal) return cannotVerify(error.message);
  const undiciErrors = undici?.errors;
  if (undiciErrors === undefined) return cannotVerify('the copy source could not be read');
  if (error instanceof undiciErrors.HeadersTimeoutError) return cannotVerify('the copy source did not answer in time');
  if (error instanceof undiciErrors.BodyTimeoutError) return cannotVerify('the copy source stopped sending');
  if (error instanceof undiciErrors.ConnectTimeoutError) return cannotVerify('connecting to the copy source timed out');
  if (error instanceof undiciErrors.HeadersOverflowError) return cannotVerify('the copy source\'s response head is too large');
  if (error instanceof Error && error.name === 'AbortError') return cannotVerify('the copy was abandoned');
  const code = (error as { code?: unknown } | null)?.code;
  return cannotVerify(`the copy source could not be read${typeof code === 'string' ? ` (${code})` : ''}`);
}
