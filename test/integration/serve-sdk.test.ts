// `kura serve` with the official SDK (@azure/storage-blob) from its printed connection string, as
// code written against Azurite would use it: create a container, upload, download, list, delete;
// a multi-block upload (uploadData cuts it into staged blocks + Put Block List) byte-exact.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { BlobServiceClient } from '@azure/storage-blob';
import { cleanupServes, KuraServe, tempDisks } from '../helpers/kura-serve.ts';

let serve: KuraServe;
before(async () => {
  serve = await KuraServe.start({ disks: await tempDisks(3, 'sdk') });
});
after(async () => {
  await serve.stop();
  await cleanupServes();
});

const sha = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

test('the SDK from the connection string: container, upload, download, list, delete', { timeout: 120_000 }, async (t) => {
  const client = BlobServiceClient.fromConnectionString(serve.connectionString);
  const container = client.getContainerClient('smoke');
  await container.create();
  const names = ['a.txt', 'dir/b.bin', 'dir/sub/c.bin'];
  const bodies = new Map(names.map((name, index) => [name, randomBytes(1000 + index * 70_001)]));
  for (const [name, body] of bodies) await container.getBlockBlobClient(name).upload(body, body.length);
  for (const [name, body] of bodies) {
    const downloaded = await container.getBlockBlobClient(name).downloadToBuffer();
    assert.equal(sha(downloaded), sha(body), `${name} byte-exact`);
  }
  const listed: string[] = [];
  for await (const blob of container.listBlobsFlat()) listed.push(blob.name);
  assert.deepEqual(listed, [...names].sort());
  const containers: string[] = [];
  for await (const item of client.listContainers()) containers.push(item.name);
  assert.ok(containers.includes('smoke'));
  const big = randomBytes(9 * 1024 * 1024 + 17);
  const started = performance.now();
  await container.getBlockBlobClient('big.bin').uploadData(big, { blockSize: 4 * 1024 * 1024, concurrency: 2 });
  assert.equal(sha(await container.getBlockBlobClient('big.bin').downloadToBuffer()), sha(big), 'multi-block blob byte-exact');
  t.diagnostic(`9 MiB multi-block upload + download: ${Math.round(performance.now() - started)} ms`);
  await container.getBlockBlobClient('a.txt').delete();
  assert.equal(await container.getBlockBlobClient('a.txt').exists(), false);
  await container.delete();
});
