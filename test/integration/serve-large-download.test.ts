// Large downloads through the embedded stamp's front end with the read buffer pool on (the
// default of `kura serve`): the 4 MiB blocks a Get Blob reads are given back to the pool once the
// socket took them and reused by the next reads, so a bug in who releases when would send one
// download's bytes in another's body. Three blobs of 16 MiB (Put Block 8 MiB ×2: four 4 MiB
// blocks each) are downloaded at once, twice, with ranges across block boundaries and a client
// that goes away mid-body in between; every byte is compared (SHA-256). The same with the pool
// switched off (readBufferPoolBytes 0): no pool, the same bytes. Each block is read through
// O_DIRECT via a staging buffer and copied into the pooled one: the same bytes as a buffered read.
// In-process stamp (RealDisk, real fsync, real sockets), the official SDK as the client.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { connectionString } from '../../src/cli/serve-command.ts';
import { developmentAccountKey, developmentAccountName } from '../../src/stamp/account-store.ts';
import { EmbeddedStamp } from '../../src/stamp/embedded-stamp.ts';
import { SystemClock } from '../../src/util/clock.ts';
import { payload, sha } from '../helpers/blob-ledger.ts';

const MiB = 1024 * 1024;
const roots: string[] = [];
after(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

async function startStamp(readBufferPoolBytes: number | undefined): Promise<{ stamp: EmbeddedStamp; box: ContainerClient }> {
  const root = await mkdtemp(join(tmpdir(), 'kura-large-get-'));
  roots.push(root);
  const stamp = await EmbeddedStamp.start({ disks: [join(root, 'disk0')], clock: new SystemClock(), blob: { host: '127.0.0.1', port: 0 }, ...(readBufferPoolBytes === undefined ? {} : { readBufferPoolBytes }) });
  const text = connectionString({ account: developmentAccountName, key: developmentAccountKey, host: '127.0.0.1', port: stamp.blobPort ?? 0 });
  const box = BlobServiceClient.fromConnectionString(text, { retryOptions: { maxTries: 1 } }).getContainerClient('large');
  await box.create();
  return { stamp, box };
}

async function uploadBlobs(box: ContainerClient, count: number): Promise<Map<string, Buffer>> {
  const blobs = new Map<string, Buffer>();
  for (let index = 0; index < count; index++) {
    const name = `big-${index}`;
    const bytes = payload(name, 16 * MiB - name.length - 1);
    const client = box.getBlockBlobClient(name);
    const ids = [0, 1].map((block) => Buffer.from(`block-${block}`).toString('base64'));
    await Promise.all(ids.map((id, block) => client.stageBlock(id, bytes.subarray(block * 8 * MiB, (block + 1) * 8 * MiB), 8 * MiB)));
    await client.commitBlockList(ids);
    blobs.set(name, bytes);
  }
  return blobs;
}

/** Every blob at once, whole, and a range across a block boundary: each compared byte for byte. */
async function downloadAndCompare(box: ContainerClient, blobs: ReadonlyMap<string, Buffer>): Promise<number> {
  const checks = [...blobs].flatMap(([name, bytes]) => [
    box.getBlobClient(name).downloadToBuffer().then((got) => assert.equal(sha(got), sha(bytes), `${name} whole`)),
    box.getBlobClient(name).downloadToBuffer(4 * MiB - 1000, 5 * MiB).then((got) => assert.ok(got.equals(bytes.subarray(4 * MiB - 1000, 9 * MiB - 1000)), `${name} range`)),
  ]);
  await Promise.all(checks);
  return [...blobs.values()].reduce((sum, bytes) => sum + bytes.length + 5 * MiB, 0);
}

/** A download the client abandons after its first chunk: the server must not give back a buffer it could not send. */
async function abandonDownload(box: ContainerClient, name: string): Promise<void> {
  const controller = new AbortController();
  const response = await box.getBlobClient(name).download(0, undefined, { abortSignal: controller.signal });
  const body = response.readableStreamBody;
  assert.ok(body !== undefined);
  await new Promise<void>((resolve) => {
    body.once('data', () => {
      controller.abort();
      resolve();
    });
    body.once('error', () => resolve());
  });
  body.on('error', () => undefined);
}

test('concurrent large downloads with the read buffer pool on: every byte as uploaded, buffers reused', { timeout: 180_000 }, async (t) => {
  const { stamp, box } = await startStamp(undefined);
  try {
    const blobs = await uploadBlobs(box, 3);
    const started = performance.now();
    let bytes = await downloadAndCompare(box, blobs);
    await abandonDownload(box, 'big-1');
    bytes += await downloadAndCompare(box, blobs);
    const seconds = (performance.now() - started) / 1000;
    const stats = stamp.readBuffers?.stats;
    assert.ok(stats !== undefined, 'kura serve pools its large reads by default');
    t.diagnostic(`${(bytes / MiB).toFixed(0)} MiB downloaded byte-exact in ${seconds.toFixed(1)} s (6 concurrent requests per round); pool: ${stats.allocated} allocated, ${stats.reused} reused, ${stats.released} released, ${stamp.directReads?.lent ?? 0} reads through O_DIRECT, ${(stats.freeBytes / MiB).toFixed(0)} MiB free`);
    assert.ok(stats.reused > 0, 'later reads took buffers earlier downloads gave back');
    assert.ok((stamp.directReads?.lent ?? 0) > 0, 'the large block reads went through O_DIRECT (docs/formats/extent-file.md, "Reading")');
    assert.ok(stats.released > 0);
  } finally {
    await stamp.stop();
  }
});

test('the pool switched off (readBufferPoolBytes 0): no pool, the same bytes', { timeout: 120_000 }, async (t) => {
  const { stamp, box } = await startStamp(0);
  try {
    const blobs = await uploadBlobs(box, 1);
    const bytes = await downloadAndCompare(box, blobs);
    assert.equal(stamp.readBuffers, null);
    t.diagnostic(`${(bytes / MiB).toFixed(0)} MiB downloaded byte-exact without a pool`);
  } finally {
    await stamp.stop();
  }
});
