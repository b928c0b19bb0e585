// The authoriser: decides whether a parsed request may run, by SharedKey, SharedKeyLite,
// account or service SAS, or anonymous public read access, and says which.
//
// Invariants: every request is authorised before any backend call except CORS preflight (which
// changes nothing); a request carrying both an Authorization header and a SAS is refused (what
// was signed would be ambiguous); SharedKey requests must be dated within requestClockSkewMaxMs
// of the injected Clock; signatures are compared in constant time and no valid signature, key
// or computed signature is ever put in an error, a log line or a return value.
// Fault model: forged, replayed (stale date), expired, tampered or oversized credentials;
// unknown accounts; anonymous access to private containers (answered 404, as Azure does, so
// their existence is not disclosed).

import { requestClockSkewMaxMs } from '../../constants.ts';
import type { Clock } from '../../util/clock.ts';
import { FrontendError } from '../errors.ts';
import { parseHttpDate } from '../fields.ts';
import type { PublicAccess } from '../model.ts';
import { isReadOperation, type Operation } from '../operation.ts';
import type { ParsedRequest } from '../request-parser.ts';
import { signatureMatches } from './canonical.ts';
import { isSasRequest, sasField, verifyAccountSas, verifyServiceSas, type SasGrant, type StoredPolicyLookup } from './sas.ts';
import { sharedKeyLiteStringToSign } from './shared-key-lite.ts';
import { hasEmptyQueryValue, sharedKeyStringToSign, type SignableRequest } from './shared-key.ts';

export type Principal =
  | { readonly kind: 'sharedKey' }
  | { readonly kind: 'sharedKeyLite' }
  | { readonly kind: 'sas'; readonly grant: SasGrant }
  | { readonly kind: 'anonymous'; readonly access: PublicAccess };

/** A container's public access level, or 'notFound' when it does not exist. */
export type PublicAccessLookup = (account: string, container: string) => Promise<PublicAccess | null | 'notFound'>;

export interface AuthorizerOptions {
  readonly clock: Clock;
  /** An account's keys (primary, secondary), or null for an unknown account. */
  readonly accountKeys: (account: string) => readonly Uint8Array[] | null;
  readonly storedPolicy: StoredPolicyLookup;
  readonly publicAccess: PublicAccessLookup;
}

function authFailed(detail: string): FrontendError {
  return new FrontendError('AuthenticationFailed', detail, [['AuthenticationErrorDetail', detail]]);
}

const authorizationPattern = /^(SharedKey|SharedKeyLite) ([a-z0-9]{3,24}):([A-Za-z0-9+/=]{1,128})$/;

export class Authorizer {
  readonly #options: AuthorizerOptions;

  constructor(options: AuthorizerOptions) {
    this.#options = options;
  }

  async authorize(request: ParsedRequest): Promise<Principal> {
    const signed = this.authorizeSigned(request);
    if (signed !== null) return signed;
    if (isSasRequest(request.query)) return { kind: 'sas', grant: await this.#sas(request) };
    return this.#anonymous(request);
  }

  /**
   * authorize's answer for a request with an Authorization header (SharedKey, SharedKeyLite),
   * decided at once (the account's keys are in memory): the principal, or thrown as authorize
   * rejects. null for a request without one (SAS or anonymous: they may need lookups, authorize).
   */
  authorizeSigned(request: ParsedRequest): Principal | null {
    const authorization = request.headers.get('authorization');
    if (authorization === undefined) return null;
    if (isSasRequest(request.query)) throw authFailed('both an Authorization header and a SAS');
    return this.#sharedKey(request, authorization);
  }

  #keys(account: string): readonly Uint8Array[] {
    const keys = this.#options.accountKeys(account);
    if (keys === null || keys.length === 0) throw authFailed('unknown account');
    return keys;
  }

  #sharedKey(request: ParsedRequest, authorization: string): Principal {
    const match = authorizationPattern.exec(authorization);
    if (match === null) throw new FrontendError('InvalidAuthenticationInfo', 'Authorization is not SharedKey or SharedKeyLite account:signature');
    const [, scheme, account, signature] = match as unknown as [string, 'SharedKey' | 'SharedKeyLite', string, string];
    if (account !== request.account) throw authFailed('the Authorization account is not the request account');
    const keys = this.#keys(account);
    this.#checkDate(request);
    const signable: SignableRequest = {
      method: request.method, account, rawPath: request.rawPath, query: request.query, headers: request.headers, version: request.version,
    };
    const stringToSign = scheme === 'SharedKey' ? sharedKeyStringToSign(signable) : sharedKeyLiteStringToSign(signable);
    // The Python SDK (Azure CLI) signs empty-valued parameters; the JavaScript SDK omits them.
    const matches = signatureMatches(signature, stringToSign, keys) ||
      (scheme === 'SharedKey' && hasEmptyQueryValue(signable) && signatureMatches(signature, sharedKeyStringToSign(signable, 'include'), keys));
    if (!matches) {
      // Azure shows the string it signed, which helps clients debug and discloses no secret.
      throw authFailed(`The MAC signature found in the HTTP request is not the same as any computed signature. Server used following string to sign: '${stringToSign}'.`);
    }
    return { kind: scheme === 'SharedKey' ? 'sharedKey' : 'sharedKeyLite' };
  }

  #checkDate(request: ParsedRequest): void {
    const raw = request.headers.get('x-ms-date') ?? request.headers.get('date');
    if (raw === undefined) throw authFailed('Request date header not specified');
    const date = parseHttpDate(raw);
    if (date === null) throw authFailed('Request date header is not an RFC 1123 date');
    if (Math.abs(this.#options.clock.nowMs() - date.getTime()) > requestClockSkewMaxMs) {
      throw authFailed('Request date header too old or too far in the future (more than 15 minutes)');
    }
  }

  async #sas(request: ParsedRequest): Promise<SasGrant> {
    const keys = this.#keys(request.account);
    const sasRequest = {
      account: request.account, operation: request.operation, resource: request.resource, query: request.query,
      clientAddress: request.clientAddress, secure: request.secure, nowMs: this.#options.clock.nowMs(),
    };
    if (sasField(request.query, 'ss') !== '' || sasField(request.query, 'srt') !== '') return verifyAccountSas(sasRequest, keys);
    if (sasField(request.query, 'sr') !== '') return verifyServiceSas(sasRequest, keys, this.#options.storedPolicy);
    throw authFailed('a SAS needs ss and srt (account SAS) or sr (service SAS)');
  }

  async #anonymous(request: ParsedRequest): Promise<Principal> {
    const op = request.operation;
    const resource = request.resource;
    if (!isReadOperation(op) || resource.kind === 'service' || !anonymousReadable(op)) {
      throw new FrontendError('NoAuthenticationInformation', 'this operation needs credentials');
    }
    const access = await this.#options.publicAccess(request.account, resource.container);
    if (access === 'notFound' || access === null) throw new FrontendError('ResourceNotFound', 'no public access');
    if (resource.kind === 'container' && access !== 'container') throw new FrontendError('ResourceNotFound', 'container is not publicly listable');
    return { kind: 'anonymous', access };
  }
}

/** Public access permits reading blobs (access 'blob' or 'container') and reading a container's
 * properties, metadata and blob list (access 'container'). */
const anonymousKinds: ReadonlySet<Operation['kind']> = new Set<Operation['kind']>([
  'GetBlob', 'GetBlobProperties', 'GetBlobMetadata', 'GetBlockList', 'GetContainerProperties', 'GetContainerMetadata', 'ListBlobs',
]);

function anonymousReadable(op: Operation): boolean {
  return anonymousKinds.has(op.kind);
}

/** The request target with SAS signatures removed, for logs. */
export function redactTarget(target: string): string {
  return target.replace(/([?&](?:sig|x-ms-copy-source-authorization)=)[^&]*/gi, '$1REDACTED');
}
