// SharedKeyLite for the Blob service: the string to sign as "Authorize with Shared Key"
// defines it for SharedKeyLite (the pre-2009 SharedKey string):
//
//   VERB \n Content-MD5 \n Content-Type \n Date \n CanonicalizedHeaders CanonicalizedResource
//
// where CanonicalizedResource is "/account/encoded-path" plus "?comp=value" when the request
// has a comp parameter, and no other query parameter.
// Invariants and fault model: as shared-key.ts.

import { canonicalizedHeaders } from './canonical.ts';
import type { SignableRequest } from './shared-key.ts';

export function sharedKeyLiteStringToSign(request: SignableRequest): string {
  const header = (name: string): string => request.headers.get(name) ?? '';
  const comp = request.query.get('comp')?.[0];
  const resource = `/${request.account}${request.rawPath}${comp === undefined || comp === '' ? '' : `?comp=${comp}`}`;
  return [request.method, header('content-md5'), header('content-type'), header('date')].join('\n') + '\n' +
    canonicalizedHeaders(request.headers) + resource;
}
