// The request parser: Azure's routing table, one test per bad-input class, and fast-check
// fuzzing that parseRequest is total and answers invalid input with Azure's error codes.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseRequest } from '../../../src/frontend/request-parser.ts';
import { kuraErrorCodes, errorTable } from '../../../src/frontend/errors.ts';
import { apiVersionLatest, head, parseError, parseOk } from './helpers.ts';

const a = '/devstoreaccount1';

test('routes every Blob operation as Azure names it (path-style and host-style)', (t) => {
  const cases: [string, string, Record<string, string>, string][] = [
    ['GET', `${a}/?restype=service&comp=properties`, {}, 'GetBlobServiceProperties'],
    ['PUT', `${a}/?restype=service&comp=properties`, { 'content-length': '10' }, 'SetBlobServiceProperties'],
    ['GET', `${a}/?restype=service&comp=stats`, {}, 'GetServiceStats'],
    ['GET', `${a}?comp=list`, {}, 'ListContainers'],
    ['GET', `${a}/?restype=account&comp=properties`, {}, 'GetAccountInformation'],
    ['HEAD', `${a}/c1x/b?restype=account&comp=properties`, {}, 'GetAccountInformation'],
    ['POST', `${a}/?restype=service&comp=userdelegationkey`, { 'content-length': '50' }, 'GetUserDelegationKey'],
    ['GET', `${a}/?comp=blobs&where=%22a%22%3D%27b%27`, {}, 'FindBlobsByTags'],
    ['PUT', `${a}/cont?restype=container`, { 'x-ms-meta-Owner': 'me' }, 'CreateContainer'],
    ['GET', `${a}/cont?restype=container`, {}, 'GetContainerProperties'],
    ['HEAD', `${a}/cont?restype=container&comp=metadata`, {}, 'GetContainerMetadata'],
    ['PUT', `${a}/cont?restype=container&comp=metadata`, {}, 'SetContainerMetadata'],
    ['GET', `${a}/cont?restype=container&comp=acl`, {}, 'GetContainerACL'],
    ['PUT', `${a}/cont?restype=container&comp=acl`, { 'content-length': '0' }, 'SetContainerACL'],
    ['DELETE', `${a}/cont?restype=container`, {}, 'DeleteContainer'],
    ['PUT', `${a}/cont?restype=container&comp=lease`, { 'x-ms-lease-action': 'acquire', 'x-ms-lease-duration': '-1' }, 'LeaseContainer'],
    ['GET', `${a}/cont?restype=container&comp=list&prefix=a/&delimiter=/&include=metadata,tags`, {}, 'ListBlobs'],
    ['GET', `${a}/cont?restype=container&comp=blobs&where=x`, {}, 'FindBlobsByTags'],
    ['PUT', `${a}/cont/dir/blob.txt`, { 'x-ms-blob-type': 'BlockBlob', 'content-length': '5' }, 'PutBlob'],
    ['PUT', `${a}/cont/b?comp=block&blockid=AAAA`, { 'content-length': '5' }, 'PutBlock'],
    ['PUT', `${a}/cont/b?comp=blocklist`, { 'content-length': '40' }, 'PutBlockList'],
    ['GET', `${a}/cont/b?comp=blocklist&blocklisttype=all`, {}, 'GetBlockList'],
    ['PUT', `${a}/cont/b?comp=block&blockid=AAAA`, { 'x-ms-copy-source': 'https://x.example/c/b' }, 'PutBlockFromURL'],
    ['PUT', `${a}/cont/b`, { 'x-ms-copy-source': 'https://x.example/c/b' }, 'CopyBlob'],
    ['PUT', `${a}/cont/b`, { 'x-ms-copy-source': 'https://x.example/c/b', 'x-ms-requires-sync': 'true' }, 'CopyBlobFromURL'],
    ['PUT', `${a}/cont/b?comp=copy&copyid=1f2e3d4c-0000-0000-0000-000000000000`, { 'x-ms-copy-action': 'abort' }, 'AbortCopyBlob'],
    ['PUT', `${a}/cont/b`, { 'x-ms-blob-type': 'AppendBlob' }, 'CreateAppendBlob'],
    ['PUT', `${a}/cont/b?comp=appendblock`, { 'content-length': '3' }, 'AppendBlock'],
    ['PUT', `${a}/cont/b?comp=seal`, {}, 'SealAppendBlob'],
    ['GET', `${a}/cont/b`, { 'x-ms-range': 'bytes=0-9' }, 'GetBlob'],
    ['HEAD', `${a}/cont/b`, {}, 'GetBlobProperties'],
    ['PUT', `${a}/cont/b?comp=properties`, { 'x-ms-blob-content-type': 'text/plain' }, 'SetBlobProperties'],
    ['GET', `${a}/cont/b?comp=metadata`, {}, 'GetBlobMetadata'],
    ['PUT', `${a}/cont/b?comp=metadata`, { 'x-ms-meta-a': '1' }, 'SetBlobMetadata'],
    ['PUT', `${a}/cont/b?comp=tags`, { 'content-length': '60' }, 'SetBlobTags'],
    ['GET', `${a}/cont/b?comp=tags`, {}, 'GetBlobTags'],
    ['DELETE', `${a}/cont/b`, { 'x-ms-delete-snapshots': 'include' }, 'DeleteBlob'],
    ['PUT', `${a}/cont/b?comp=snapshot`, {}, 'SnapshotBlob'],
    ['PUT', `${a}/cont/b?comp=lease`, { 'x-ms-lease-action': 'break' }, 'LeaseBlob'],
    ['PUT', `${a}/cont/b?comp=tier`, { 'x-ms-access-tier': 'Cool' }, 'SetBlobTier'],
    ['PUT', `${a}/cont/b?comp=page`, {}, 'Unsupported'],
    ['PUT', `${a}/cont/b`, { 'x-ms-blob-type': 'PageBlob' }, 'Unsupported'],
    ['POST', `${a}/?comp=batch`, {}, 'Unsupported'],
    ['GET', `${a}/rootblob`, {}, 'GetBlob'],
  ];
  for (const [method, target, headers, kind] of cases) {
    assert.equal(parseOk(head(method, target, headers)).operation.kind, kind, `${method} ${target}`);
  }
  const hostStyle = parseOk({ ...head('GET', '/cont/a%2Fb?comp=metadata'), rawHeaders: ['Host', 'myacct.blob.localhost:10000'] });
  assert.equal(hostStyle.addressing, 'host');
  assert.equal(hostStyle.account, 'myacct');
  assert.deepEqual(hostStyle.resource, { kind: 'blob', container: 'cont', blob: 'a/b' });
  const queue = parseOk({ ...head('GET', '/q1/messages'), rawHeaders: ['Host', 'myacct.queue.localhost'] });
  assert.deepEqual([queue.operation.kind, queue.operation.kind === 'Unsupported' && queue.operation.service], ['Unsupported', 'queue']);
  t.diagnostic(`routes checked: ${cases.length + 2}`);
});

test('parsed fields are typed and validated', () => {
  const op = parseOk(head('GET', `${a}/cont/b?snapshot=2024-01-01T00:00:00.1234567Z`, {
    range: 'bytes=0-', 'x-ms-range': 'bytes=10-19', 'if-match': '"0x1", "0x2"', 'if-modified-since': 'Sun, 06 Nov 1994 08:49:37 GMT',
    'x-ms-lease-id': 'AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE',
  })).operation;
  assert.equal(op.kind, 'GetBlob');
  if (op.kind !== 'GetBlob') return;
  assert.deepEqual(op.range, { start: 10, end: 19 });
  assert.deepEqual(op.conditions.ifMatch, { kind: 'list', etags: ['"0x1"', '"0x2"'] });
  assert.equal(op.conditions.ifModifiedSince?.toISOString(), '1994-11-06T08:49:37.000Z');
  assert.equal(op.leaseId, 'aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee');
  const put = parseOk(head('PUT', `${a}/cont/b`, { 'x-ms-blob-type': 'BlockBlob', 'content-length': '3', 'x-ms-meta-CamelCase': 'v', 'x-ms-tags': 'k1=v%201&k2=', 'content-type': 'text/plain' })).operation;
  assert.equal(put.kind, 'PutBlob');
  if (put.kind !== 'PutBlob') return;
  assert.deepEqual([...put.metadata], [['CamelCase', 'v']]);
  assert.deepEqual(put.tags, [{ key: 'k1', value: 'v 1' }, { key: 'k2', value: '' }]);
  assert.equal(put.httpHeaders.contentType, 'text/plain');
});

/** One test per class of bad input: each gets Azure's error code. */
test('bad input: each class gets Azure\'s error', (t) => {
  const long = 'x'.repeat(1025);
  const classes: [string, string, string, Record<string, string>, string][] = [
    ['invalid container name', 'GET', `${a}/Bad_Name?restype=container`, {}, 'InvalidResourceName'],
    ['container name too short', 'GET', `${a}/ab?restype=container`, {}, 'OutOfRangeInput'],
    ['double hyphen', 'PUT', `${a}/a--b?restype=container`, {}, 'InvalidResourceName'],
    ['blob name too long', 'GET', `${a}/cont/${long}`, {}, 'OutOfRangeInput'],
    ['path traversal', 'GET', `${a}/cont/a/../../etc/passwd`, {}, 'InvalidUri'],
    ['encoded traversal', 'GET', `${a}/cont/a/%2E%2E/b`, {}, 'InvalidUri'],
    ['control character in name', 'GET', `${a}/cont/a%00b`, {}, 'InvalidResourceName'],
    ['malformed percent-encoding', 'GET', `${a}/cont/a%E0%A4`, {}, 'InvalidUri'],
    ['bad account name', 'GET', '/Dev_Store/cont?restype=container', {}, 'InvalidResourceName'],
    ['not origin-form', 'GET', 'http://evil/x', {}, 'InvalidUri'],
    ['unknown verb', 'PATCH', `${a}/cont/b`, {}, 'InvalidHttpVerb'],
    ['wrong verb for comp', 'DELETE', `${a}/cont/b?comp=tags`, {}, 'UnsupportedHttpVerb'],
    ['unknown comp', 'GET', `${a}/cont/b?comp=bogus`, {}, 'InvalidQueryParameterValue'],
    ['duplicate comp', 'GET', `${a}/cont/b?comp=tags&comp=tags`, {}, 'InvalidQueryParameterValue'],
    ['malformed Range', 'GET', `${a}/cont/b`, { range: 'bytes=abc' }, 'InvalidHeaderValue'],
    ['multi-range', 'GET', `${a}/cont/b`, { 'x-ms-range': 'bytes=0-1,5-6' }, 'InvalidHeaderValue'],
    ['inverted range', 'GET', `${a}/cont/b`, { 'x-ms-range': 'bytes=9-3' }, 'InvalidRange'],
    ['range md5 without range', 'GET', `${a}/cont/b`, { 'x-ms-range-get-content-md5': 'true' }, 'OutOfRangeInput'],
    ['bad date condition', 'GET', `${a}/cont/b`, { 'if-modified-since': 'yesterday' }, 'InvalidHeaderValue'],
    ['bad etag', 'GET', `${a}/cont/b`, { 'if-match': '"a" "b"' }, 'InvalidHeaderValue'],
    ['bad lease id', 'GET', `${a}/cont/b`, { 'x-ms-lease-id': 'not-a-guid' }, 'InvalidHeaderValue'],
    ['bad block id', 'PUT', `${a}/cont/b?comp=block&blockid=%%%`, { 'content-length': '1' }, 'InvalidUri'],
    ['non-base64 block id', 'PUT', `${a}/cont/b?comp=block&blockid=a*b`, { 'content-length': '1' }, 'InvalidQueryParameterValue'],
    ['missing block id', 'PUT', `${a}/cont/b?comp=block`, { 'content-length': '1' }, 'MissingRequiredQueryParameter'],
    ['missing blob type', 'PUT', `${a}/cont/b`, { 'content-length': '1' }, 'MissingRequiredHeader'],
    ['missing Content-Length', 'PUT', `${a}/cont/b`, { 'x-ms-blob-type': 'BlockBlob', 'transfer-encoding': 'chunked' }, 'MissingContentLengthHeader'],
    ['body too large', 'PUT', `${a}/cont/b?comp=appendblock`, { 'content-length': String(4 * 1024 * 1024 + 1) }, 'RequestBodyTooLarge'],
    ['XML body too large', 'PUT', `${a}/cont/b?comp=blocklist`, { 'content-length': String(9 * 1024 * 1024) }, 'RequestBodyTooLarge'],
    ['body on bodiless op', 'DELETE', `${a}/cont/b`, { 'content-length': '5' }, 'InvalidHeaderValue'],
    ['bad Content-MD5', 'PUT', `${a}/cont/b`, { 'x-ms-blob-type': 'BlockBlob', 'content-length': '1', 'content-md5': 'abc' }, 'InvalidMd5'],
    ['invalid metadata name', 'PUT', `${a}/cont/b?comp=metadata`, { 'x-ms-meta-1bad': 'v' }, 'InvalidMetadata'],
    ['metadata too large', 'PUT', `${a}/cont/b?comp=metadata`, { 'x-ms-meta-big': 'v'.repeat(8200) }, 'MetadataTooLarge'],
    ['unknown x-ms-version', 'GET', `${a}/cont/b`, { 'x-ms-version': '2099-01-01' }, 'InvalidHeaderValue'],
    ['malformed x-ms-version', 'GET', `${a}/cont/b`, { 'x-ms-version': 'latest' }, 'InvalidHeaderValue'],
    ['bad maxresults', 'GET', `${a}?comp=list&maxresults=0`, {}, 'OutOfRangeQueryParameterValue'],
    ['bad include', 'GET', `${a}/cont?restype=container&comp=list&include=secrets`, {}, 'InvalidQueryParameterValue'],
    ['bad tier', 'PUT', `${a}/cont/b?comp=tier`, { 'x-ms-access-tier': 'Lukewarm' }, 'InvalidBlobTier'],
    ['bad tags header', 'PUT', `${a}/cont/b`, { 'x-ms-blob-type': 'AppendBlob', 'x-ms-tags': 'k=<v>' }, 'InvalidTag'],
    ['bad copy source', 'PUT', `${a}/cont/b`, { 'x-ms-copy-source': 'file:///etc/passwd' }, 'InvalidHeaderValue'],
    ['bad lease duration', 'PUT', `${a}/cont/b?comp=lease`, { 'x-ms-lease-action': 'acquire', 'x-ms-lease-duration': '5' }, 'OutOfRangeInput'],
    ['bad snapshot', 'GET', `${a}/cont/b?snapshot=now`, {}, 'InvalidQueryParameterValue'],
    ['missing where', 'GET', `${a}/?comp=blobs`, {}, 'MissingRequiredQueryParameter'],
    ['URL too long', 'GET', `${a}/cont/${'b'.repeat(9000)}`, {}, 'InvalidUri'],
    ['too many query parameters', 'GET', `${a}/cont/b?${Array.from({ length: 70 }, (_, i) => `p${i}=1`).join('&')}`, {}, 'InvalidUri'],
    ['bad client request id', 'GET', `${a}/cont/b`, { 'x-ms-client-request-id': 'x'.repeat(2000) }, 'InvalidHeaderValue'],
  ];
  for (const [name, method, target, headers, code] of classes) {
    assert.equal(parseError(head(method, target, headers)).code, code, name);
  }
  const duplicate = parseRequest({ ...head('GET', `${a}/cont/b`), rawHeaders: ['host', 'x', 'x-ms-date', 'a', 'X-MS-DATE', 'b'] }, { apiVersionLatest });
  assert.equal(duplicate.ok ? 'ok' : duplicate.error.code, 'InvalidHeaderValue');
  const flood = parseRequest({ ...head('GET', `${a}/cont/b`), rawHeaders: Array.from({ length: 200 }, (_, i) => [`h${i}`, 'v']).flat() }, { apiVersionLatest });
  assert.equal(flood.ok ? 'ok' : flood.error.code, 'InvalidInput');
  t.diagnostic(`bad-input classes checked: ${classes.length + 2}`);
});

test('an empty query value means the same as an absent one or is refused (SharedKey leaves them unsigned)', () => {
  const base = parseOk(head('GET', `${a}/cont?restype=container&comp=list`)).operation;
  for (const name of ['prefix', 'delimiter', 'marker', 'include', 'timeout', 'restype=container&comp=list&x']) {
    const target = name.includes('=') ? `${a}/cont?${name}=` : `${a}/cont?restype=container&comp=list&${name}=`;
    const result = parseRequest(head('GET', target), { apiVersionLatest });
    if (result.ok) assert.deepEqual(result.request.operation, base, name);
  }
  for (const name of ['maxresults', 'snapshot', 'where', 'blocklisttype']) {
    const result = parseRequest(head('GET', `${a}/cont/b?comp=blocklist&${name}=`), { apiVersionLatest });
    if (result.ok) assert.equal(result.request.operation.kind, 'GetBlockList', name);
    if (result.ok && result.request.operation.kind === 'GetBlockList') assert.equal(result.request.operation.listType, 'committed');
  }
});

const methodArb = fc.constantFrom('GET', 'GET', 'HEAD', 'PUT', 'PUT', 'DELETE', 'POST', 'OPTIONS', 'PATCH', 'get', '');
const segmentArb = fc.oneof(
  fc.constantFrom('devstoreaccount1', 'cont', '$root', '..', '.', '%2E%2E', '%2F', '%', '%ZZ', '%00', 'a--b', 'AB', '', 'x'.repeat(70)),
  fc.string({ maxLength: 12 }).map(encodeURIComponent),
  fc.string({ maxLength: 8 }),
);
const queryArb = fc.array(fc.tuple(
  fc.constantFrom('comp', 'restype', 'blockid', 'snapshot', 'maxresults', 'include', 'prefix', 'sig', 'where', 'COMP', 'x'),
  fc.oneof(fc.constantFrom('list', 'container', 'service', 'properties', 'block', 'blocklist', 'tags', 'lease', 'AAAA', '-1', '99999999999999999', ''), fc.string({ maxLength: 10 }).map(encodeURIComponent)),
), { maxLength: 5 }).map((pairs) => pairs.map(([k, v]) => `${k}=${v}`).join('&'));
const headerArb = fc.array(fc.tuple(
  fc.constantFrom('x-ms-version', 'range', 'x-ms-range', 'if-match', 'if-none-match', 'if-modified-since', 'x-ms-lease-id', 'x-ms-blob-type', 'content-length', 'x-ms-meta-a', 'x-ms-meta-', 'x-ms-tags', 'x-ms-copy-source', 'x-ms-lease-action', 'content-md5', 'host', 'x-ms-access-tier', 'transfer-encoding'),
  fc.oneof(fc.constantFrom('2021-08-06', 'bytes=0-5', 'bytes=5-0', '*', 'BlockBlob', 'AppendBlob', '0', '10', '-1', 'acquire', 'a.blob.localhost', 'Hot', 'chunked'), fc.string({ maxLength: 20 })),
), { maxLength: 3 });

test('fuzz: parseRequest is total and every refusal is an Azure error in the table', (t) => {
  let accepted = 0;
  let refused = 0;
  const codes = new Set<string>();
  fc.assert(fc.property(methodArb, fc.boolean(), fc.array(segmentArb, { maxLength: 4 }), queryArb, headerArb, (method, withAccount, segments, query, headers) => {
    const path = withAccount ? ['devstoreaccount1', ...segments] : segments;
    const target = `/${path.join('/')}${query === '' ? '' : `?${query}`}`;
    const result = parseRequest({ method, target, rawHeaders: headers.flat(), clientAddress: '127.0.0.1', secure: false }, { apiVersionLatest });
    if (result.ok) {
      accepted += 1;
      assert.ok(result.request.operation.kind.length > 0);
      return;
    }
    refused += 1;
    codes.add(result.error.code);
    assert.ok(kuraErrorCodes.includes(result.error.code));
    const status = errorTable[result.error.code].status;
    assert.ok(status >= 400 && status < 600, `status ${status}`);
    assert.notEqual(result.error.code, 'InvalidInput', `untyped failure: ${result.error.message}`);
  }), { numRuns: 20_000, seed: 20261122 });
  t.diagnostic(`fuzzed requests: ${accepted + refused}, accepted ${accepted}, refused ${refused} with ${codes.size} distinct Azure codes`);
});

test('fuzz: random bytes in names never crash the parser and never yield a dot segment', (t) => {
  let runs = 0;
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (name) => {
    runs += 1;
    const result = parseRequest(head('GET', `${a}/cont/${encodeURIComponent(name).replaceAll('%2F', '/')}`), { apiVersionLatest });
    if (result.ok && 'blob' in result.request.operation) {
      assert.ok(!result.request.operation.blob.split('/').some((s) => s === '.' || s === '..'));
    }
  }), { numRuns: 5000, seed: 7 });
  t.diagnostic(`fuzzed blob names: ${runs}`);
});
