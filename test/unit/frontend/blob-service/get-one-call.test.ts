// Get Blob reads its container's row and the blob's row in one partition call (getMany, with the
// container's incarnation remembered by the front end: context.ts IncarnationHints), through the
// official SDK on a real in-process stamp. The hint is only a guess of the blob row's key: the
// container row read in the same call decides, so a container deleted (its old blob rows not yet
// swept) answers 404 ContainerNotFound, and one deleted and created again answers 404
// BlobNotFound for a blob of the old incarnation, never the old bytes.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { BlobStamp, expectError } from './blob-stamp.ts';

let stamp: BlobStamp;
before(async () => { stamp = await BlobStamp.start(); });
after(async () => { await stamp.stop(); });

/** Partition calls the front end made while `call` ran. */
async function partitionCalls(call: () => Promise<unknown>): Promise<number> {
  const before = stamp.tables.stats().requests;
  await call();
  return stamp.tables.stats().requests - before;
}

async function text(download: Promise<{ readableStreamBody?: NodeJS.ReadableStream }>): Promise<string> {
  const body = (await download).readableStreamBody;
  assert.ok(body !== undefined);
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8');
}

test('Get Blob: container and blob rows in one partition call; a stale incarnation never serves a deleted container\'s blobs', async (t) => {
  const container = stamp.client.getContainerClient('hinted');
  await container.create();
  const blob = container.getBlockBlobClient('b');
  await blob.upload('first incarnation', 17);
  const calls = {
    get: await partitionCalls(() => text(blob.download())),
    properties: await partitionCalls(() => blob.getProperties()),
  };
  assert.equal(await text(blob.download()), 'first incarnation');
  assert.equal(calls.get, 1, 'Get Blob of an inline blob: one partition call');
  assert.equal(calls.properties, 1, 'Get Blob Properties: one partition call');

  // Deleted, then created again under the same name (a new incarnation) before any read: the
  // hint still names the old incarnation, whose blob row is still stored (the sweeper's grace),
  // and the one call finds it; the container row read in the same call says it is not current.
  await container.delete();
  assert.ok(await stamp.rowCount('Bdevstoreaccount1\u0000hinted\u0000') >= 1, 'the deleted container\'s blob row is still stored');
  await container.create();
  const stale = await partitionCalls(() => expectError(() => blob.download(), 404, 'BlobNotFound'));
  assert.equal(stale, 2, 'a stale incarnation: the blob is read again under the current one');
  await blob.upload('second incarnation', 18);
  assert.equal(await text(blob.download()), 'second incarnation');
  assert.equal(await partitionCalls(() => text(blob.download())), 1);

  // Deleted (its blob rows not swept yet), hint current: the container row decides.
  const other = stamp.client.getContainerClient('hinted-gone');
  await other.create();
  const gone = other.getBlockBlobClient('b');
  await gone.upload('gone', 4);
  assert.equal(await text(gone.download()), 'gone');
  await other.delete();
  assert.ok(await stamp.rowCount('Bdevstoreaccount1\u0000hinted-gone\u0000') >= 1, 'the deleted container\'s blob row is still stored');
  await expectError(() => gone.download(), 404, 'ContainerNotFound');
  await expectError(() => gone.getProperties(), 404, 'ContainerNotFound');
  t.diagnostic(`partition calls: Get Blob ${calls.get}, Get Blob Properties ${calls.properties}, Get Blob under a stale incarnation ${stale} (404); deleted containers' blobs served: 0`);
});

test('Put Blob: a new blob in one partition call (its row If-None-Match *, the container row checked beside it); an overwrite of a blob written lately reads the rows; a deleted container refuses at once; a changed container row is decoded again', async (t) => {
  const container = stamp.client.getContainerClient('put-hinted');
  await container.create();
  const blob = container.getBlockBlobClient('b');
  await container.getBlockBlobClient('warm').upload('warm', 4);
  const put = await partitionCalls(() => blob.upload('x'.repeat(4096), 4096));
  assert.equal(put, 1, 'Put Blob of a new blob with an inline body: one transaction, no read');
  assert.equal(await text(blob.download()), 'x'.repeat(4096));
  const overwrite = await partitionCalls(() => blob.upload('y'.repeat(4096), 4096));
  // Put Block to a blob with staged blocks: the rows read before the body in one call, the body's
  // append, then stageBlock's blob, staging and uncommitted-row reads and its transaction.
  await blob.stageBlock(Buffer.from('b1').toString('base64'), 'one', 3);
  const stage = await partitionCalls(() => blob.stageBlock(Buffer.from('b2').toString('base64'), 'two', 3));
  assert.equal(stage, 6, 'Put Block: 1 read before the body + 1 append + 4 in stageBlock');
  assert.equal(overwrite, 2, 'an overwrite of a blob this front end wrote: the rows read in one call, then the transaction (no one-call try)');
  assert.equal(await text(blob.download()), 'y'.repeat(4096));

  // The container row changes (metadata, public access): the remembered decoded row is not used.
  await container.setMetadata({ color: 'blue' });
  assert.deepEqual((await container.getProperties()).metadata, { color: 'blue' });
  await blob.upload('after metadata', 14);
  await container.setMetadata({ color: 'red', size: 'large' });
  // The hint's container ETag is stale now (the write read the row before changing it): the
  // one-call Put is refused by its check and the Put reads the rows.
  const fresh = container.getBlockBlobClient('after-metadata');
  const changed = await partitionCalls(() => fresh.upload('after metadata', 14));
  assert.equal(changed, 3, 'a changed container row: the check refuses, the rows are read, then the transaction');
  assert.equal(await text(fresh.download()), 'after metadata');
  assert.equal(await partitionCalls(() => container.getBlockBlobClient('next').upload('next', 4)), 1, 'the hint read again: one call');
  assert.deepEqual((await container.getProperties()).metadata, { color: 'red', size: 'large' });
  await container.setAccessPolicy('blob');
  assert.equal((await container.getProperties()).blobPublicAccess, 'blob');
  await container.setAccessPolicy();
  assert.equal((await container.getProperties()).blobPublicAccess, undefined);

  // Deleted: the next Put is refused at once (no row under the dead incarnation); created again:
  // the Put lands in the new incarnation and the old blob is not there.
  await container.delete();
  await expectError(() => blob.upload('refused', 7), 404, 'ContainerNotFound');
  await expectError(() => container.getBlockBlobClient('new-in-deleted').upload('refused', 7), 404, 'ContainerNotFound');
  await container.create();
  await expectError(() => blob.getProperties(), 404, 'BlobNotFound');
  await blob.upload('second incarnation', 18);
  assert.equal(await text(blob.download()), 'second incarnation');
  assert.deepEqual((await container.getProperties()).metadata, {}, 'the new incarnation has no metadata');
  t.diagnostic(`partition calls: Put Blob of a new blob ${put}, overwrite ${overwrite}, new blob after a container change ${changed}, Put Block ${stage}; Put into a deleted container: 404 ContainerNotFound; metadata and public access changes seen at once`);
});
