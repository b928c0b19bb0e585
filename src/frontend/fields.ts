// Field validators: each turns one untrusted string (a header, a query parameter, a path part)
// into a typed value or throws the FrontendError Azure returns for it. request-parser.ts and
// xml.ts build Operations only out of these, so a typed field is a validated field.
//
// Invariants: validators are total (never throw anything but FrontendError), never allocate
// more than a small multiple of their input, and check a length before any other work.
// Fault model: input is hostile: any bytes Node's HTTP parser lets through (latin1 strings),
// any length up to the header limit.

import {
  accountNameLengthMax, blobNameLengthMax, blobNameSegmentsMax, blockIdBytesMax,
  containerNameLengthMax, metadataBytesMax,
} from '../constants.ts';
import { FrontendError, invalidHeader, invalidQuery } from './errors.ts';
import { LruCache } from '../util/lru-cache.ts';
import type { RawHeaders } from './header-fields.ts';
import type {
  AccessTier, AccountName, BlobName, BlockId, ContainerName, ETag, LeaseId, Metadata, SnapshotId,
} from './model.ts';

const nameLengthMessage = 'The specified resource name length is not within the permissible limits.';

/** Azure: 3-24 lower-case letters and digits. */
export function parseAccountName(raw: string): AccountName {
  if (raw.length < 3 || raw.length > accountNameLengthMax) {
    throw new FrontendError('OutOfRangeInput', nameLengthMessage);
  }
  if (!/^[a-z0-9]+$/.test(raw)) throw new FrontendError('InvalidResourceName', 'account name has invalid characters');
  return raw as AccountName;
}

/** Azure: 3-63 characters of lower-case letters, digits and single hyphens between them, or one
 * of the reserved names $root, $logs, $web. */
export function parseContainerName(raw: string): ContainerName {
  if (raw === '$root' || raw === '$logs' || raw === '$web') return raw as ContainerName;
  if (raw.length < 3 || raw.length > containerNameLengthMax) {
    throw new FrontendError('OutOfRangeInput', nameLengthMessage);
  }
  if (!/^[a-z0-9](?:-?[a-z0-9])*$/.test(raw)) {
    throw new FrontendError('InvalidResourceName', 'container name has invalid characters');
  }
  return raw as ContainerName;
}

/** Azure: 1-1024 characters after URL decoding, at most 254 segments. Kura also refuses control
 * characters and "." / ".." segments: clients normalise those away, so a raw one is a traversal
 * attempt or a name another tool could not address. */
export function parseBlobName(decoded: string): BlobName {
  if (decoded.length < 1 || decoded.length > blobNameLengthMax) {
    throw new FrontendError('OutOfRangeInput', nameLengthMessage);
  }
  if (/[\u0000-\u001f\u007f\ufffe\uffff]/.test(decoded)) {
    throw new FrontendError('InvalidResourceName', 'blob name has control characters');
  }
  const segments = decoded.split('/');
  if (segments.length > blobNameSegmentsMax) throw new FrontendError('InvalidResourceName', 'blob name has too many segments');
  if (segments.some((segment) => segment === '.' || segment === '..')) {
    throw new FrontendError('InvalidUri', 'blob name has a dot segment');
  }
  if (!isWellFormedUtf16(decoded)) throw new FrontendError('InvalidResourceName', 'blob name is not valid Unicode');
  return decoded as BlobName;
}

function isWellFormedUtf16(text: string): boolean {
  return text.isWellFormed();
}

const metadataPrefix = /^x-ms-meta-/i;

/** Metadata names are C# identifiers (Azure): a letter or underscore, then letters, digits,
 * underscores; case is kept but names are unique ignoring case. Values are header values
 * (printable ASCII); names and values together are at most 8 KiB. Takes the raw headers (name,
 * value, …), since Node lower-cases the names in its header object. */
export function parseMetadata(rawHeaders: RawHeaders): Metadata {
  const metadata = new Map<string, string>();
  let seen: Set<string> | null = null;
  let bytes = 0;
  for (let index = 0; index + 1 < rawHeaders.length; index += 2) {
    const header = rawHeaders[index] ?? '';
    // Tested in place: no lower-cased copy of every other header's name per request.
    if (!metadataPrefix.test(header)) continue;
    const value = rawHeaders[index + 1] ?? '';
    seen ??= new Set<string>();
    const name = header.slice('x-ms-meta-'.length);
    if (name.length === 0) throw new FrontendError('EmptyMetadataKey', 'empty metadata name');
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) || seen.has(name.toLowerCase())) {
      throw new FrontendError('InvalidMetadata', 'metadata name is not a unique C# identifier', [['MetadataName', name]]);
    }
    if (/[^\u0020-\u007e\t]/.test(value)) {
      throw new FrontendError('InvalidMetadata', 'metadata value is not printable ASCII', [['MetadataName', name]]);
    }
    bytes += name.length + value.length;
    if (bytes > metadataBytesMax) throw new FrontendError('MetadataTooLarge', 'metadata over 8 KiB');
    seen.add(name.toLowerCase());
    metadata.set(name, value);
  }
  return metadata;
}

const guidPattern = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** Lease ids are GUIDs (Azure refuses anything else with InvalidHeaderValue). */
export function parseLeaseId(header: string, raw: string): LeaseId {
  if (!guidPattern.test(raw)) throw invalidHeader(header, raw, 'not a GUID');
  return raw.toLowerCase() as LeaseId;
}

const base64Pattern = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function isCanonicalBase64(text: string): boolean {
  return base64Pattern.test(text);
}

/** A block id is Base64 text of 1..64 bytes (Azure). Returned as sent, since block ids are
 * compared as strings by Azure and echoed back in Get Block List. */
export function parseBlockId(raw: string, onError: (reason: string) => FrontendError): BlockId {
  if (raw.length === 0 || raw.length > 4 * Math.ceil(blockIdBytesMax / 3)) throw onError('block id length');
  if (!isCanonicalBase64(raw)) throw onError('block id is not Base64');
  return raw as BlockId;
}

export function parseBlockIdQuery(raw: string): BlockId {
  return parseBlockId(raw, (reason) => invalidQuery('blockid', raw, reason));
}

/** Content-MD5 / x-ms-blob-content-md5: Base64 of exactly 16 bytes. */
export function parseMd5(header: string, raw: string): Uint8Array {
  if (raw.length !== 24 || !isCanonicalBase64(raw)) {
    throw new FrontendError('InvalidMd5', `${header} is not a Base64 MD5`, [['HeaderName', header], ['HeaderValue', raw]]);
  }
  return Buffer.from(raw, 'base64');
}

/** x-ms-content-crc64: the Base64 of 8 bytes (CRC-64/NVME, little-endian). */
export function parseCrc64(header: string, raw: string): Uint8Array {
  if (raw.length !== 12 || !isCanonicalBase64(raw)) throw invalidHeader(header, raw.slice(0, 64), 'not the Base64 of 8 bytes');
  return Buffer.from(raw, 'base64');
}

/** An entity tag: quoted (RFC 9110) or bare as Azure also accepts; printable, no commas. */
export function parseETag(header: string, raw: string): ETag {
  const text = raw.trim();
  if (text.length === 0 || text.length > 256 || !/^(?:W\/)?(?:"[\x21\x23-\x7e]*"|[\x21\x23-\x2b\x2d-\x7e]+)$/.test(text)) {
    throw invalidHeader(header, raw, 'not an entity tag');
  }
  return text as ETag;
}

const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const imfFixdate = /^(Sun|Mon|Tue|Wed|Thu|Fri|Sat), (\d{2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;

/** RFC 1123 dates as Azure requires them ("Sun, 06 Nov 1994 08:49:37 GMT"); null if malformed.
 * Strict: Date.parse would accept local-time and two-digit-year forms a signature never covers. */
/** An HTTP date (RFC 1123, as Date.toUTCString writes it) of `ms`, whole seconds: the strings of
 * the last few hundred seconds asked for are kept (a response's Date is the same string for every
 * response within a second, and a blob's Last-Modified the same for every read of it). */
const httpDatesMax = 512;
const httpDates = new LruCache<number, string>(httpDatesMax);

/** The last second asked for and its string: the Date of every response within a second and the
 * Last-Modified of every write in it, without the cache's reordering per call. */
let lastHttpSecond = Number.NaN;
let lastHttpSecondText = '';

export function httpDate(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second === lastHttpSecond) return lastHttpSecondText;
  const cached = httpDates.get(second) ?? null;
  lastHttpSecond = second;
  lastHttpSecondText = cached ?? new Date(second * 1000).toUTCString();
  if (cached === null) httpDates.set(second, lastHttpSecondText);
  return lastHttpSecondText;
}

/** The last date parsed and its time: a client's x-ms-date repeats for every request it sends
 * within a second, so most requests skip the pattern and the calendar checks. */
let lastHttpDate: { readonly raw: string; readonly ms: number } | null = null;

export function parseHttpDate(raw: string): Date | null {
  if (lastHttpDate !== null && raw === lastHttpDate.raw) return new Date(lastHttpDate.ms);
  const date = parseHttpDateUncached(raw);
  if (date !== null) lastHttpDate = { raw, ms: date.getTime() };
  return date;
}

function parseHttpDateUncached(raw: string): Date | null {
  const match = imfFixdate.exec(raw);
  if (match === null) return null;
  const [, day, dd, mon, yyyy, hh, mi, ss] = match as unknown as [string, string, string, string, string, string, string, string];
  const ms = Date.UTC(Number(yyyy), months.indexOf(mon), Number(dd), Number(hh), Number(mi), Number(ss));
  const date = new Date(ms);
  if (date.getUTCDate() !== Number(dd) || date.getUTCHours() !== Number(hh) || date.getUTCMinutes() !== Number(mi) || date.getUTCSeconds() !== Number(ss)) return null;
  if (days[date.getUTCDay()] !== day) return null;
  return date;
}

export function parseHttpDateHeader(header: string, raw: string): Date {
  const date = parseHttpDate(raw);
  if (date === null) throw invalidHeader(header, raw, 'not an RFC 1123 date');
  return date;
}

/** Decimal digits only (no sign, exponent or whitespace), as a safe integer in [min, max]. */
export function parseBoundedInteger(raw: string, min: number, max: number): number | null {
  if (!/^\d{1,16}$/.test(raw)) return null;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min || value > max) return null;
  return value;
}

export function parseIntegerHeader(header: string, raw: string, min: number, max: number): number {
  if (!/^\d{1,16}$/.test(raw)) throw invalidHeader(header, raw, 'not a decimal integer');
  const value = parseBoundedInteger(raw, min, max);
  if (value === null) throw new FrontendError('OutOfRangeInput', `${header} out of range`, [['HeaderName', header], ['HeaderValue', raw]]);
  return value;
}

export function parseBooleanHeader(header: string, raw: string): boolean {
  const lower = raw.toLowerCase();
  if (lower === 'true') return true;
  if (lower === 'false') return false;
  throw invalidHeader(header, raw, 'not a boolean');
}

export function parseAccessTier(header: string, raw: string): AccessTier {
  const tiers: readonly AccessTier[] = ['Hot', 'Cool', 'Cold', 'Archive'];
  const tier = tiers.find((candidate) => candidate.toLowerCase() === raw.toLowerCase());
  if (tier === undefined) {
    throw new FrontendError('InvalidBlobTier', `${header} is not a tier`, [['HeaderName', header], ['HeaderValue', raw]]);
  }
  return tier;
}

/** Snapshot and version ids: ISO 8601 UTC with up to 7 fractional digits, as Azure mints them. */
export function parseSnapshotId(name: string, raw: string): SnapshotId {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,7})?Z$/.test(raw) || Number.isNaN(Date.parse(raw))) {
    throw invalidQuery(name, raw, 'not a snapshot time');
  }
  return raw as SnapshotId;
}

/** x-ms-version: an Azure service version (YYYY-MM-DD) Kura knows, i.e. in [first, latest]. */
/** The last version accepted and the ceiling it was accepted under: a client sends one version
 * with every request, so most requests skip the pattern and the date parse. */
let lastApiVersion: { readonly raw: string; readonly latest: string } | null = null;

export function parseApiVersion(raw: string, latest: string): string {
  if (lastApiVersion !== null && lastApiVersion.raw === raw && lastApiVersion.latest === latest) return raw;
  const date = /^(\d{4})-(\d{2})-(\d{2})$/.test(raw) ? Date.parse(`${raw}T00:00:00Z`) : Number.NaN;
  if (Number.isNaN(date) || raw < '2009-09-19' || raw > latest) {
    throw invalidHeader('x-ms-version', raw, 'unsupported service version');
  }
  lastApiVersion = { raw, latest };
  return raw;
}
