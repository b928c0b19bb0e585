// Copy sources outside Kura (docs/copy-sources.md), through the real front end and the official
// SDK on a real in-process stamp, with real HTTP servers as sources: a plain node:http server
// serving bytes (ranges, conditions, errors, redirects, oversized, trickling and stalled bodies)
// and a second Kura stamp (SAS URLs). Copy Blob From URL, Put Block From URL, asynchronous Copy
// Blob with progress, Abort Copy, failure mid-body; the host policy (loopback refused by the
// default `public`, this process's admin endpoint refused under every rule, checked at connect).

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { BlobSASPermissions, type BlobBeginCopyFromUrlPollState, type BlobClient, type BlockBlobClient, StorageSharedKeyCredential, generateBlobSASQueryParameters } from '@azure/storage-blob';
import { parseCopySourcePolicy } from '../../../../src/frontend/blob-service/copy-source-policy.ts';
import { RemoteSourceFetcher } from '../../../../src/frontend/blob-service/remote-source.ts';
import { account, accountKeyBase64 } from '../helpers.ts';
import { BlobStamp, expectError, restError } from './blob-stamp.ts';

const MiB = 1024 * 1024;
const small = randomBytes(300 * 1024 + 7);
const big = randomBytes(9 * MiB + 11);
const slowBig = randomBytes(8 * MiB);

/** The plain HTTP source: a route per behaviour; counts requests per path. */
class SourceServer {
  readonly hits = new Map<string, number>();
  readonly authorizations: string[] = [];
  server!: Server;
  port = 0;

  async start(): Promise<void> {
    this.server = createServer((request, response) => { this.#route(request, response); });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  #route(request: IncomingMessage, response: ServerResponse): void {
    const path = request.url ?? '/';
    this.hits.set(path, (this.hits.get(path) ?? 0) + 1);
    switch (path) {
      case '/data/small': serveBytes(request, response, small, { 'content-type': 'application/x-kura-test', 'x-ms-meta-origin': 'plain' }); return;
      case '/data/big': serveBytes(request, response, big, {}); return;
      case '/missing': response.writeHead(404, { 'x-ms-error-code': 'BlobNotFound' }).end(); return;
      case '/redirect': response.writeHead(302, { location: this.url('/data/small') }).end(); return;
      case '/oversized': response.writeHead(200, { 'content-length': String(3 * MiB) }).write(Buffer.alloc(1024)); return;
      case '/chunked-endless': endless(response); return;
      case '/trickle': trickle(response, { total: MiB, chunk: 1024, everyMs: 100 }); return;
      case '/stall': response.writeHead(200, { 'content-length': '1000' }).write(Buffer.alloc(10)); return;
      case '/slow-big': trickle(response, { total: slowBig.length, chunk: 64 * 1024, everyMs: 50, bytes: slowBig }); return;
      case '/truncated': response.writeHead(200, { 'content-length': String(MiB) }).write(Buffer.alloc(512 * 1024), () => setTimeout(() => response.destroy(), 50)); return;
      case '/bearer':
        this.authorizations.push(request.headers.authorization ?? '');
        if (request.headers.authorization !== 'Bearer token-1') response.writeHead(401, { 'x-ms-error-code': 'NoAuthenticationInformation' }).end();
        else serveBytes(request, response, small, {});
        return;
      default: response.writeHead(200).end('admin');
    }
  }
}

function serveBytes(request: IncomingMessage, response: ServerResponse, bytes: Buffer, headers: Record<string, string>): void {
  const etag = '"v1"';
  if (request.headers['if-match'] !== undefined && request.headers['if-match'] !== etag) { response.writeHead(412).end(); return; }
  if (request.headers['if-none-match'] === etag) { response.writeHead(304).end(); return; }
  const range = /^bytes=(\d+)-(\d*)$/.exec(request.headers.range ?? '');
  if (range !== null) {
    const start = Number(range[1]);
    const end = range[2] === '' ? bytes.length - 1 : Math.min(Number(range[2]), bytes.length - 1);
    if (start >= bytes.length) { response.writeHead(416).end(); return; }
    response.writeHead(206, { ...headers, etag, 'content-length': String(end - start + 1), 'content-range': `bytes ${start}-${end}/${bytes.length}` }).end(bytes.subarray(start, end + 1));
    return;
  }
  const md5 = createHash('md5').update(bytes).digest('base64');
  response.writeHead(200, { ...headers, etag, 'content-length': String(bytes.length), 'content-md5': md5 }).end(bytes);
}

function endless(response: ServerResponse): void {
  response.writeHead(200);
  const chunk = Buffer.alloc(64 * 1024, 7);
  const pump = (): void => {
    while (!response.destroyed && response.write(chunk));
    if (!response.destroyed) response.once('drain', pump);
  };
  pump();
}

function trickle(response: ServerResponse, plan: { readonly total: number; readonly chunk: number; readonly everyMs: number; readonly bytes?: Buffer }): void {
  response.writeHead(200, { 'content-length': String(plan.total) });
  let sent = 0;
  const timer = setInterval(() => {
    if (response.destroyed || sent >= plan.total) {
      clearInterval(timer);
      if (!response.destroyed) response.end();
      return;
    }
    const size = Math.min(plan.chunk, plan.total - sent);
    response.write(plan.bytes === undefined ? Buffer.alloc(size, 1) : plan.bytes.subarray(sent, sent + size));
    sent += size;
  }, plan.everyMs);
  response.once('close', () => clearInterval(timer));
}

async function waitFor<T>(what: string, probe: () => Promise<T | null>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const source = new SourceServer();
/** Stands in for this process's admin port: the policy must never let a copy reach it. */
const admin = new SourceServer();
let stamp: BlobStamp;
let kuraSource: BlobStamp;

before(async () => {
  await source.start();
  await admin.start();
  stamp = await BlobStamp.start({
    copySource: {
      policy: parseCopySourcePolicy(['127.0.0.1/32'], [`127.0.0.1:${admin.port}`]),
      limits: { headersTimeoutMs: 3_000, idleTimeoutMs: 1_000, syncTimeoutMs: 4_000, asyncTimeoutMs: 60_000, copyFromUrlBytesMax: 2 * MiB, blockBytesMax: 2 * MiB, copyBytesMax: 16 * MiB },
      progressIntervalMs: 50,
    },
  });
  kuraSource = await BlobStamp.start();
  await stamp.client.getContainerClient('dest').create();
});
after(async () => {
  await kuraSource.stop();
  await stamp.stop();
  await admin.stop();
  await source.stop();
});

test('Copy Blob From URL from a plain HTTP server: byte-exact, headers and metadata from the source, MD5 checked', async (t) => {
  const target = stamp.client.getContainerClient('dest').getBlockBlobClient('from-plain');
  const copy = await target.syncCopyFromURL(source.url('/data/small'), { sourceContentMD5: createHash('md5').update(small).digest() });
  assert.equal(copy.copyStatus, 'success');
  assert.ok((await target.downloadToBuffer()).equals(small), 'byte-exact');
  const props = await target.getProperties();
  assert.deepEqual([props.contentType, props.metadata?.['origin'], props.copyStatus, props.copyId, props.contentLength], ['application/x-kura-test', 'plain', 'success', copy.copyId, small.length]);
  assert.deepEqual(Buffer.from(props.contentMD5 ?? []), createHash('md5').update(small).digest());
  await target.syncCopyFromURL(source.url('/data/small'), { sourceConditions: { ifMatch: '"v1"' }, metadata: { mine: 'yes' } });
  assert.deepEqual((await target.getProperties()).metadata, { mine: 'yes' }, 'request metadata wins over the source\'s');
  await expectError(() => target.syncCopyFromURL(source.url('/data/small'), { sourceContentMD5: Buffer.alloc(16) }), 400, 'Md5Mismatch');
  const bearer = stamp.client.getContainerClient('dest').getBlockBlobClient('bearer');
  await bearer.syncCopyFromURL(source.url('/bearer'), { sourceAuthorization: { scheme: 'Bearer', value: 'token-1' } });
  assert.ok((await bearer.downloadToBuffer()).equals(small));
  assert.equal(source.authorizations.at(-1), 'Bearer token-1', 'x-ms-copy-source-authorization forwarded as Authorization');
  t.diagnostic(`${small.length} bytes copied byte-exact; source MD5, x-ms-source-content-md5 (refused when wrong), Bearer forwarded`);
});

test('source errors: 404, 401, 412, 304, redirect answered as Azure (CannotVerifyCopySource with the source status)', async (t) => {
  const target = stamp.client.getContainerClient('dest').getBlockBlobClient('errors');
  const missing = await restError(() => target.syncCopyFromURL(source.url('/missing')));
  assert.deepEqual([missing.statusCode, missing.code], [404, 'CannotVerifyCopySource']);
  assert.equal(missing.response?.headers.get('x-ms-copy-source-status-code'), '404');
  assert.equal(missing.response?.headers.get('x-ms-copy-source-error-code'), 'BlobNotFound');
  await expectError(() => target.syncCopyFromURL(source.url('/bearer')), 401, 'CannotVerifyCopySource');
  await expectError(() => target.syncCopyFromURL(source.url('/data/small'), { sourceConditions: { ifMatch: '"other"' } }), 412, 'SourceConditionNotMet');
  await expectError(() => target.syncCopyFromURL(source.url('/data/small'), { sourceConditions: { ifNoneMatch: '"v1"' } }), 412, 'SourceConditionNotMet');
  const redirectHits = source.hits.get('/data/small') ?? 0;
  await expectError(() => target.syncCopyFromURL(source.url('/redirect')), 403, 'CannotVerifyCopySource');
  assert.equal(source.hits.get('/data/small') ?? 0, redirectHits, 'the redirect was not followed');
  await expectError(() => target.getProperties(), 404, 'BlobNotFound');
  t.diagnostic('404/401/412/304/302 from the source: 404, 401, 412, 412, 403; nothing written, no redirect followed');
});

test('limits: oversized (announced and chunked), trickling and stalled sources are cut and nothing is written', async (t) => {
  const target = stamp.client.getContainerClient('dest').getBlockBlobClient('limits');
  const announced = await restError(() => target.syncCopyFromURL(source.url('/oversized')));
  assert.deepEqual([announced.statusCode, announced.code], [409, 'CannotVerifyCopySource'], 'a Content-Length over the limit is refused before reading');
  const chunked = await restError(() => target.syncCopyFromURL(source.url('/chunked-endless')));
  assert.deepEqual([chunked.statusCode, chunked.code], [409, 'CannotVerifyCopySource'], 'a chunked body is cut at the limit');
  const trickleStart = Date.now();
  await expectError(() => target.syncCopyFromURL(source.url('/trickle')), 403, 'CannotVerifyCopySource');
  const trickleMs = Date.now() - trickleStart;
  const stallStart = Date.now();
  await expectError(() => target.syncCopyFromURL(source.url('/stall')), 403, 'CannotVerifyCopySource');
  const stallMs = Date.now() - stallStart;
  await expectError(() => target.getProperties(), 404, 'BlobNotFound');
  await waitFor('every fetch slot released', () => Promise.resolve(stamp.backend.copies.fetcher.stats.active === 0 ? true : null));
  // Bounded by the whole-fetch deadline (4 s) and the idle gap (1 s), not by the source's 100 s.
  assert.ok(trickleMs < 60_000 && stallMs < 60_000);
  t.diagnostic(`oversized: 409 (announced, chunked); trickle (1 MiB at 10 KiB/s) cut after ${trickleMs} ms (deadline 4 s); stall cut after ${stallMs} ms (idle 1 s); fetch slots in use after: 0`);
});

test('Put Block From URL: a source range staged and committed byte-exact', async (t) => {
  const target = stamp.client.getContainerClient('dest').getBlockBlobClient('blocks');
  const id = (n: number): string => Buffer.from(`block-${n}`).toString('base64');
  await target.stageBlockFromURL(id(1), source.url('/data/small'), 1000, 5000);
  await target.stageBlockFromURL(id(2), source.url('/data/small'), 0);
  await target.commitBlockList([id(1), id(2)]);
  assert.ok((await target.downloadToBuffer()).equals(Buffer.concat([small.subarray(1000, 6000), small])));
  await expectError(() => target.stageBlockFromURL(id(3), source.url('/data/small'), small.length + 10, 5), 416, 'CannotVerifyCopySource');
  await expectError(() => target.stageBlockFromURL(id(3), source.url('/missing'), 0), 404, 'CannotVerifyCopySource');
  t.diagnostic('range 1000+5000 and the whole source staged from the plain server; past-the-end range 416; missing 404');
});

test('Copy Blob (asynchronous) from outside Kura: pending with progress, then success byte-exact; failure mid-body reads failed', async (t) => {
  const container = stamp.client.getContainerClient('dest');
  const target = container.getBlockBlobClient('async-big');
  const started = await startCopy(target, source.url('/data/big'));
  assert.notEqual(started.copyId, '', 'x-ms-copy-id answered');
  const done = await waitFor('the copy to finish', async () => {
    const props = await target.getProperties();
    return props.copyStatus === 'pending' ? null : props;
  });
  assert.deepEqual([done.copyStatus, done.copyId, done.copyProgress, done.contentLength], ['success', started.copyId, `${big.length}/${big.length}`, big.length]);
  assert.ok((await target.downloadToBuffer()).equals(big), 'byte-exact');
  const poller = await container.getBlockBlobClient('async-poller').beginCopyFromURL(source.url('/data/small'), { intervalInMs: 50 });
  await poller.pollUntilDone();
  assert.ok((await container.getBlockBlobClient('async-poller').downloadToBuffer()).equals(small), 'the SDK poller sees pending then success');
  const broken = container.getBlockBlobClient('async-truncated');
  await startCopy(broken, source.url('/truncated'));
  const failed = await waitFor('the truncated copy to fail', async () => {
    const props = await broken.getProperties();
    return props.copyStatus === 'pending' ? null : props;
  });
  assert.equal(failed.copyStatus, 'failed');
  assert.equal(failed.contentLength, 0);
  await expectError(() => startCopy(broken, source.url('/missing')), 404, 'CannotVerifyCopySource');
  t.diagnostic(`9 MiB async copy: success, byte-exact; truncated source: failed (${failed.copyStatusDescription ?? ''}); stats ${JSON.stringify(stamp.backend.copies.stats)}`);
});

test('Abort Copy stops a pending transfer: aborted, zero length; a second copy onto a pending destination is refused', async (t) => {
  const target = stamp.client.getContainerClient('dest').getBlockBlobClient('aborted');
  const superseded = stamp.backend.copies.stats.superseded;
  const started = await startCopy(target, source.url('/slow-big'), { metadata: { keep: 'me' } });
  await waitFor('some progress', async () => {
    const props = await target.getProperties();
    return props.copyProgress !== undefined && !props.copyProgress.startsWith('0/') ? props : null;
  });
  await expectError(() => startCopy(target, source.url('/data/small')), 409, 'PendingCopyOperation');
  await expectError(() => target.abortCopyFromURL('00000000-0000-0000-0000-000000000000'), 409, 'CopyIdMismatch');
  await target.abortCopyFromURL(started.copyId);
  const props = await target.getProperties();
  assert.deepEqual([props.copyStatus, props.contentLength, props.metadata?.['keep']], ['aborted', 0, 'me']);
  await waitFor('the transfer to stop', () => Promise.resolve(stamp.backend.copies.running === 0 ? true : null));
  assert.equal(stamp.backend.copies.stats.superseded, superseded + 1, 'the transfer noticed and committed nothing');
  assert.equal((await target.getProperties()).copyStatus, 'aborted', 'still aborted after the transfer stopped');
  await expectError(() => target.abortCopyFromURL(started.copyId), 409, 'NoPendingCopyOperation');
  t.diagnostic(`aborted after progress ${String(props.copyProgress)}; transfer superseded, 0 bytes committed`);
});

/** Starts a copy of /slow-big (8 MiB trickled over ~6.4 s) onto `target` and waits for its first
 * progress write: the copy is then pending, its transfer running. */
async function pendingCopyOnto(target: BlockBlobClient): Promise<{ copyId: string; etag: string; lastModifiedMs: number }> {
  const { copyId } = await startCopy(target, source.url('/slow-big'));
  const props = await waitFor('some progress', async () => {
    const read = await target.getProperties();
    return read.copyProgress !== undefined && !read.copyProgress.startsWith('0/') ? read : null;
  });
  return { copyId, etag: props.etag ?? '', lastModifiedMs: props.lastModified?.getTime() ?? 0 };
}

async function copyEnded(target: BlockBlobClient): Promise<Awaited<ReturnType<BlockBlobClient['getProperties']>>> {
  return waitFor('the copy to end', async () => {
    const props = await target.getProperties();
    return props.copyStatus === 'pending' ? null : props;
  });
}

// Azure: the destination of a pending copy cannot be modified (its content, properties, metadata;
// nor snapshotted): 409 PendingCopyOperation. Before, each of these succeeded and rewrote the row,
// and the transfer (its writes If-Match that row) stopped: pending until read as failed.
test('writes Azure counts as modifications are refused while a copy is pending (409 PendingCopyOperation); the copy completes', async (t) => {
  const target = stamp.client.getContainerClient('dest').getBlockBlobClient('pending-modify');
  const superseded = stamp.backend.copies.stats.superseded;
  const pending = await pendingCopyOnto(target);
  const refused: Record<string, string> = {
    'Set Blob Metadata': await restErrorOf(() => target.setMetadata({ changed: 'yes' })),
    'Set Blob Properties': await restErrorOf(() => target.setHTTPHeaders({ blobContentType: 'text/plain' })),
    'Snapshot Blob': await restErrorOf(() => target.createSnapshot()),
    'Put Blob': await restErrorOf(() => target.upload(small, small.length)),
    'Put Block List': await restErrorOf(() => target.commitBlockList([])),
  };
  const during = await target.getProperties();
  const done = await copyEnded(target);
  t.diagnostic(`during the copy: ${JSON.stringify(refused)}; ETag ${pending.etag} -> ${String(during.etag)}; copy ${String(done.copyStatus)} ${String(done.copyProgress)}; transfers superseded ${stamp.backend.copies.stats.superseded - superseded}`);
  assert.deepEqual(Object.values(refused), Array<string>(5).fill('PendingCopyOperation'));
  assert.equal(during.etag, pending.etag, 'nothing written');
  assert.equal(done.copyStatus, 'success');
  assert.equal(stamp.backend.copies.stats.superseded, superseded);
  assert.ok((await target.downloadToBuffer()).equals(slowBig));
  await target.setMetadata({ changed: 'yes' });
  const afterMetadata = await target.getProperties();
  assert.deepEqual([afterMetadata.metadata?.['changed'], afterMetadata.copyStatus], ['yes', 'success'], 'modifiable once the copy is done; Set Blob Metadata keeps the copy properties');
  await target.setHTTPHeaders({ blobContentType: 'text/plain' });
  const afterProperties = await target.getProperties();
  t.diagnostic(`after the copy: Set Blob Metadata -> copy ${String(afterMetadata.copyStatus)}; Set Blob Properties -> copy ${String(afterProperties.copyStatus)} id ${String(afterProperties.copyId)}`);
  assert.deepEqual([afterProperties.copyId, afterProperties.copyStatus, afterProperties.copySource], [undefined, undefined, undefined], 'Azure: no x-ms-copy-* after Set Blob Properties on a concluded copy');
});

// Lease Blob, Set Blob Tags and Set Blob Tier leave the blob's ETag and Last-Modified as they are
// (Azure: not modifications), and a pending copy goes on; the completed blob keeps what they set.
test('Lease Blob, Set Blob Tags and Set Blob Tier while a copy is pending: ETag kept, the copy completes and keeps the lease, tags and tier', async (t) => {
  const target = stamp.client.getContainerClient('dest').getBlockBlobClient('pending-keep');
  const superseded = stamp.backend.copies.stats.superseded;
  const pending = await pendingCopyOnto(target);
  const lease = target.getBlobLeaseClient();
  await lease.acquireLease(-1);
  await target.setTags({ project: 'kura' }, { conditions: { leaseId: lease.leaseId } });
  await target.setAccessTier('Cool', { conditions: { leaseId: lease.leaseId } });
  await lease.renewLease();
  const during = await target.getProperties();
  const done = await copyEnded(target);
  const tags = (await target.getTags()).tags;
  t.diagnostic(`lease acquired + renewed, tags and tier set during the copy: ETag ${pending.etag} -> ${String(during.etag)} (${String(during.copyStatus)}); copy ${String(done.copyStatus)} ${String(done.copyProgress)}, lease ${String(done.leaseState)}, tier ${String(done.accessTier)}, tags ${JSON.stringify(tags)}; transfers superseded ${stamp.backend.copies.stats.superseded - superseded}`);
  assert.deepEqual([during.etag, during.lastModified?.getTime(), during.copyStatus], [pending.etag, pending.lastModifiedMs, 'pending']);
  assert.deepEqual([done.copyStatus, done.leaseState, done.accessTier, tags], ['success', 'leased', 'Cool', { project: 'kura' }]);
  assert.equal(stamp.backend.copies.stats.superseded, superseded);
  assert.ok((await target.downloadToBuffer()).equals(slowBig));
  const found = [];
  for await (const blob of stamp.client.findBlobsByTags(`project = 'kura'`)) found.push(blob.name);
  assert.ok(found.includes('pending-keep'), 'the tag index holds the tags set during the copy');
  await lease.releaseLease();
});

test('Delete Blob while a copy is pending ends it: the transfer stops and commits nothing', async (t) => {
  const target = stamp.client.getContainerClient('dest').getBlockBlobClient('pending-delete');
  const superseded = stamp.backend.copies.stats.superseded;
  await pendingCopyOnto(target);
  await target.delete();
  await waitFor('the transfer to stop', () => Promise.resolve(stamp.backend.copies.running === 0 ? true : null));
  t.diagnostic(`deleted during the copy: transfers superseded ${stamp.backend.copies.stats.superseded - superseded}; exists after: ${String(await target.exists())}`);
  assert.equal(stamp.backend.copies.stats.superseded, superseded + 1);
  assert.equal(await target.exists(), false);
});

// Azure does not count deleting a blob's snapshots as a change of the blob (its ETag and
// Last-Modified stay), so a copy onto it goes on. Before, the delete rewrote the blob row and the
// transfer, whose writes are If-Match that row, stopped: pending until read as failed. Past
// blobCleanupBatchRows (200) snapshots the delete still rewrites the row (it raises the snapshot
// horizon: H2 in docs/blob-schema.md), with the Azure ETag kept; the transfer rebases onto it.
for (const count of [3, 250]) {
  test(`Delete Blob of ${count} snapshots only, while a copy onto the blob is pending: the copy completes, ETag and Last-Modified kept`, async (t) => {
    const target = stamp.client.getContainerClient('dest').getBlockBlobClient(`snapshots-only-${count}`);
    await target.upload(small, small.length);
    const startedMs = Date.now();
    for (let index = 0; index < count; index++) await target.createSnapshot();
    const snapshotsMs = Date.now() - startedMs;
    const superseded = stamp.backend.copies.stats.superseded;
    const pending = await pendingCopyOnto(target);
    const deleteStartMs = Date.now();
    await target.delete({ deleteSnapshots: 'only' });
    const deleteMs = Date.now() - deleteStartMs;
    const after = await target.getProperties();
    const done = await copyEnded(target);
    const listed = [];
    for await (const item of stamp.client.getContainerClient('dest').listBlobsFlat({ prefix: `snapshots-only-${count}`, includeSnapshots: true })) listed.push(item);
    t.diagnostic(`${count} snapshots (taken in ${snapshotsMs} ms) deleted in ${deleteMs} ms during the copy: ETag ${pending.etag} -> ${String(after.etag)}; copy ${String(done.copyStatus)} ${String(done.copyProgress)}; transfers superseded ${stamp.backend.copies.stats.superseded - superseded}; listed ${listed.length} (snapshots ${listed.filter((item) => item.snapshot !== undefined).length})`);
    assert.equal(after.etag, pending.etag);
    assert.equal(after.lastModified?.getTime(), pending.lastModifiedMs);
    assert.equal(done.copyStatus, 'success');
    assert.equal(stamp.backend.copies.stats.superseded, superseded);
    assert.equal(listed.length, 1, 'the blob, no snapshot');
    assert.ok((await target.downloadToBuffer()).equals(slowBig));
  });
}

test('a pending copy whose transfer stopped beating for copyPendingStallMs reads as failed and may be replaced', async (t) => {
  const target = stamp.client.getContainerClient('dest').getBlockBlobClient('stale');
  const started = await startCopy(target, source.url('/slow-big'));
  // The transfer's front end "dies": its transfer stops without a last write (a live transfer
  // stamps its beat every progressIntervalMs, 50 ms here, with the clock moved on too, so it would
  // never read as stalled).
  stamp.backend.copies.abort(started.copyId);
  await waitFor('the transfer to stop', () => Promise.resolve(stamp.backend.copies.running === 0 ? true : null));
  stamp.backendClock.offsetMs = 61_000;
  try {
    const props = await target.getProperties();
    assert.deepEqual([props.copyStatus, props.copyId], ['failed', started.copyId]);
    assert.match(props.copyStatusDescription ?? '', /interrupted/);
    await expectError(() => target.abortCopyFromURL(started.copyId), 409, 'NoPendingCopyOperation');
    const replaced = await target.syncCopyFromURL(source.url('/data/small'));
    assert.equal(replaced.copyStatus, 'success', 'a stale pending copy does not block a new one');
  } finally {
    stamp.backendClock.offsetMs = 0;
  }
  assert.ok((await target.downloadToBuffer()).equals(small), 'the stopped transfer committed nothing over the new copy');
  t.diagnostic(`stale pending (61 s after its transfer's last beat) read as failed; replaced (stats ${JSON.stringify(stamp.backend.copies.stats)})`);
});

test('another Kura as the source (SAS URL): Copy Blob From URL, Put Block From URL and async Copy Blob, byte-exact', async (t) => {
  const remote = kuraSource.client.getContainerClient('remote');
  await remote.create();
  const blob = remote.getBlockBlobClient('photo.bin');
  const bytes = randomBytes(MiB + 3);
  await blob.upload(bytes, bytes.length, { blobHTTPHeaders: { blobContentType: 'image/x-test' }, metadata: { camera: 'kura' } });
  const credential = new StorageSharedKeyCredential(account, accountKeyBase64);
  const sas = generateBlobSASQueryParameters({ containerName: 'remote', blobName: 'photo.bin', permissions: BlobSASPermissions.parse('r'), expiresOn: new Date(Date.now() + 3_600_000) }, credential).toString();
  const url = `${blob.url}?${sas}`;
  const dest = stamp.client.getContainerClient('dest');
  const sync = dest.getBlockBlobClient('kura-sync');
  await sync.syncCopyFromURL(url);
  const props = await sync.getProperties();
  assert.ok((await sync.downloadToBuffer()).equals(bytes));
  assert.deepEqual([props.contentType, props.metadata?.['camera']], ['image/x-test', 'kura']);
  assert.ok(props.copySource?.includes('sig=REDACTED') === true, 'the SAS signature is not kept in x-ms-copy-source');
  const staged = dest.getBlockBlobClient('kura-block');
  await staged.stageBlockFromURL(Buffer.from('b1').toString('base64'), url, 100, 1000);
  await staged.commitBlockList([Buffer.from('b1').toString('base64')]);
  assert.ok((await staged.downloadToBuffer()).equals(bytes.subarray(100, 1100)));
  const poller = await dest.getBlockBlobClient('kura-async').beginCopyFromURL(url, { intervalInMs: 50 });
  await poller.pollUntilDone();
  assert.ok((await dest.getBlockBlobClient('kura-async').downloadToBuffer()).equals(bytes));
  await expectError(() => dest.getBlockBlobClient('kura-nosas').syncCopyFromURL(blob.url), 404, 'CannotVerifyCopySource');
  t.diagnostic(`${bytes.length} bytes from a second Kura stamp (port ${kuraSource.port}) by SAS: sync, block range, async; unsigned URL refused with the source's 404 (private container)`);
});

test('host policy: this process\'s admin endpoint is refused even when its range is allowed; the default refuses loopback by URL and at connect', async (t) => {
  const target = stamp.client.getContainerClient('dest').getBlockBlobClient('policy');
  await expectError(() => target.syncCopyFromURL(admin.url('/metrics')), 403, 'CannotVerifyCopySource');
  await expectError(() => target.syncCopyFromURL(`http://localhost:${admin.port}/metrics`), 403, 'CannotVerifyCopySource');
  assert.equal([...admin.hits.values()].reduce((sum, hits) => sum + hits, 0), 0, 'the admin endpoint saw no request');
  const publicOnly = new RemoteSourceFetcher();
  const any = new RemoteSourceFetcher({ policy: parseCopySourcePolicy(['any'], [`0.0.0.0:${admin.port}`]) });
  const before = source.hits.get('/data/small') ?? 0;
  const refusals: string[] = [];
  for (const [fetcher, url] of [[publicOnly, source.url('/data/small')], [publicOnly, `http://localhost:${source.port}/data/small`], [any, admin.url('/x')], [any, `http://localhost:${admin.port}/x`]] as const) {
    const error = await restErrorOf(() => fetcher.open({ source: { url, local: false }, conditions: {}, bytesMax: MiB, mode: 'sync' }));
    refusals.push(error);
  }
  const opened = await any.open({ source: { url: source.url('/data/small'), local: false }, conditions: {}, bytesMax: MiB, mode: 'sync' });
  opened.close();
  await publicOnly.close();
  await any.close();
  assert.equal(source.hits.get('/data/small') ?? 0, before + 1, 'only the allowed fetch reached the source');
  assert.equal([...admin.hits.values()].reduce((sum, hits) => sum + hits, 0), 0);
  assert.ok(refusals.every((code) => code === 'CannotVerifyCopySource'), refusals.join(','));
  t.diagnostic(`refused: admin by IP and by name (allowed range), loopback under "public" by IP and by name (at connect), admin under "any"; allowed: 1 fetch under "any"`);
});

/** Copy Blob (x-ms-copy-source, asynchronous) through the SDK's poller, without polling. */
async function startCopy(blob: BlobClient, url: string, options: { readonly metadata?: Record<string, string> } = {}): Promise<{ copyId: string }> {
  const poller = await blob.beginCopyFromURL(url, options);
  return { copyId: (poller.getOperationState() as BlobBeginCopyFromUrlPollState).copyId ?? '' };
}

async function restErrorOf(call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
  return 'no error';
}
