// Authorisation vectors from the official SDK: requests signed by @azure/storage-blob's
// StorageSharedKeyCredential (captured on a local socket) and SAS tokens from its
// generateAccountSASQueryParameters / generateBlobSASQueryParameters must be accepted, and every
// single-field tamper must be refused. SharedKeyLite is checked against Azure's documented
// example string. The header order is checked against the SDK's comparator.

import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import fc from 'fast-check';
import {
  AccountSASPermissions, BlobSASPermissions, BlobServiceClient, ContainerSASPermissions, SASProtocol,
  StorageSharedKeyCredential, generateAccountSASQueryParameters, generateBlobSASQueryParameters,
} from '@azure/storage-blob';
import { canonicalizedHeaders, compareHeaderNames, hmacSha256, hmacSha256Base64, signatureMatches } from '../../../src/frontend/auth/canonical.ts';
import { httpDate, parseHttpDate } from '../../../src/frontend/fields.ts';
import { sharedKeyLiteStringToSign } from '../../../src/frontend/auth/shared-key-lite.ts';
import { isFrontendError } from '../../../src/frontend/errors.ts';
import { parseRequest, type RequestHead } from '../../../src/frontend/request-parser.ts';
import { account, accountKey, accountKeyBase64, apiVersionLatest, authFixture, head, parseOk } from './helpers.ts';

interface Captured { readonly method: string; readonly url: string; readonly rawHeaders: [string, string][] }
const captured: Captured[] = [];
let port = 0;
const capture = createServer((request, response) => {
  const pairs: [string, string][] = [];
  for (let i = 0; i + 1 < request.rawHeaders.length; i += 2) pairs.push([request.rawHeaders[i] ?? '', request.rawHeaders[i + 1] ?? '']);
  captured.push({ method: request.method ?? '', url: request.url ?? '', rawHeaders: pairs });
  request.resume();
  request.on('end', () => {
    response.writeHead(404, { 'x-ms-error-code': 'ResourceNotFound', 'x-ms-request-id': 'capture' });
    response.end();
  });
});

before(async () => {
  await new Promise<void>((resolve) => capture.listen(0, '127.0.0.1', resolve));
  port = (capture.address() as AddressInfo).port;
});
after(() => new Promise<void>((resolve) => capture.close(() => resolve())));

async function quietly(call: () => Promise<unknown>): Promise<void> {
  try {
    await call();
  } catch {
    // The capture server answers 404; only the signed request matters.
  }
}

async function captureSdkRequests(): Promise<Captured[]> {
  captured.length = 0;
  const credential = new StorageSharedKeyCredential(account, accountKeyBase64);
  const service = new BlobServiceClient(`http://127.0.0.1:${port}/${account}`, credential, { retryOptions: { maxTries: 1 } });
  const container = service.getContainerClient('vectors');
  const blob = container.getBlockBlobClient('dir/naïve blob+name.txt');
  const calls: (() => Promise<unknown>)[] = [
    () => container.create({ metadata: { Owner: 'kura', under_score: 'x' } }),
    () => container.getProperties(),
    () => container.setMetadata({ a: '1' }),
    () => container.getAccessPolicy(),
    () => container.delete(),
    () => service.getProperties(),
    () => service.listContainers({ prefix: 'v', includeMetadata: true }).byPage({ maxPageSize: 7 }).next(),
    () => container.listBlobsByHierarchy('/', { prefix: 'dir/' }).byPage({ maxPageSize: 10 }).next(),
    () => blob.upload('hello world', 11, { metadata: { m1: 'v1' }, blobHTTPHeaders: { blobContentType: 'text/plain', blobCacheControl: 'no-cache' }, tags: { t1: 'x y' } }),
    () => blob.stageBlock(Buffer.from('AAAA').toString('base64'), 'abcd', 4),
    () => blob.commitBlockList([Buffer.from('AAAA').toString('base64')]),
    () => blob.getBlockList('all'),
    () => blob.download(5, 10, { conditions: { ifMatch: '"0x8D"', ifModifiedSince: new Date('2024-01-02T03:04:05Z') } }),
    () => blob.getProperties({ conditions: { leaseId: '11111111-2222-3333-4444-555555555555' } }),
    () => blob.setMetadata({ x: 'y' }, { conditions: { ifNoneMatch: '*' } }),
    () => blob.setTags({ a: 'b' }),
    () => blob.getTags(),
    () => blob.setAccessTier('Cool'),
    () => blob.getBlobLeaseClient().acquireLease(30),
    () => blob.createSnapshot(),
    () => blob.delete({ deleteSnapshots: 'include' }),
    () => container.getAppendBlobClient('log').create(),
    () => container.getAppendBlobClient('log').appendBlock('xyz', 3),
  ];
  for (const call of calls) await quietly(call);
  return [...captured];
}

function headOf(request: Captured, rawHeaders = request.rawHeaders, url = request.url, method = request.method): RequestHead {
  return { method, target: url, rawHeaders: rawHeaders.flat(), clientAddress: '127.0.0.1', secure: false };
}

async function verdict(requestHead: RequestHead, nowMs: number): Promise<string> {
  const parsed = parseRequest(requestHead, { apiVersionLatest });
  if (!parsed.ok) return `parse:${parsed.error.code}`;
  try {
    const principal = await authFixture(nowMs).authorizer.authorize(parsed.request);
    return principal.kind;
  } catch (error) {
    if (isFrontendError(error)) return error.code;
    throw error;
  }
}

const signedHeader = (name: string): boolean => /^(x-ms-|content-|if-|range$|date$)/i.test(name) && !/^x-ms-client-request-id$/i.test(name);

function tamperValue(name: string, value: string): string {
  if (/^content-length$/i.test(name)) return String(Number(value) + 1);
  if (/^x-ms-version$/i.test(name)) return '2021-08-06';
  if (/^x-ms-date$/i.test(name)) return new Date(Date.parse(value) + 1000).toUTCString();
  if (/^x-ms-range$|^range$/i.test(name)) return value.replace(/\d+$/, (d) => String(Number(d) + 1));
  return `${value}x`;
}

test('SharedKey: every SDK-signed request is accepted and every single-field tamper refused', async (t) => {
  const requests = await captureSdkRequests();
  assert.ok(requests.length >= 20, `captured ${requests.length}`);
  let tampers = 0;
  for (const request of requests) {
    const date = request.rawHeaders.find(([name]) => name.toLowerCase() === 'x-ms-date')?.[1] ?? '';
    const now = Date.parse(date);
    assert.equal(await verdict(headOf(request), now), 'sharedKey', `${request.method} ${request.url}`);
    for (let i = 0; i < request.rawHeaders.length; i += 1) {
      const [name, value] = request.rawHeaders[i] ?? ['', ''];
      if (!signedHeader(name)) continue;
      const headers = request.rawHeaders.map((pair, j): [string, string] => (j === i ? [name, tamperValue(name, value)] : pair));
      const outcome = await verdict(headOf(request, headers), now);
      assert.ok(outcome !== 'sharedKey', `tampered ${name} accepted on ${request.method} ${request.url}`);
      tampers += 1;
    }
    const authIndex = request.rawHeaders.findIndex(([name]) => name.toLowerCase() === 'authorization');
    const auth = request.rawHeaders[authIndex]?.[1] ?? '';
    const flipped = auth.slice(0, -3) + (auth.at(-3) === 'A' ? 'B' : 'A') + auth.slice(-2);
    const variants: RequestHead[] = [
      headOf(request, request.rawHeaders, request.url.replace(/^([^?]*)/, '$1x')),
      headOf(request, request.rawHeaders, `${request.url}${request.url.includes('?') ? '&' : '?'}timeout=30`),
      headOf(request, request.rawHeaders, request.url, request.method === 'GET' ? 'HEAD' : 'GET'),
      headOf(request, request.rawHeaders.map((pair, j): [string, string] => (j === authIndex ? ['Authorization', flipped] : pair))),
      headOf(request, request.rawHeaders.map((pair, j): [string, string] => (j === authIndex ? ['Authorization', auth.replace('SharedKey ', 'SharedKeyLite ')] : pair))),
      headOf(request, [...request.rawHeaders, ['x-ms-meta-injected', 'evil']]),
    ];
    for (const variant of variants) {
      assert.ok((await verdict(variant, now)) !== 'sharedKey', `variant accepted: ${variant.method} ${variant.target}`);
      tampers += 1;
    }
    assert.equal(await verdict(headOf(request), now + 15 * 60_000 + 1000), 'AuthenticationFailed', 'stale date');
    assert.equal(await verdict(headOf(request), now - 15 * 60_000 - 1000), 'AuthenticationFailed', 'future date');
  }
  t.diagnostic(`SDK-signed requests accepted: ${requests.length}/${requests.length}; tampers refused: ${tampers}/${tampers}; stale and future dates refused: ${2 * requests.length}`);
});

test('SharedKeyLite: string to sign matches Azure\'s documented example; tampers refused', async (t) => {
  const parsed = parseOk({
    method: 'PUT', target: '/mycontainer/hello.txt', clientAddress: '127.0.0.1', secure: false,
    rawHeaders: [['Host', 'testaccount1.blob.core.windows.net'], ['x-ms-date', 'Sun, 20 Sep 2009 20:36:40 GMT'], ['x-ms-meta-m2', 'v2'], ['x-ms-meta-m1', 'v1'],
      ['Content-Type', 'text/plain; charset=UTF-8'], ['x-ms-blob-type', 'BlockBlob'], ['Content-Length', '11']].flat(),
  });
  const stringToSign = sharedKeyLiteStringToSign({ ...parsed, account: parsed.account, version: null });
  assert.equal(stringToSign, 'PUT\n\ntext/plain; charset=UTF-8\n\nx-ms-blob-type:BlockBlob\nx-ms-date:Sun, 20 Sep 2009 20:36:40 GMT\nx-ms-meta-m1:v1\nx-ms-meta-m2:v2\n/testaccount1/mycontainer/hello.txt');
  // A SharedKeyLite request to the dev account, signed with the documented string, verifies.
  const date = new Date(1_750_000_000_000).toUTCString();
  const base: [string, string][] = [['Host', '127.0.0.1'], ['x-ms-date', date], ['x-ms-version', '2021-08-06']];
  const target = `/${account}/cont/b?comp=metadata`;
  const signature = hmacSha256Base64(accountKey, `GET\n\n\n\nx-ms-date:${date}\nx-ms-version:2021-08-06\n/${account}/${account}/cont/b?comp=metadata`);
  const signed: [string, string][] = [...base, ['Authorization', `SharedKeyLite ${account}:${signature}`]];
  assert.equal(await verdict(headOf({ method: 'GET', url: target, rawHeaders: signed }), 1_750_000_000_000), 'sharedKeyLite');
  const tampered = [
    headOf({ method: 'GET', url: `/${account}/cont/b?comp=tags`, rawHeaders: signed }),
    headOf({ method: 'GET', url: `/${account}/cont/c?comp=metadata`, rawHeaders: signed }),
    headOf({ method: 'HEAD', url: target, rawHeaders: signed }),
    headOf({ method: 'GET', url: target, rawHeaders: [...signed, ['x-ms-meta-x', '1']] }),
    headOf({ method: 'GET', url: target, rawHeaders: signed.map(([n, v]): [string, string] => [n, n === 'x-ms-version' ? '2020-10-02' : v]) }),
  ];
  for (const variant of tampered) assert.notEqual(await verdict(variant, 1_750_000_000_000), 'sharedKeyLite');
  t.diagnostic(`SharedKeyLite: documented vector matched, ${tampered.length}/${tampered.length} tampers refused`);
});

test('canonical header order equals the SDK\'s (Azure\'s culture-aware order), locale-independent', async (t) => {
  const require = createRequire(import.meta.url);
  const sdkFile = require.resolve('@azure/storage-common').replace(/index\.js$/, 'utils/SharedKeyComparator.js');
  const sdk = await import(pathToFileURL(sdkFile).href) as { compareHeader: (a: string, b: string) => number };
  const token = fc.string({ unit: fc.constantFrom(...'abcxyz019-_.\'!~+*^`|#$%&'.split('')), minLength: 0, maxLength: 8 }).map((s) => `x-ms-${s}`);
  let pairs = 0;
  fc.assert(fc.property(token, token, (a, b) => {
    if (a === b) return;
    pairs += 1;
    assert.equal(compareHeaderNames(a, b) < 0, sdk.compareHeader(a, b) < 0, `${a} vs ${b}`);
  }), { numRuns: 20_000, seed: 42 });
  t.diagnostic(`header-name pairs compared with the SDK: ${pairs}, disagreements: 0`);
});

test('CanonicalizedHeaders: the memoised order of a header set equals a fresh sort, whatever sets came before', (t) => {
  // A few header sets repeated in random order, so most calls take the memo (arrival order as key).
  const name = fc.constantFrom('x-ms-date', 'x-ms-version', 'x-ms-client-request-id', 'x-ms-range', 'x-ms-meta-a', 'x-ms-meta-a-b', 'x-ms-meta-ab', 'x-ms-blob-type', 'content-type', 'x-ms-lease-id');
  const headerSet = fc.uniqueArray(name, { minLength: 0, maxLength: 8 }).map((names) => new Map(names.map((n, i): [string, string] => [n, ` v${i} `])));
  let calls = 0;
  fc.assert(fc.property(fc.array(headerSet, { minLength: 1, maxLength: 30 }), (sets) => {
    for (const headers of [...sets, ...sets]) {
      const expected = [...headers.keys()].filter((n) => n.startsWith('x-ms-')).sort(compareHeaderNames).map((n) => `${n}:${(headers.get(n) ?? '').trim()}\n`).join('');
      assert.equal(canonicalizedHeaders(headers), expected);
      calls += 1;
    }
  }), { numRuns: 300, seed: 7 });
  t.diagnostic(`canonicalizedHeaders calls checked against a fresh sort: ${calls}`);
});

test('HTTP dates: httpDate equals toUTCString for any time, parseHttpDate gives the same answer cached or not', (t) => {
  fc.assert(fc.property(fc.integer({ min: -8_640_000_000_000, max: 8_640_000_000_000 }), (ms) => {
    assert.equal(httpDate(ms), new Date(ms).toUTCString());
    assert.equal(httpDate(ms), new Date(ms).toUTCString(), 'a second call (cached) agrees');
  }), { numRuns: 5000, seed: 11 });
  const valid = 'Sun, 22 Nov 2026 11:54:00 GMT';
  const invalid = ['Mon, 22 Nov 2026 11:54:00 GMT', '', 'Sun, 22 Nov 2026 11:54:00 UTC', 'Sun, 31 Nov 2026 11:54:00 GMT'];
  for (let round = 0; round < 3; round++) {
    assert.equal(parseHttpDate(valid)?.getTime(), Date.parse('2026-11-22T11:54:00Z'));
    for (const text of invalid) assert.equal(parseHttpDate(text), null, `${text} stays refused after a valid date was cached`);
  }
  const first = parseHttpDate(valid);
  assert.ok(first !== null);
  first.setTime(0);
  assert.equal(parseHttpDate(valid)?.getTime(), Date.parse('2026-11-22T11:54:00Z'), 'a caller changing its Date does not change the cache');
  t.diagnostic('5000 times formatted twice, 4 invalid dates refused around a cached valid one');
});

const start = new Date('2026-01-01T00:00:00Z');
const expiry = new Date('2026-01-01T02:00:00Z');
const now = Date.parse('2026-01-01T01:00:00Z');

async function sasVerdict(target: string, method = 'GET', headers: Record<string, string> = {}, options: { clientAddress?: string; secure?: boolean; policies?: [string, { start?: string; expiry?: string; permission?: string }][] } = {}): Promise<string> {
  const fixture = authFixture(now);
  for (const [id, policy] of options.policies ?? []) fixture.policies.set(id, policy);
  const parsed = parseRequest(head(method, target, headers, options), { apiVersionLatest });
  if (!parsed.ok) return `parse:${parsed.error.code}`;
  try {
    const principal = await fixture.authorizer.authorize(parsed.request);
    return principal.kind;
  } catch (error) {
    if (isFrontendError(error)) return error.code;
    throw error;
  }
}

function tamperSas(sas: string): string[] {
  const params = new URLSearchParams(sas);
  const variants: string[] = [];
  for (const [name, value] of params) {
    const changed = new URLSearchParams(params);
    const replacement = name === 'sig' ? (value.startsWith('A') ? `B${value.slice(1)}` : `A${value.slice(1)}`)
      : name === 'se' || name === 'st' ? value.replace('2026', '2025') : name === 'sv' ? '2020-10-02' : `${value}${name === 'sp' || name === 'srt' ? 'c' : 'x'}`;
    changed.set(name, replacement);
    variants.push(changed.toString());
  }
  return variants;
}

test('account SAS from the SDK: accepted; every field tamper, expiry, IP, protocol, service, resource type and permission checked', async (t) => {
  const credential = new StorageSharedKeyCredential(account, accountKeyBase64);
  let accepted = 0;
  let refused = 0;
  for (const version of [undefined, '2019-12-12', '2020-12-06']) {
    const sas = generateAccountSASQueryParameters({
      startsOn: start, expiresOn: expiry, permissions: AccountSASPermissions.parse('rl'), services: 'b', resourceTypes: 'co',
      protocol: SASProtocol.HttpsAndHttp, ipRange: { start: '127.0.0.1', end: '127.0.0.9' }, ...(version === undefined ? {} : { version }),
    }, credential).toString();
    assert.equal(await sasVerdict(`/${account}/cont/b?${sas}`), 'sas', `version ${version ?? 'default'}`);
    assert.equal(await sasVerdict(`/${account}/cont?restype=container&comp=list&${sas}`), 'sas');
    accepted += 2;
    for (const variant of tamperSas(sas)) {
      assert.notEqual(await sasVerdict(`/${account}/cont/b?${variant}`), 'sas', variant);
      refused += 1;
    }
    const checks: [string, string][] = [
      [await sasVerdict(`/${account}/cont/b?${sas}`, 'DELETE'), 'AuthorizationPermissionMismatch'],
      [await sasVerdict(`/${account}/?restype=service&comp=properties&${sas}`), 'AuthorizationResourceTypeMismatch'],
      [await sasVerdict(`/${account}/cont/b?${sas}`, 'GET', {}, { clientAddress: '10.0.0.1' }), 'AuthorizationSourceIPMismatch'],
    ];
    for (const [got, want] of checks) assert.equal(got, want);
    refused += checks.length;
  }
  const httpsOnly = generateAccountSASQueryParameters({ expiresOn: expiry, permissions: AccountSASPermissions.parse('r'), services: 'q', resourceTypes: 'o', protocol: SASProtocol.Https }, credential).toString();
  assert.equal(await sasVerdict(`/${account}/cont/b?${httpsOnly}`), 'AuthorizationProtocolMismatch');
  assert.equal(await sasVerdict(`/${account}/cont/b?${httpsOnly}`, 'GET', {}, { secure: true }), 'AuthorizationServiceMismatch');
  const expired = generateAccountSASQueryParameters({ expiresOn: new Date(now - 1000), permissions: AccountSASPermissions.parse('r'), services: 'b', resourceTypes: 'o' }, credential).toString();
  assert.equal(await sasVerdict(`/${account}/cont/b?${expired}`), 'AuthenticationFailed');
  const createOnly = generateAccountSASQueryParameters({ expiresOn: expiry, permissions: AccountSASPermissions.parse('c'), services: 'b', resourceTypes: 'o' }, credential).toString();
  const fixture = authFixture(now);
  const principal = await fixture.authorizer.authorize(parseOk(head('PUT', `/${account}/cont/b?${createOnly}`, { 'x-ms-blob-type': 'BlockBlob', 'content-length': '1' })));
  assert.ok(principal.kind === 'sas' && principal.grant.createOnly, 'c without w is create-only');
  refused += 3;
  t.diagnostic(`account SAS: ${accepted} SDK tokens accepted, ${refused} tampered or out-of-scope uses refused`);
});

test('service SAS from the SDK (blob, container, snapshot, overrides, stored access policy): accepted; tampers refused', async (t) => {
  const credential = new StorageSharedKeyCredential(account, accountKeyBase64);
  let accepted = 0;
  let refused = 0;
  const blobName = 'dir/naïve blob.txt';
  const blobPath = `/${account}/cont/${encodeURIComponent(blobName).replaceAll('%2F', '/')}`;
  for (const version of [undefined, '2019-12-12', '2018-03-28']) {
    const sas = generateBlobSASQueryParameters({
      containerName: 'cont', blobName, permissions: BlobSASPermissions.parse('rw'), startsOn: start, expiresOn: expiry,
      cacheControl: 'no-store', contentType: 'text/plain', ...(version === undefined ? {} : { version }),
    }, credential).toString();
    assert.equal(await sasVerdict(`${blobPath}?${sas}`), 'sas', `blob SAS ${version ?? 'default'}`);
    accepted += 1;
    for (const variant of tamperSas(sas)) {
      assert.notEqual(await sasVerdict(`${blobPath}?${variant}`), 'sas', variant);
      refused += 1;
    }
    assert.notEqual(await sasVerdict(`/${account}/cont/other?${sas}`), 'sas', 'other blob');
    assert.equal(await sasVerdict(`${blobPath}?${sas}`, 'DELETE'), 'AuthorizationPermissionMismatch');
    refused += 2;
  }
  const containerSas = generateBlobSASQueryParameters({ containerName: 'cont', permissions: ContainerSASPermissions.parse('rl'), expiresOn: expiry }, credential).toString();
  assert.equal(await sasVerdict(`/${account}/cont?restype=container&comp=list&${containerSas}`), 'sas');
  assert.equal(await sasVerdict(`/${account}/cont/any/blob?${containerSas}`), 'sas');
  assert.notEqual(await sasVerdict(`/${account}/cont2/any?${containerSas}`), 'sas');
  const snapshotTime = '2026-01-01T00:30:00.1234567Z';
  const snapshotSas = generateBlobSASQueryParameters({ containerName: 'cont', blobName: 'b', snapshotTime, permissions: BlobSASPermissions.parse('r'), expiresOn: expiry }, credential).toString();
  assert.equal(await sasVerdict(`/${account}/cont/b?snapshot=${snapshotTime}&${snapshotSas}`), 'sas');
  assert.notEqual(await sasVerdict(`/${account}/cont/b?snapshot=2026-01-01T00:31:00.0000000Z&${snapshotSas}`), 'sas');
  const policySas = generateBlobSASQueryParameters({ containerName: 'cont', blobName: 'b', identifier: 'readers' }, credential).toString();
  const policies: [string, { expiry?: string; permission?: string }][] = [['cont/readers', { expiry: expiry.toISOString(), permission: 'r' }]];
  assert.equal(await sasVerdict(`/${account}/cont/b?${policySas}`, 'GET', {}, { policies }), 'sas');
  assert.equal(await sasVerdict(`/${account}/cont/b?${policySas}`, 'GET', {}, { policies: [] }), 'AuthenticationFailed');
  assert.equal(await sasVerdict(`/${account}/cont/b?${policySas}`, 'DELETE', {}, { policies }), 'AuthorizationPermissionMismatch');
  assert.equal(await sasVerdict(`/${account}/cont/b?${policySas}`, 'GET', {}, { policies: [['cont/readers', { expiry: '2025-12-31T00:00:00Z', permission: 'r' }]] }), 'AuthenticationFailed');
  accepted += 4;
  refused += 5;
  const fixture = authFixture(now);
  const blobSas = generateBlobSASQueryParameters({ containerName: 'cont', blobName: 'b', permissions: BlobSASPermissions.parse('r'), expiresOn: expiry, contentDisposition: 'attachment' }, credential).toString();
  const principal = await fixture.authorizer.authorize(parseOk(head('GET', `/${account}/cont/b?${blobSas}`)));
  assert.ok(principal.kind === 'sas' && principal.grant.responseHeaders.get('content-disposition') === 'attachment');
  t.diagnostic(`service SAS: ${accepted + 1} SDK tokens accepted, ${refused} tampered or out-of-scope uses refused`);
});

test('anonymous access: public containers readable as Azure allows, everything else refused', async (t) => {
  const fixture = authFixture(now);
  const cases: [typeof fixture.publicAccess, string, string, string][] = [
    ['container', 'GET', `/${account}/cont?restype=container&comp=list`, 'anonymous'],
    ['container', 'GET', `/${account}/cont/b`, 'anonymous'],
    ['blob', 'GET', `/${account}/cont/b`, 'anonymous'],
    ['blob', 'GET', `/${account}/cont?restype=container&comp=list`, 'ResourceNotFound'],
    [null, 'GET', `/${account}/cont/b`, 'ResourceNotFound'],
    ['notFound', 'GET', `/${account}/cont/b`, 'ResourceNotFound'],
    ['container', 'PUT', `/${account}/cont/b?comp=metadata`, 'NoAuthenticationInformation'],
    ['container', 'GET', `/${account}/cont/b?comp=tags`, 'NoAuthenticationInformation'],
    ['container', 'GET', `/${account}?comp=list`, 'NoAuthenticationInformation'],
  ];
  for (const [access, method, target, want] of cases) {
    fixture.publicAccess = access;
    let got: string;
    try {
      got = (await fixture.authorizer.authorize(parseOk(head(method, target)))).kind;
    } catch (error) {
      got = isFrontendError(error) ? error.code : 'unexpected';
    }
    assert.equal(got, want, `${String(access)} ${method} ${target}`);
  }
  t.diagnostic(`anonymous cases: ${cases.length}`);
});

test('signature keys: the cached pads follow a rotated key and a key changed in place', (t) => {
  const text = 'GET\n\n\n\nx-ms-date:Sun, 22 Nov 2026 03:00:00 GMT\n/devstoreaccount1/devstoreaccount1/c/b';
  const key = Buffer.from(accountKey);
  const signed = hmacSha256Base64(key, text);
  assert.equal(signed, createHmac('sha256', accountKey).update(text, 'utf8').digest('base64'));
  assert.ok(signatureMatches(signed, text, [key]));
  const rotated = randomBytes(64);
  assert.ok(!signatureMatches(signed, text, [rotated]), 'a new key array is not signed with the old key');
  assert.ok(signatureMatches(hmacSha256Base64(rotated, text), text, [key, rotated]));
  key[0] = (key[0] ?? 0) ^ 1;
  assert.ok(!signatureMatches(signed, text, [key]), 'a key changed in place is not signed with its old bytes');
  assert.equal(hmacSha256Base64(key, text), createHmac('sha256', key).update(text, 'utf8').digest('base64'));
  t.diagnostic('4 keys checked: cached signatures equal createHmac over the current bytes');
});

test('hmacSha256 (one-shot hashes over cached pads) equals createHmac for any key and text', (t) => {
  let runs = 0;
  let longTexts = 0;
  fc.assert(fc.property(
    fc.uint8Array({ minLength: 0, maxLength: 200 }),
    fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: 'grapheme', maxLength: 2000 }), fc.string({ minLength: 1300, maxLength: 5000 })),
    (keyBytes, text) => {
      runs += 1;
      if (text.length * 3 > 4096) longTexts += 1;
      // Twice with the same key array: the second call uses the cached pads and the same buffers.
      for (let i = 0; i < 2; i += 1) assert.deepEqual(hmacSha256(keyBytes, text), createHmac('sha256', keyBytes).update(text, 'utf8').digest());
    },
  ), { numRuns: 400 });
  // Interleaved keys and texts: no state from one call leaks into the next.
  const keys = [randomBytes(64), randomBytes(16), randomBytes(100)];
  const texts = ['a', 'x'.repeat(4000), 'é'.repeat(1000), ''];
  for (let i = 0; i < 48; i += 1) {
    const key = keys[i % keys.length] ?? Buffer.alloc(0);
    const text = texts[i % texts.length] ?? '';
    assert.equal(hmacSha256Base64(key, text), createHmac('sha256', key).update(text, 'utf8').digest('base64'));
  }
  t.diagnostic(`${runs} random keys and texts (${longTexts} past the inner buffer) and 48 interleaved calls equal createHmac`);
});
