// Leases (with the backend's clock moved), append blobs, snapshots, copy, tier, properties and
// delete through the real front end and the official SDK on a real in-process stamp.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { BlobStamp, expectError } from './blob-stamp.ts';

let stamp: BlobStamp;
before(async () => {
  stamp = await BlobStamp.start();
  await stamp.client.getContainerClient('objects').create();
});
after(async () => { await stamp.stop(); });

const other = '22222222-2222-2222-2222-222222222222';

test('blob leases: acquire, write with/without id, renew, change, break period on the clock, release', async (t) => {
  const blob = stamp.client.getContainerClient('objects').getBlockBlobClient('leased');
  const put = await blob.upload('v1', 2);
  const lease = blob.getBlobLeaseClient();
  const acquired = await lease.acquireLease(15);
  const leaseId = acquired.leaseId ?? '';
  assert.equal(acquired.etag, put.etag, 'a lease keeps the ETag');
  await expectError(() => blob.upload('v2', 2), 412, 'LeaseIdMissing');
  await expectError(() => blob.upload('v2', 2, { conditions: { leaseId: other } }), 412, 'LeaseIdMismatchWithBlobOperation');
  await expectError(() => blob.getBlobLeaseClient(other).acquireLease(15), 409, 'LeaseAlreadyPresent');
  await blob.upload('v2', 2, { conditions: { leaseId } });
  const props = await blob.getProperties();
  assert.deepEqual([props.leaseState, props.leaseStatus, props.leaseDuration], ['leased', 'locked', 'fixed']);
  stamp.backendClock.offsetMs += 16_000;
  assert.equal((await blob.getProperties()).leaseState, 'expired');
  await blob.upload('v3', 2);
  await expectError(() => blob.upload('v4', 2, { conditions: { leaseId } }), 412, 'LeaseLost');
  await lease.renewLease();
  assert.equal((await blob.getProperties()).leaseState, 'leased');
  const changed = await lease.changeLease(other);
  assert.equal(changed.leaseId, other);
  await expectError(() => blob.getBlobLeaseClient(leaseId).releaseLease(), 409, 'LeaseIdMismatchWithLeaseOperation');
  const broken = await lease.breakLease(10);
  assert.equal(broken.leaseTime, 10);
  assert.equal((await blob.getProperties()).leaseState, 'breaking');
  await expectError(() => blob.getBlobLeaseClient().acquireLease(15), 409, 'LeaseIsBreakingAndCannotBeAcquired');
  await expectError(() => lease.changeLease(leaseId), 409, 'LeaseIsBreakingAndCannotBeChanged');
  stamp.backendClock.offsetMs += 11_000;
  assert.equal((await blob.getProperties()).leaseState, 'broken');
  await expectError(() => lease.renewLease(), 409, 'LeaseIsBrokenAndCannotBeRenewed');
  await blob.upload('v5', 2);
  const infinite = await blob.getBlobLeaseClient().acquireLease(-1);
  assert.equal((await blob.getProperties()).leaseDuration, 'infinite');
  await blob.getBlobLeaseClient(infinite.leaseId ?? '').releaseLease();
  assert.equal((await blob.getProperties()).leaseState, 'available');
  await expectError(() => blob.getBlobLeaseClient(other).releaseLease(), 409, 'LeaseNotPresentWithLeaseOperation');
  await expectError(() => blob.delete({ conditions: { leaseId: other } }), 412, 'LeaseNotPresentWithBlobOperation');
  await expectError(() => stamp.client.getContainerClient('objects').getBlockBlobClient('nolease').getBlobLeaseClient().acquireLease(15), 404, 'BlobNotFound');
  t.diagnostic('lease transitions: acquire/renew/change/release/break, fixed expiry and break period on the injected clock, 12 error codes');
});

test('append blobs: create, append with position/max-size conditions, seal, committed block count', async () => {
  const blob = stamp.client.getContainerClient('objects').getAppendBlobClient('log');
  await blob.create({ metadata: { kind: 'log' } });
  const first = await blob.appendBlock('hello ', 6);
  assert.equal(first.blobAppendOffset, '0');
  const second = await blob.appendBlock('world', 5, { conditions: { appendPosition: 6 } });
  assert.equal(second.blobAppendOffset, '6');
  assert.equal(second.blobCommittedBlockCount, 2);
  await expectError(() => blob.appendBlock('!', 1, { conditions: { appendPosition: 3 } }), 412, 'AppendPositionConditionNotMet');
  await expectError(() => blob.appendBlock('!!', 2, { conditions: { maxSize: 12 } }), 412, 'MaxBlobSizeConditionNotMet');
  assert.equal((await blob.downloadToBuffer()).toString(), 'hello world');
  const props = await blob.getProperties();
  assert.deepEqual([props.blobType, props.blobCommittedBlockCount, props.contentLength], ['AppendBlob', 2, 11]);
  await blob.seal();
  assert.equal((await blob.getProperties()).isSealed, true);
  await expectError(() => blob.appendBlock('!', 1), 409, 'BlobIsSealed');
  const block = stamp.client.getContainerClient('objects').getBlockBlobClient('plain');
  await block.upload('x', 1);
  await expectError(() => stamp.client.getContainerClient('objects').getAppendBlobClient('plain').appendBlock('y', 1), 409, 'InvalidBlobType');
  await expectError(() => stamp.client.getContainerClient('objects').getAppendBlobClient('absent').appendBlock('y', 1), 404, 'BlobNotFound');
  await expectError(() => blob.createIfNotExists().then(() => blob.create({ conditions: { ifNoneMatch: '*' } })), 409, 'BlobAlreadyExists');
});

test('snapshots: read, delete with include/only, SnapshotsPresent, snapshot of an overwritten append blob', async () => {
  const container = stamp.client.getContainerClient('objects');
  const blob = container.getBlockBlobClient('snapped');
  await blob.upload('one', 3, { metadata: { v: '1' } });
  const first = await blob.createSnapshot();
  await blob.upload('two!', 4);
  const second = await blob.createSnapshot({ metadata: { tagged: 'yes' } });
  assert.notEqual(first.snapshot, second.snapshot);
  assert.equal((await blob.withSnapshot(first.snapshot ?? '').downloadToBuffer()).toString(), 'one');
  assert.deepEqual((await blob.withSnapshot(first.snapshot ?? '').getProperties()).metadata, { v: '1' });
  assert.deepEqual((await blob.withSnapshot(second.snapshot ?? '').getProperties()).metadata, { tagged: 'yes' });
  await expectError(() => blob.delete(), 409, 'SnapshotsPresent');
  await blob.withSnapshot(first.snapshot ?? '').delete();
  await expectError(() => blob.withSnapshot(first.snapshot ?? '').download(), 404, 'BlobNotFound');
  await blob.delete({ deleteSnapshots: 'only' });
  assert.equal((await blob.downloadToBuffer()).toString(), 'two!');
  await expectError(() => blob.withSnapshot(second.snapshot ?? '').getProperties(), 404, undefined);
  await blob.createSnapshot();
  await blob.delete({ deleteSnapshots: 'include' });
  await expectError(() => blob.getProperties(), 404, undefined);
  const log = container.getAppendBlobClient('snapped-log');
  await log.create();
  await log.appendBlock('aaa', 3);
  const logSnapshot = await log.createSnapshot();
  await log.create();
  await log.appendBlock('bbbb', 4);
  assert.equal((await log.withSnapshot(logSnapshot.snapshot ?? '').downloadToBuffer()).toString(), 'aaa', 'an overwrite does not change a snapshot');
  assert.equal((await log.downloadToBuffer()).toString(), 'bbbb');
});

test('copy, properties, metadata, tier, abort copy, delete', async () => {
  const container = stamp.client.getContainerClient('objects');
  const source = container.getBlockBlobClient('source');
  await source.upload('copy me', 7, { blobHTTPHeaders: { blobContentType: 'text/plain' }, metadata: { from: 'source' } });
  const target = container.getBlockBlobClient('target');
  const copy = await target.syncCopyFromURL(source.url);
  assert.equal(copy.copyStatus, 'success');
  assert.equal((await target.downloadToBuffer()).toString(), 'copy me');
  const props = await target.getProperties();
  assert.deepEqual([props.copyStatus, props.copyId, props.contentType, props.metadata?.['from']], ['success', copy.copyId, 'text/plain', 'source']);
  const poller = await container.getBlockBlobClient('target2').beginCopyFromURL(source.url);
  await poller.pollUntilDone();
  assert.equal((await container.getBlockBlobClient('target2').downloadToBuffer()).toString(), 'copy me');
  await expectError(() => target.abortCopyFromURL(copy.copyId ?? ''), 409, 'NoPendingCopyOperation');
  await expectError(() => target.syncCopyFromURL(`${container.url}/missing`), 404, 'BlobNotFound');
  await expectError(() => target.syncCopyFromURL('https://elsewhere.example/c/b'), 403, 'CannotVerifyCopySource');
  const set = await target.setHTTPHeaders({ blobContentType: 'application/json', blobCacheControl: 'no-cache' });
  assert.notEqual(set.etag, props.etag);
  const after = await target.getProperties();
  assert.deepEqual([after.contentType, after.cacheControl], ['application/json', 'no-cache']);
  await target.setMetadata({ z: '1' });
  assert.deepEqual((await target.getProperties()).metadata, { z: '1' });
  const beforeTier = (await target.getProperties()).etag;
  await target.setAccessTier('Cool');
  const cool = await target.getProperties();
  assert.deepEqual([cool.accessTier, cool.etag], ['Cool', beforeTier]);
  await target.setAccessTier('Archive');
  await expectError(() => target.download(), 409, 'BlobArchived');
  await target.setAccessTier('Hot');
  await expectError(() => container.getAppendBlobClient('snapped-log').setAccessTier('Cool'), 409, 'InvalidBlobType');
  await target.delete();
  await expectError(() => target.delete(), 404, 'BlobNotFound');
  await expectError(() => source.delete({ conditions: { ifMatch: '"0x1"' } }), 412, 'ConditionNotMet');
});
