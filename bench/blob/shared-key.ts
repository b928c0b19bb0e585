// SharedKey request signing for the raw undici client (Azure Storage, version 2009-09-19 and
// later): HMAC-SHA256 over the verb, twelve standard headers, the canonicalised x-ms-* headers
// and the canonicalised resource, keyed by the account key. The product's own verifier lives
// in the front end (src/frontend/auth); this small, separate signer exists only so the benchmark
// can talk to Azurite without the SDK, and is checked against the official SDK's signature in
// the unit tests. Header names are sorted by code point, which equals Azure's collation for the
// lower-case x-ms-* names the benchmark sends.
import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';

/** The standard headers in the order StringToSign lists them. */
const standardHeaders = [
  'content-encoding', 'content-language', 'content-length', 'content-md5', 'content-type', 'date',
  'if-modified-since', 'if-match', 'if-none-match', 'if-unmodified-since', 'range',
] as const;

export interface SignableRequest {
  readonly method: string;
  /** Path and query exactly as sent, e.g. `/devstoreaccount1/c/b?comp=block&blockid=AA%3D%3D`. */
  readonly pathAndQuery: string;
  /** Header names in lower case. */
  readonly headers: Readonly<Record<string, string>>;
}

export function stringToSign(request: SignableRequest, account: string): string {
  const lines = [request.method.toUpperCase()];
  for (const name of standardHeaders) {
    const value = request.headers[name] ?? '';
    // Content-Length is empty when zero (2015-02-21 and later).
    lines.push(name === 'content-length' && value === '0' ? '' : value);
  }
  return `${lines.join('\n')}\n${canonicalizedHeaders(request.headers)}${canonicalizedResource(request.pathAndQuery, account)}`;
}

function canonicalizedHeaders(headers: Readonly<Record<string, string>>): string {
  return Object.keys(headers)
    .filter((name) => name.startsWith('x-ms-'))
    .sort()
    .map((name) => `${name}:${(headers[name] ?? '').trim()}\n`)
    .join('');
}

function canonicalizedResource(pathAndQuery: string, account: string): string {
  const queryStart = pathAndQuery.indexOf('?');
  const path = queryStart === -1 ? pathAndQuery : pathAndQuery.slice(0, queryStart);
  let resource = `/${account}${path === '' ? '/' : path}`;
  if (queryStart === -1) return resource;
  const parameters = new Map<string, string[]>();
  for (const [name, value] of new URLSearchParams(pathAndQuery.slice(queryStart + 1))) {
    const key = name.toLowerCase();
    parameters.set(key, [...(parameters.get(key) ?? []), value]);
  }
  for (const name of [...parameters.keys()].sort()) {
    resource += `\n${name}:${(parameters.get(name) ?? []).sort().join(',')}`;
  }
  return resource;
}

/** One key object per account key: building it from raw bytes on every request cost the client
 * ~30 µs a request, which lowered the raw client's ceiling for every peer alike. */
const keyObjects = new Map<string, KeyObject>();
const keyObjectsMax = 16;

function keyObjectOf(accountKeyBase64: string): KeyObject {
  let key = keyObjects.get(accountKeyBase64);
  if (key === undefined) {
    if (keyObjects.size >= keyObjectsMax) keyObjects.clear();
    key = createSecretKey(Buffer.from(accountKeyBase64, 'base64'));
    keyObjects.set(accountKeyBase64, key);
  }
  return key;
}

/** The Authorization header value: `SharedKey <account>:<base64 signature>`. */
export function sharedKeyAuthorization(request: SignableRequest, account: string, accountKeyBase64: string): string {
  const signature = createHmac('sha256', keyObjectOf(accountKeyBase64)).update(stringToSign(request, account), 'utf8').digest('base64');
  return `SharedKey ${account}:${signature}`;
}
