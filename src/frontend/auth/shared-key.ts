// SharedKey for the Blob service (version 2009-09-19 and later): the string to sign exactly as
// "Authorize with Shared Key" defines it, and its verification.
//
//   VERB \n Content-Encoding \n Content-Language \n Content-Length \n Content-MD5 \n
//   Content-Type \n Date \n If-Modified-Since \n If-Match \n If-None-Match \n
//   If-Unmodified-Since \n Range \n CanonicalizedHeaders CanonicalizedResource
//
// Content-Length is empty when it is 0 (version 2015-02-21 and later). CanonicalizedResource is
// "/account/encoded-path" then, per query parameter (names lower-cased, sorted by code unit),
// "\nname:v1,v2" with decoded values sorted. Parameters with empty values are signed two ways
// by Azure's SDKs: the JavaScript SDK leaves them out, the Python SDK (and so the Azure CLI,
// e.g. `include=` on List Containers) signs "\nname:". Verification accepts either form
// (emptyValues 'omit' first, then 'include'); Kura's parser gives an empty value the meaning of
// an absent one (or refuses it), so an unsigned empty parameter grants nothing.
// Invariants: verification compares in constant time and never returns or logs the computed
// signature. Fault model: all inputs hostile.

import type { QueryMap } from '../request-parser.ts';
import { canonicalizedHeaders } from './canonical.ts';

export interface SignableRequest {
  readonly method: string;
  readonly account: string;
  /** The encoded path as received; path-style requests include the account segment. */
  readonly rawPath: string;
  readonly query: QueryMap;
  readonly headers: ReadonlyMap<string, string>;
  /** x-ms-version, or null. */
  readonly version: string | null;
}

/** How parameters whose value is empty are canonicalised (see the header). */
export type EmptyQueryValues = 'omit' | 'include';

export function canonicalizedResource(request: SignableRequest, emptyValues: EmptyQueryValues = 'omit'): string {
  let resource = `/${request.account}${request.rawPath}`;
  const names = [...request.query.keys()].sort();
  for (const name of names) {
    const all = request.query.get(name) ?? [];
    const values = emptyValues === 'include' ? all : all.filter((value) => value !== '');
    if (values.length === 0) continue;
    resource += `\n${name}:${[...values].sort().join(',')}`;
  }
  return resource;
}

/** True when some query parameter has an empty value (the two canonical forms differ). */
export function hasEmptyQueryValue(request: SignableRequest): boolean {
  return [...request.query.values()].some((values) => values.includes(''));
}

/** The standard headers a SharedKey signature covers, in the string's order (after the verb). */
const signedStandardHeaders = [
  'content-encoding', 'content-language', 'content-length', 'content-md5', 'content-type', 'date', 'if-modified-since', 'if-match',
  'if-none-match', 'if-unmodified-since', 'range',
] as const;

export function sharedKeyStringToSign(request: SignableRequest, emptyValues: EmptyQueryValues = 'omit'): string {
  let text = request.method;
  for (const name of signedStandardHeaders) {
    let value = request.headers.get(name) ?? '';
    if (name === 'content-length' && value === '0' && (request.version === null || request.version >= '2015-02-21')) value = '';
    text += `\n${value}`;
  }
  return `${text}\n${canonicalizedHeaders(request.headers)}${canonicalizedResource(request, emptyValues)}`;
}
