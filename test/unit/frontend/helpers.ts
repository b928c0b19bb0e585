// Shared fixtures for the front-end tests: the well-known development account, a request-head
// builder, and an authoriser over fixed keys and lookups.

import { ManualClock } from '../../../src/util/clock.ts';
import { Authorizer, type PublicAccessLookup } from '../../../src/frontend/auth/authorizer.ts';
import type { StoredAccessPolicy } from '../../../src/frontend/auth/sas.ts';
import { parseRequest, type ParsedRequest, type RequestHead } from '../../../src/frontend/request-parser.ts';
import type { FrontendError } from '../../../src/frontend/errors.ts';

export const account = 'devstoreaccount1';
/** Azurite's published development key (public, like Azure's emulator key). */
export const accountKeyBase64 = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
export const accountKey = Buffer.from(accountKeyBase64, 'base64');
export const apiVersionLatest = '2026-04-06';

export function head(method: string, target: string, headers: Record<string, string> = {}, options: { clientAddress?: string; secure?: boolean } = {}): RequestHead {
  const rawHeaders = Object.entries({ host: '127.0.0.1:10000', ...headers }).flat();
  return { method, target, rawHeaders, clientAddress: options.clientAddress ?? '127.0.0.1', secure: options.secure ?? false };
}

export function parseOk(requestHead: RequestHead): ParsedRequest {
  const result = parseRequest(requestHead, { apiVersionLatest });
  if (!result.ok) throw new Error(`expected ${requestHead.method} ${requestHead.target} to parse: ${result.error.code} ${result.error.message}`);
  return result.request;
}

export function parseError(requestHead: RequestHead): FrontendError {
  const result = parseRequest(requestHead, { apiVersionLatest });
  if (result.ok) throw new Error(`expected ${requestHead.method} ${requestHead.target} to fail, got ${result.request.operation.kind}`);
  return result.error;
}

export interface AuthFixture {
  readonly clock: ManualClock;
  readonly authorizer: Authorizer;
  readonly policies: Map<string, StoredAccessPolicy>;
  publicAccess: Awaited<ReturnType<PublicAccessLookup>>;
}

export function authFixture(nowMs: number): AuthFixture {
  const clock = new ManualClock(nowMs);
  const policies = new Map<string, StoredAccessPolicy>();
  const fixture: AuthFixture = {
    clock, policies, publicAccess: null,
    authorizer: new Authorizer({
      clock,
      accountKeys: (name) => (name === account ? [Buffer.alloc(64, 7), accountKey] : null),
      storedPolicy: (_account, container, id) => Promise.resolve(policies.get(`${container}/${id}`) ?? null),
      publicAccess: () => Promise.resolve(fixture.publicAccess),
    }),
  };
  return fixture;
}
