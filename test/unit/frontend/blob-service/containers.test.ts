// Containers, listing and service properties through the real front end and the official SDK on
// a real in-process stamp: create/exists/properties/metadata/ACL/lease/delete, List Containers
// and List Blobs (prefix, delimiter, markers, include), Find Blobs by Tags, service properties.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { BlobStamp, expectError } from './blob-stamp.ts';

let stamp: BlobStamp;
before(async () => { stamp = await BlobStamp.start(); });
after(async () => { await stamp.stop(); });

test('containers: create, properties, metadata, ACL, lease, delete, re-create hides old blobs', async (t) => {
  const container = stamp.client.getContainerClient('life');
  const created = await container.create({ metadata: { team: 'storage' }, access: 'blob' });
  await expectError(() => container.create(), 409, 'ContainerAlreadyExists');
  const props = await container.getProperties();
  assert.equal(props.etag, created.etag);
  assert.deepEqual(props.metadata, { team: 'storage' });
  assert.equal(props.blobPublicAccess, 'blob');
  const meta = await container.setMetadata({ a: 'b' });
  assert.notEqual(meta.etag, created.etag);
  await container.setAccessPolicy('container', [{ id: 'policy1', accessPolicy: { permissions: 'r', startsOn: new Date('2026-01-01T00:00:00Z'), expiresOn: new Date('2027-01-01T00:00:00Z') } }]);
  const acl = await container.getAccessPolicy();
  assert.equal(acl.blobPublicAccess, 'container');
  assert.deepEqual(acl.signedIdentifiers.map((item) => [item.id, item.accessPolicy?.permissions]), [['policy1', 'r']]);
  assert.equal((await stamp.backend.storedPolicy('devstoreaccount1', 'life', 'policy1'))?.permission, 'r');
  const lease = container.getBlobLeaseClient();
  const acquired = await lease.acquireLease(-1);
  assert.equal((await container.getProperties()).etag, (await container.getProperties()).etag);
  assert.equal((await container.getProperties()).leaseState, 'leased');
  await expectError(() => container.delete(), 412, 'LeaseIdMissing');
  await expectError(() => container.delete({ conditions: { leaseId: '11111111-1111-1111-1111-111111111111' } }), 412, 'LeaseIdMismatchWithContainerOperation');
  await container.getBlockBlobClient('old').upload('old', 3);
  await container.delete({ conditions: { leaseId: acquired.leaseId ?? '' } });
  await expectError(() => container.getProperties(), 404, 'ContainerNotFound');
  await expectError(() => container.delete(), 404, 'ContainerNotFound');
  await container.create();
  await expectError(() => container.getBlockBlobClient('old').download(), 404, 'BlobNotFound');
  const listed = await container.listBlobsFlat().byPage().next();
  assert.equal(listed.done === true ? 0 : listed.value.segment.blobItems.length, 0, 'a re-created container is empty');
  t.diagnostic('container life cycle: 6 operations, 7 error paths as Azure');
});

test('List Containers: prefix, maxresults and markers, metadata', async () => {
  const names = ['list-a1', 'list-a2', 'list-a3', 'list-b1', 'list-b2'];
  for (const name of names) await stamp.client.getContainerClient(name).create({ metadata: { n: name } });
  const seen: string[] = [];
  for await (const page of stamp.client.listContainers({ prefix: 'list-', includeMetadata: true }).byPage({ maxPageSize: 2 })) {
    assert.ok(page.containerItems.length <= 2);
    for (const item of page.containerItems) {
      seen.push(item.name);
      assert.equal(item.metadata?.['n'], item.name);
    }
  }
  assert.deepEqual(seen, names);
  const onlyA: string[] = [];
  for await (const item of stamp.client.listContainers({ prefix: 'list-a' })) onlyA.push(item.name);
  assert.deepEqual(onlyA, ['list-a1', 'list-a2', 'list-a3']);
});

test('List Blobs: flat and hierarchical, markers never repeat or skip, snapshots and metadata included', async (t) => {
  const container = stamp.client.getContainerClient('listing');
  await container.create();
  const names = ['a', 'a/b', 'a/c/d', 'a/c/e', 'ab', 'b/x', 'c', 'z', 'é/unicode']; // UTF-8 byte order
  for (const name of names) await container.getBlockBlobClient(name).upload(name, Buffer.byteLength(name), { metadata: { k: 'v' } });
  const staged = container.getBlockBlobClient('a/staged');
  await staged.stageBlock(Buffer.from('00').toString('base64'), 'xx', 2);
  await staged.stageBlock(Buffer.from('/x').toString('base64'), 'yy', 2);
  const flat: string[] = [];
  for await (const page of container.listBlobsFlat({ includeMetadata: true }).byPage({ maxPageSize: 2 })) {
    for (const item of page.segment.blobItems) {
      flat.push(item.name);
      assert.deepEqual(item.metadata, { k: 'v' });
    }
  }
  assert.deepEqual(flat, names, 'every blob once, in order; blocks and staging rows are not blobs');
  const top: string[] = [];
  for await (const item of container.listBlobsByHierarchy('/')) top.push(item.kind === 'prefix' ? `P:${item.name}` : item.name);
  assert.deepEqual(top.sort(), ['P:a/', 'P:b/', 'P:é/', 'a', 'ab', 'c', 'z'].sort());
  const inA: string[] = [];
  for await (const item of container.listBlobsByHierarchy('/', { prefix: 'a/' })) inA.push(item.kind === 'prefix' ? `P:${item.name}` : item.name);
  assert.deepEqual(inA.sort(), ['P:a/c/', 'a/b'].sort());
  const paged: string[] = [];
  for await (const page of container.listBlobsByHierarchy('/').byPage({ maxPageSize: 1 })) {
    for (const item of page.segment.blobPrefixes ?? []) paged.push(`P:${item.name}`);
    for (const item of page.segment.blobItems) paged.push(item.name);
  }
  assert.deepEqual(paged.sort(), top.sort(), 'pages of one item add up to the same listing');
  const withUncommitted: string[] = [];
  for await (const item of container.listBlobsFlat({ includeUncommitedBlobs: true, prefix: 'a/' })) withUncommitted.push(item.name);
  assert.deepEqual(withUncommitted, ['a/b', 'a/c/d', 'a/c/e', 'a/staged']);
  const snapshot = await container.getBlockBlobClient('c').createSnapshot();
  const withSnapshots: string[] = [];
  for await (const item of container.listBlobsFlat({ includeSnapshots: true, prefix: 'c' })) withSnapshots.push(`${item.name}@${item.snapshot ?? ''}`);
  assert.deepEqual(withSnapshots, ['c@', `c@${snapshot.snapshot ?? ''}`]);
  await expectError(() => container.listBlobsFlat().byPage({ continuationToken: 'not base64!' }).next(), 400, 'InvalidQueryParameterValue');
  t.diagnostic(`List Blobs over ${names.length} blobs: flat, by hierarchy, one-item pages, uncommitted and snapshots included`);
});

test('Find Blobs by Tags, tags on blobs, x-ms-if-tags', async () => {
  const container = stamp.client.getContainerClient('tagged');
  await container.create();
  for (let i = 0; i < 6; i++) {
    await container.getBlockBlobClient(`t${i}`).upload('x', 1, { tags: { project: i % 2 === 0 ? 'kura' : 'other', n: String(i) } });
  }
  const blob = container.getBlockBlobClient('t0');
  const before = await blob.getProperties();
  await blob.setTags({ project: 'kura', stage: 'prod' });
  assert.equal((await blob.getProperties()).etag, before.etag, 'Set Blob Tags keeps the ETag');
  assert.deepEqual((await blob.getTags()).tags, { project: 'kura', stage: 'prod' });
  assert.equal((await blob.getProperties()).tagCount, 2);
  await expectError(() => blob.setMetadata({ x: 'y' }, { conditions: { tagConditions: '"stage" = \'dev\'' } }), 412, 'ConditionNotMet');
  await blob.setMetadata({ x: 'y' }, { conditions: { tagConditions: '"stage" = \'prod\'' } });
  const found: string[] = [];
  for await (const item of stamp.client.findBlobsByTags('"project" = \'kura\'')) found.push(`${item.containerName}/${item.name}`);
  assert.deepEqual(found.filter((name) => name.startsWith('tagged/')).sort(), ['tagged/t0', 'tagged/t2', 'tagged/t4']);
  const paged: string[] = [];
  for await (const page of container.findBlobsByTags('"n" >= \'2\' AND "project" = \'other\'').byPage({ maxPageSize: 1 })) for (const item of page.blobs) paged.push(item.name);
  assert.deepEqual(paged, ['t3', 't5']);
  await expectError(() => stamp.client.findBlobsByTags('"project" = ').next(), 400, 'InvalidQueryParameterValue');
});

test('service properties: defaults, merge of the elements present, CORS rules served to the edge', async () => {
  const initial = await stamp.client.getProperties();
  assert.deepEqual(initial.cors, []);
  await stamp.client.setProperties({ cors: [{ allowedOrigins: 'https://a.example', allowedMethods: 'GET,PUT', allowedHeaders: 'x-ms-*', exposedHeaders: '*', maxAgeInSeconds: 30 }] });
  await stamp.client.setProperties({ deleteRetentionPolicy: { enabled: true, days: 3 } });
  const merged = await stamp.client.getProperties();
  assert.equal(merged.cors?.length, 1, 'a later Set without <Cors> keeps the rules');
  assert.equal(merged.deleteRetentionPolicy?.days, 3);
  assert.deepEqual((await stamp.backend.corsRules('devstoreaccount1'))[0]?.allowedOrigins, ['https://a.example']);
  const info = await stamp.client.getAccountInfo();
  assert.equal(info.accountKind, 'StorageV2');
});
