// Compound request fields read from headers: Range, conditional headers, lease headers, blob
// HTTP headers, tags, copy sources, lengths. Each function reads a HeaderMap (lower-cased
// names, at most one value per name: request-parser.ts refuses duplicates first) and returns a
// typed value or throws the FrontendError Azure returns.
//
// Invariants: no function here reads a header more than a few kilobytes long (the server's
// header limit holds), none loops over attacker-chosen counts without a bound.
// Fault model: every value is hostile.

import {
  blobTagKeyLengthMax, blobTagValueLengthMax, blobTagsMax,
} from '../constants.ts';
import { FrontendError, invalidHeader, missingHeader } from './errors.ts';
import {
  parseBooleanHeader, parseCrc64, parseETag, parseHttpDateHeader, parseIntegerHeader, parseLeaseId, parseMd5,
} from './fields.ts';
import type { BlobHttpHeaders, BlobTag, ETag } from './model.ts';
import type { ByteRange, Conditions, CopySource, ETagCondition, LeaseAction } from './operation.ts';

export type HeaderMap = ReadonlyMap<string, string>;
/** A request's headers as received: name, value, name, value, … (Node's IncomingMessage.rawHeaders), names in their original case. */
export type RawHeaders = readonly string[];

const rangePattern = /^bytes=(\d{1,16})-(\d{0,16})$/;

/** One byte range "bytes=N-M" or "bytes=N-" (Azure serves a single range; suffix and multi
 * ranges are refused). A range whose end precedes its start can never be served: 416. */
export function parseRangeValue(header: string, raw: string): ByteRange {
  const match = rangePattern.exec(raw.trim());
  if (match === null) throw invalidHeader(header, raw, 'not a single byte range');
  const start = Number(match[1]);
  const end = match[2] === '' || match[2] === undefined ? null : Number(match[2]);
  if (!Number.isSafeInteger(start) || (end !== null && !Number.isSafeInteger(end))) {
    throw new FrontendError('InvalidRange', `${header} beyond any blob size`, [['HeaderName', header], ['HeaderValue', raw]]);
  }
  if (end !== null && end < start) {
    throw new FrontendError('InvalidRange', `${header} ends before it starts`, [['HeaderName', header], ['HeaderValue', raw]]);
  }
  return { start, end };
}

/** x-ms-range wins over Range when both are given (Azure). */
export function parseRange(headers: HeaderMap): ByteRange | undefined {
  const msRange = headers.get('x-ms-range');
  if (msRange !== undefined) return parseRangeValue('x-ms-range', msRange);
  const range = headers.get('range');
  return range === undefined ? undefined : parseRangeValue('Range', range);
}

const etagListMax = 64;

function parseETagCondition(header: string, raw: string): ETagCondition {
  if (raw.trim() === '*') return { kind: 'any' };
  const parts = raw.split(',');
  if (parts.length > etagListMax) throw invalidHeader(header, raw, 'too many entity tags');
  const etags: ETag[] = parts.map((part) => parseETag(header, part));
  return { kind: 'list', etags };
}

/** The conditional headers' names, built once (not a template string, hashed again, per request). */
const conditionHeaderNames = {
  '': { ifMatch: 'if-match', ifNoneMatch: 'if-none-match', ifModifiedSince: 'if-modified-since', ifUnmodifiedSince: 'if-unmodified-since', ifTags: 'x-ms-if-tags' },
  'x-ms-source-': {
    ifMatch: 'x-ms-source-if-match', ifNoneMatch: 'x-ms-source-if-none-match', ifModifiedSince: 'x-ms-source-if-modified-since',
    ifUnmodifiedSince: 'x-ms-source-if-unmodified-since', ifTags: 'x-ms-source-if-tags',
  },
} as const;
/** A request without conditions (most): one frozen answer. */
const noConditions: Conditions = Object.freeze({});

/** The HTTP conditional headers; `prefix` selects the source conditions of copy operations
 * (x-ms-source-if-match …). */
export function parseConditions(headers: HeaderMap, prefix: '' | 'x-ms-source-' = ''): Conditions {
  const names = conditionHeaderNames[prefix];
  const ifMatch = headers.get(names.ifMatch);
  const ifNoneMatch = headers.get(names.ifNoneMatch);
  const ifModifiedSince = headers.get(names.ifModifiedSince);
  const ifUnmodifiedSince = headers.get(names.ifUnmodifiedSince);
  const ifTags = headers.get(names.ifTags);
  if (ifMatch === undefined && ifNoneMatch === undefined && ifModifiedSince === undefined && ifUnmodifiedSince === undefined && ifTags === undefined) return noConditions;
  return {
    ...(ifMatch === undefined ? {} : { ifMatch: parseETagCondition(`${prefix}If-Match`, ifMatch) }),
    ...(ifNoneMatch === undefined ? {} : { ifNoneMatch: parseETagCondition(`${prefix}If-None-Match`, ifNoneMatch) }),
    ...(ifModifiedSince === undefined ? {} : { ifModifiedSince: parseHttpDateHeader(`${prefix}If-Modified-Since`, ifModifiedSince) }),
    ...(ifUnmodifiedSince === undefined ? {} : { ifUnmodifiedSince: parseHttpDateHeader(`${prefix}If-Unmodified-Since`, ifUnmodifiedSince) }),
    ...(ifTags === undefined ? {} : { ifTags: parseTagPredicate(ifTags) }),
  };
}

const tagPredicateCharsMax = 4096;

/** x-ms-if-tags / where: a SQL-like predicate evaluated by the backend; bounded here. */
export function parseTagPredicate(raw: string): string {
  if (raw.length === 0 || raw.length > tagPredicateCharsMax) throw invalidHeader('x-ms-if-tags', raw, 'predicate length');
  return raw;
}

export function optionalLeaseId(headers: HeaderMap, name = 'x-ms-lease-id'): { leaseId?: ReturnType<typeof parseLeaseId> } {
  const raw = headers.get(name);
  return raw === undefined ? {} : { leaseId: parseLeaseId(name, raw) };
}

function requiredLeaseId(headers: HeaderMap, name: string): ReturnType<typeof parseLeaseId> {
  const raw = headers.get(name);
  if (raw === undefined) throw missingHeader(name);
  return parseLeaseId(name, raw);
}

/** Lease Container / Lease Blob: x-ms-lease-action and the headers each action requires. */
export function parseLeaseAction(headers: HeaderMap): LeaseAction {
  const action = headers.get('x-ms-lease-action');
  if (action === undefined) throw missingHeader('x-ms-lease-action');
  switch (action.toLowerCase()) {
    case 'acquire': {
      const durationRaw = headers.get('x-ms-lease-duration');
      if (durationRaw === undefined) throw missingHeader('x-ms-lease-duration');
      const durationSeconds = durationRaw.trim() === '-1' ? -1 : parseIntegerHeader('x-ms-lease-duration', durationRaw, 15, 60);
      const proposed = headers.get('x-ms-proposed-lease-id');
      return { action: 'acquire', durationSeconds, ...(proposed === undefined ? {} : { proposedLeaseId: parseLeaseId('x-ms-proposed-lease-id', proposed) }) };
    }
    case 'renew': return { action: 'renew', leaseId: requiredLeaseId(headers, 'x-ms-lease-id') };
    case 'release': return { action: 'release', leaseId: requiredLeaseId(headers, 'x-ms-lease-id') };
    case 'change': return { action: 'change', leaseId: requiredLeaseId(headers, 'x-ms-lease-id'), proposedLeaseId: requiredLeaseId(headers, 'x-ms-proposed-lease-id') };
    case 'break': {
      const period = headers.get('x-ms-lease-break-period');
      return { action: 'break', ...(period === undefined ? {} : { breakPeriodSeconds: parseIntegerHeader('x-ms-lease-break-period', period, 0, 60) }) };
    }
    default: throw invalidHeader('x-ms-lease-action', action, 'not a lease action');
  }
}

const headerTextMax = 1024;

function boundedText(headers: HeaderMap, name: string): string | undefined {
  const value = headers.get(name);
  if (value === undefined) return undefined;
  if (value.length > headerTextMax) throw invalidHeader(name, value.slice(0, 64), 'too long');
  return value;
}

/** Stored HTTP headers of a blob: x-ms-blob-* names, or (Put Blob, `standardFallback`) the
 * request's own Content-Type etc. when the x-ms-blob-* one is absent, as Azure does. */
export function parseBlobHttpHeaders(headers: HeaderMap, standardFallback: boolean): BlobHttpHeaders {
  const pick = (msName: string, standardName: string): string | undefined =>
    boundedText(headers, msName) ?? (standardFallback ? boundedText(headers, standardName) : undefined);
  const contentType = pick('x-ms-blob-content-type', 'content-type');
  const contentEncoding = pick('x-ms-blob-content-encoding', 'content-encoding');
  const contentLanguage = pick('x-ms-blob-content-language', 'content-language');
  const cacheControl = pick('x-ms-blob-cache-control', 'cache-control');
  const contentDisposition = pick('x-ms-blob-content-disposition', 'content-disposition');
  const md5 = headers.get('x-ms-blob-content-md5');
  return {
    ...(contentType === undefined ? {} : { contentType }),
    ...(contentEncoding === undefined ? {} : { contentEncoding }),
    ...(contentLanguage === undefined ? {} : { contentLanguage }),
    ...(cacheControl === undefined ? {} : { cacheControl }),
    ...(contentDisposition === undefined ? {} : { contentDisposition }),
    ...(md5 === undefined ? {} : { contentMd5: parseMd5('x-ms-blob-content-md5', md5) }),
  };
}

export function optionalMd5(headers: HeaderMap, name: string): { contentMd5?: Uint8Array } {
  const raw = headers.get(name);
  return raw === undefined ? {} : { contentMd5: parseMd5(name, raw) };
}

/** A data body's transactional hashes: Content-MD5 or x-ms-content-crc64 (Azure: not both, 400). */
export function bodyHashes(headers: HeaderMap): { contentMd5?: Uint8Array; contentCrc64?: Uint8Array } {
  const md5 = optionalMd5(headers, 'content-md5');
  const raw = headers.get('x-ms-content-crc64');
  if (raw === undefined) return md5;
  if (md5.contentMd5 !== undefined) throw new FrontendError('BothCrc64AndMd5HeaderPresent', 'Content-MD5 and x-ms-content-crc64 in one request');
  return { contentCrc64: parseCrc64('x-ms-content-crc64', raw) };
}

const tagCharPattern = /^[A-Za-z0-9 +\-./:=_]*$/;

/** One tag, checked against Azure's rules: key 1-128 and value 0-256 characters of letters,
 * digits, space and + - . / : = _. */
export function checkTag(key: string, value: string): BlobTag {
  if (key.length < 1 || key.length > blobTagKeyLengthMax || value.length > blobTagValueLengthMax) {
    throw new FrontendError('InvalidTag', 'tag key or value length');
  }
  if (!tagCharPattern.test(key) || !tagCharPattern.test(value)) throw new FrontendError('InvalidTag', 'tag has characters Azure does not allow');
  return { key, value };
}

export function checkTagSet(tags: readonly BlobTag[]): readonly BlobTag[] {
  if (tags.length > blobTagsMax) throw new FrontendError('InvalidTag', 'more than 10 tags');
  const keys = new Set(tags.map((tag) => tag.key));
  if (keys.size !== tags.length) throw new FrontendError('InvalidTag', 'duplicate tag key');
  return tags;
}

/** x-ms-tags: a URL-encoded query string of tags ("k1=v1&k2=v2"). */
export function parseTagsHeader(headers: HeaderMap): readonly BlobTag[] {
  const raw = headers.get('x-ms-tags');
  if (raw === undefined || raw === '') return [];
  const pairs = raw.split('&');
  if (pairs.length > blobTagsMax) throw new FrontendError('InvalidTag', 'more than 10 tags');
  const tags = pairs.map((pair) => {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw invalidHeader('x-ms-tags', raw, 'not key=value pairs');
    return checkTag(decodeOrThrow(pair.slice(0, eq), 'x-ms-tags'), decodeOrThrow(pair.slice(eq + 1), 'x-ms-tags'));
  });
  return checkTagSet(tags);
}

function decodeOrThrow(text: string, header: string): string {
  try {
    return decodeURIComponent(text.replaceAll('+', ' '));
  } catch {
    throw invalidHeader(header, text, 'bad percent-encoding');
  }
}

const copySourceCharsMax = 8192;

/** x-ms-copy-source: an absolute http(s) URL. Its SAS is forwarded, never logged. */
export function parseCopySource(headers: HeaderMap): CopySource {
  const raw = headers.get('x-ms-copy-source');
  if (raw === undefined) throw missingHeader('x-ms-copy-source');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalidHeader('x-ms-copy-source', raw.slice(0, 256), 'not an absolute URL');
  }
  if (raw.length > copySourceCharsMax || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw invalidHeader('x-ms-copy-source', raw.slice(0, 256), 'not an http(s) URL');
  }
  const authorization = headers.get('x-ms-copy-source-authorization');
  // Azure accepts only an OAuth bearer token here; it is forwarded as is, never logged.
  if (authorization !== undefined && !/^Bearer [\x21-\x7e]{1,8192}$/.test(authorization)) {
    throw invalidHeader('x-ms-copy-source-authorization', 'Bearer …', 'only the Bearer scheme is supported');
  }
  return { url: url.href, local: sameAuthority(url, headers.get('host')), ...(authorization === undefined ? {} : { authorization }) };
}

/** Whether a URL names the endpoint the request reached (its Host header; the front end speaks
 * plain HTTP, so an https URL is never this endpoint). URL.host already dropped a default port. */
function sameAuthority(url: URL, host: string | undefined): boolean {
  if (host === undefined || url.protocol !== 'http:') return false;
  return url.host.toLowerCase() === host.trim().toLowerCase().replace(/:80$/, '');
}

export function optionalInteger(headers: HeaderMap, name: string, min: number, max: number): number | undefined {
  const raw = headers.get(name);
  return raw === undefined ? undefined : parseIntegerHeader(name, raw, min, max);
}

export function optionalBoolean(headers: HeaderMap, name: string): boolean {
  const raw = headers.get(name);
  return raw === undefined ? false : parseBooleanHeader(name, raw);
}
