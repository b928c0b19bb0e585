// Delete Blob of a blob with more snapshots than one partition transaction holds (~250), with the
// official SDK against a real `kura serve`: deleteSnapshots include removes the blob and all 300
// snapshots at once (listing with snapshots shows none, a snapshot's Get answers 404, a blob put
// again under the name has none); deleteSnapshots only removes the 300 and keeps the blob.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { cleanupServes, KuraServe, tempDisks } from '../helpers/kura-serve.ts';

const snapshotCount = 300;
let serve: KuraServe;
before(async () => {
  serve = await KuraServe.start({ disks: await tempDisks(3, 'snapshots') });
});
after(async () => {
  await serve.stop();
  await cleanupServes();
});

async function blobWithSnapshots(container: ContainerClient, name: string): Promise<string[]> {
  const blob = container.getBlockBlobClient(name);
  await blob.upload('version', 7);
  const snapshots: string[] = [];
  for (let index = 0; index < snapshotCount; index++) snapshots.push((await blob.createSnapshot()).snapshot ?? '');
  return snapshots;
}

async function listed(container: ContainerClient): Promise<{ snapshots: number; bases: number }> {
  const counts = { snapshots: 0, bases: 0 };
  for await (const item of container.listBlobsFlat({ includeSnapshots: true })) {
    if (item.snapshot === undefined || item.snapshot === '') counts.bases += 1; else counts.snapshots += 1;
  }
  return counts;
}

async function statusOf(read: () => Promise<unknown>): Promise<number> {
  try {
    await read();
    return 200;
  } catch (error) {
    return (error as { statusCode?: number }).statusCode ?? 0;
  }
}

test(`Delete Blob include: the blob and its ${snapshotCount} snapshots go together`, { timeout: 180_000 }, async (t) => {
  const container = BlobServiceClient.fromConnectionString(serve.connectionString).getContainerClient('include');
  await container.create();
  const snapshots = await blobWithSnapshots(container, 'many');
  assert.deepEqual(await listed(container), { snapshots: snapshotCount, bases: 1 });
  const started = performance.now();
  await container.getBlobClient('many').delete({ deleteSnapshots: 'include' });
  t.diagnostic(`Delete Blob with ${snapshotCount} snapshots: ${Math.round(performance.now() - started)} ms`);
  assert.deepEqual(await listed(container), { snapshots: 0, bases: 0 });
  for (const snapshot of [snapshots[0], snapshots[250], snapshots.at(-1)]) {
    assert.equal(await statusOf(() => container.getBlobClient('many').withSnapshot(snapshot ?? '').getProperties()), 404, `snapshot ${snapshot} 404`);
  }
  await container.getBlockBlobClient('many').upload('again', 5);
  const fresh = await container.getBlobClient('many').createSnapshot();
  assert.ok((fresh.snapshot ?? '') > (snapshots.at(-1) ?? ''), 'a new snapshot id is above the deleted ones');
  assert.deepEqual(await listed(container), { snapshots: 1, bases: 1 });
});

test(`Delete Blob only: ${snapshotCount} snapshots go, the blob stays`, { timeout: 180_000 }, async (t) => {
  const container = BlobServiceClient.fromConnectionString(serve.connectionString).getContainerClient('only');
  await container.create();
  const snapshots = await blobWithSnapshots(container, 'many');
  const started = performance.now();
  await container.getBlobClient('many').delete({ deleteSnapshots: 'only' });
  t.diagnostic(`Delete Blob snapshots only (${snapshotCount}): ${Math.round(performance.now() - started)} ms`);
  assert.deepEqual(await listed(container), { snapshots: 0, bases: 1 });
  assert.equal(await statusOf(() => container.getBlobClient('many').withSnapshot(snapshots.at(-1) ?? '').download()), 404);
  assert.equal((await container.getBlobClient('many').downloadToBuffer()).toString(), 'version');
  await container.getBlobClient('many').delete();
  assert.equal(await container.getBlobClient('many').exists(), false);
});
