// Shared access signatures for the Blob service: account SAS and service SAS (blob, snapshot,
// version, container), as "Create an account SAS" and "Create a service SAS" define their
// strings to sign, with stored access policies looked up through an injected function.
//
// Invariants: a SAS grants an operation only if (1) its signature matches an account key over
// the string Azure defines for its signed version, compared in constant time; (2) now is within
// [start, expiry]; (3) the client address is within the signed IP range; (4) the protocol is
// allowed; (5) the signed service / resource type / resource covers the operation; (6) the
// signed permissions include one that grants it. Failures are Azure's AuthenticationFailed or
// Authorization*Mismatch. Nothing here logs or returns the computed signature.
// Fault model: every SAS field is hostile (forged, replayed, expired, tampered, oversized).

import { FrontendError } from '../errors.ts';
import type { Operation, ResourceRef } from '../operation.ts';
import type { QueryMap } from '../request-parser.ts';
import { signatureMatches } from './canonical.ts';
import { permissionsFor, resourceTypeOf } from './sas-permissions.ts';

export interface StoredAccessPolicy {
  readonly start?: string;
  readonly expiry?: string;
  readonly permission?: string;
}

export type StoredPolicyLookup = (account: string, container: string, id: string) => Promise<StoredAccessPolicy | null>;

export interface SasRequest {
  readonly account: string;
  readonly operation: Operation;
  readonly resource: ResourceRef;
  readonly query: QueryMap;
  readonly clientAddress: string;
  readonly secure: boolean;
  readonly nowMs: number;
}

export interface SasGrant {
  readonly kind: 'account' | 'service';
  /** Granted only by the create permission 'c': the operation may not overwrite an existing blob. */
  readonly createOnly: boolean;
  /** Response header overrides of a service SAS (rscc, rscd, rsce, rscl, rsct). */
  readonly responseHeaders: ReadonlyMap<string, string>;
}

const sasValueCharsMax = 2048;

function authFailed(detail: string): FrontendError {
  return new FrontendError('AuthenticationFailed', detail, [['AuthenticationErrorDetail', detail]]);
}

/** The SAS fields, each at most once and bounded. */
export function sasField(query: QueryMap, name: string): string {
  const values = query.get(name);
  if (values === undefined) return '';
  if (values.length !== 1 || (values[0] ?? '').length > sasValueCharsMax) throw authFailed(`SAS field ${name} repeated or too long`);
  return values[0] ?? '';
}

export function isSasRequest(query: QueryMap): boolean {
  return query.has('sig');
}

const isoTime = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?Z)?$/;

function parseSasTime(name: string, raw: string): number {
  const ms = isoTime.test(raw) ? Date.parse(raw) : Number.NaN;
  if (Number.isNaN(ms)) throw authFailed(`${name} is not an ISO 8601 UTC time`);
  return ms;
}

function checkTimes(start: string, expiry: string, nowMs: number): void {
  if (expiry === '') throw authFailed('signed expiry missing');
  const expiryMs = parseSasTime('se', expiry);
  const startMs = start === '' ? null : parseSasTime('st', start);
  if (nowMs > expiryMs || (startMs !== null && nowMs < startMs)) throw authFailed('Signature not valid in the specified time frame');
}

function ipv4ToNumber(text: string): number | null {
  const parts = text.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) return null;
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

function checkIp(sip: string, clientAddress: string): void {
  if (sip === '') return;
  const [low = '', high = low] = sip.split('-');
  const lowN = ipv4ToNumber(low);
  const highN = ipv4ToNumber(high);
  if (lowN === null || highN === null) throw authFailed('sip is not an IPv4 address or range');
  const client = ipv4ToNumber(clientAddress.startsWith('::ffff:') ? clientAddress.slice(7) : clientAddress);
  if (client === null || client < lowN || client > highN) {
    throw new FrontendError('AuthorizationSourceIPMismatch', 'client address outside the signed range', [['AuthenticationErrorDetail', `Source IP ${clientAddress}`]]);
  }
}

function checkProtocol(spr: string, secure: boolean): void {
  if (spr === '' || spr === 'https,http' || spr === 'http,https') return;
  if (spr !== 'https') throw authFailed('spr must be https or https,http');
  if (!secure) throw new FrontendError('AuthorizationProtocolMismatch', 'SAS requires https');
}

function checkPermissions(granted: string, operation: Operation): { createOnly: boolean } {
  if (!/^[racwdxyltmeopfi]*$/.test(granted) || new Set(granted).size !== granted.length) throw authFailed('sp has unknown or repeated letters');
  const needed = permissionsFor(operation);
  if (needed === null || ![...needed.anyOf].some((letter) => granted.includes(letter))) {
    throw new FrontendError('AuthorizationPermissionMismatch', 'the SAS does not grant this operation');
  }
  const createOnly = needed.anyOf.includes('c') && needed.anyOf.includes('w') && !granted.includes('w');
  return { createOnly };
}

/** Account SAS (ss present). */
export function verifyAccountSas(request: SasRequest, keys: readonly Uint8Array[]): SasGrant {
  const f = (name: string): string => sasField(request.query, name);
  const sv = f('sv');
  if (sv < '2015-04-05' || !/^\d{4}-\d{2}-\d{2}$/.test(sv)) throw authFailed('sv missing or older than 2015-04-05');
  const fields = [request.account, f('sp'), f('ss'), f('srt'), f('st'), f('se'), f('sip'), f('spr'), sv];
  if (sv >= '2020-12-06') fields.push(f('ses'));
  const stringToSign = fields.join('\n') + '\n';
  if (!signatureMatches(f('sig'), stringToSign, keys)) throw authFailed('Signature did not match');
  checkTimes(f('st'), f('se'), request.nowMs);
  checkIp(f('sip'), request.clientAddress);
  checkProtocol(f('spr'), request.secure);
  if (!/^[bqtf]+$/.test(f('ss'))) throw authFailed('ss has unknown services');
  if (!f('ss').includes('b')) throw new FrontendError('AuthorizationServiceMismatch', 'the SAS does not cover the Blob service');
  if (!/^[sco]+$/.test(f('srt'))) throw authFailed('srt has unknown resource types');
  if (!f('srt').includes(resourceTypeOf(request.operation))) {
    throw new FrontendError('AuthorizationResourceTypeMismatch', 'the SAS does not cover this resource type');
  }
  return { kind: 'account', ...checkPermissions(f('sp'), request.operation), responseHeaders: new Map() };
}

const overrideHeaders = [['rscc', 'cache-control'], ['rscd', 'content-disposition'], ['rsce', 'content-encoding'], ['rscl', 'content-language'], ['rsct', 'content-type']] as const;

interface Effective {
  readonly start: string;
  readonly expiry: string;
  readonly permission: string;
}

async function effectivePolicy(request: SasRequest, container: string, lookup: StoredPolicyLookup): Promise<Effective> {
  const f = (name: string): string => sasField(request.query, name);
  const si = f('si');
  if (si === '') return { start: f('st'), expiry: f('se'), permission: f('sp') };
  if (si.length > 64) throw authFailed('si too long');
  const policy = await lookup(request.account, container, si);
  if (policy === null) throw authFailed('no stored access policy with this identifier');
  const merge = (sasValue: string, policyValue: string | undefined, name: string): string => {
    if (sasValue !== '' && policyValue !== undefined && policyValue !== '') throw authFailed(`${name} given by both the SAS and its policy`);
    return sasValue !== '' ? sasValue : policyValue ?? '';
  };
  return { start: merge(f('st'), policy.start, 'st'), expiry: merge(f('se'), policy.expiry, 'se'), permission: merge(f('sp'), policy.permission, 'sp') };
}

/** The canonical resource a service SAS signs, derived from the request and `sr`. */
function canonicalName(request: SasRequest, sr: string): { name: string; container: string } {
  const resource = request.resource;
  if (resource.kind === 'service') throw new FrontendError('AuthorizationResourceTypeMismatch', 'a service SAS cannot authorise account operations');
  if (sr === 'c') return { name: `/blob/${request.account}/${resource.container}`, container: resource.container };
  if (resource.kind !== 'blob') throw new FrontendError('AuthorizationResourceTypeMismatch', 'a blob SAS cannot authorise container operations');
  if (sr !== 'b' && sr !== 'bs' && sr !== 'bv') throw authFailed('sr must be b, bs, bv or c');
  return { name: `/blob/${request.account}/${resource.container}/${resource.blob}`, container: resource.container };
}

function serviceStringToSign(request: SasRequest, name: string, sr: string): string {
  const f = (field: string): string => sasField(request.query, field);
  const sv = f('sv');
  const overrides = overrideHeaders.map(([field]) => f(field));
  const head = [f('sp'), f('st'), f('se'), name, f('si'), f('sip'), f('spr'), sv];
  if (sv < '2018-11-09') return [...head, ...overrides].join('\n');
  const timestamp = sr === 'bs' ? f('snapshot') : sr === 'bv' ? f('versionid') : '';
  if (sv < '2020-12-06') return [...head, sr, timestamp, ...overrides].join('\n');
  return [...head, sr, timestamp, f('ses'), ...overrides].join('\n');
}

/** Service SAS (sr present). */
export async function verifyServiceSas(request: SasRequest, keys: readonly Uint8Array[], lookup: StoredPolicyLookup): Promise<SasGrant> {
  const f = (name: string): string => sasField(request.query, name);
  const sv = f('sv');
  if (sv < '2015-04-05' || !/^\d{4}-\d{2}-\d{2}$/.test(sv)) throw authFailed('sv missing or older than 2015-04-05');
  if (f('skoid') !== '') throw authFailed('user delegation SAS is not supported: Kura has no Microsoft Entra ID');
  const sr = f('sr');
  const { name, container } = canonicalName(request, sr);
  // The signature covers the SAS as sent (not the merged policy), so check it first.
  const stringToSign = serviceStringToSign(request, name, sr);
  if (!signatureMatches(f('sig'), stringToSign, keys)) throw authFailed('Signature did not match');
  if (sr === 'bs' && f('snapshot') === '') throw authFailed('sr=bs needs a snapshot');
  if (sr === 'bv' && f('versionid') === '') throw authFailed('sr=bv needs a versionid');
  const effective = await effectivePolicy(request, container, lookup);
  checkTimes(effective.start, effective.expiry, request.nowMs);
  checkIp(f('sip'), request.clientAddress);
  checkProtocol(f('spr'), request.secure);
  const responseHeaders = new Map<string, string>();
  for (const [field, header] of overrideHeaders) if (f(field) !== '') responseHeaders.set(header, f(field));
  return { kind: 'service', ...checkPermissions(effective.permission, request.operation), responseHeaders };
}
