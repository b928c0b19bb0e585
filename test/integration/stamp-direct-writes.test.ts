// The O_DIRECT staging buffers of a three-disk embedded stamp are one pool for the process
// (src/stamp/embedded-stamp.ts; constants directWriteBuffersPerStamp): 8 MiB blocks uploaded
// through the front end, several blobs at once, go through O_DIRECT on every replica, the pool
// makes no more buffers than its bound (min(directWriteBuffers × disks, directWriteBuffersPerStamp))
// and every byte reads back as uploaded; the disks' metrics (docs/metrics.md) count the large writes
// and reads by way. In-process stamp (RealDisk, real fsync, real sockets), the official SDK as the
// client. Figures: large replica writes through the pool, buffers made, the metrics.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BlobServiceClient } from '@azure/storage-blob';
import { Registry } from 'prom-client';
import { connectionString, stagingBufferCount } from '../../src/cli/serve-command.ts';
import { directWriteBuffersPerStamp } from '../../src/constants.ts';
import { developmentAccountKey, developmentAccountName } from '../../src/stamp/account-store.ts';
import { EmbeddedStamp } from '../../src/stamp/embedded-stamp.ts';
import { SystemClock } from '../../src/util/clock.ts';
import { payload, sha } from '../helpers/blob-ledger.ts';

const MiB = 1024 * 1024;
const roots: string[] = [];
after(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

test('a three-disk stamp shares one bounded pool of O_DIRECT staging buffers; 8 MiB blocks land byte-exact through it', { timeout: 180_000 }, async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'kura-direct-pool-'));
  roots.push(root);
  const registry = new Registry();
  const stamp = await EmbeddedStamp.start({ disks: [0, 1, 2].map((index) => join(root, `disk${index}`)), clock: new SystemClock(), blob: { host: '127.0.0.1', port: 0 }, registry });
  try {
    const text = connectionString({ account: developmentAccountName, key: developmentAccountKey, host: '127.0.0.1', port: stamp.blobPort ?? 0 });
    const box = BlobServiceClient.fromConnectionString(text, { retryOptions: { maxTries: 1 } }).getContainerClient('pool');
    await box.create();
    const blobs = new Map([0, 1, 2, 3].map((index) => [`big-${index}`, payload(`big-${index}`, 16 * MiB - 6)] as const));
    await Promise.all([...blobs].map(async ([name, bytes]) => {
      const client = box.getBlockBlobClient(name);
      const ids = [0, 1].map((block) => Buffer.from(`block-${block}`).toString('base64'));
      await Promise.all(ids.map((id, block) => client.stageBlock(id, bytes.subarray(block * 8 * MiB, (block + 1) * 8 * MiB), 8 * MiB)));
      await client.commitBlockList(ids);
    }));
    const pool = stamp.directWrites;
    assert.ok(pool !== null);
    t.diagnostic(`8 blocks of 8 MiB (4 blobs at once) on 3 disks: ${pool.lent} large replica writes took a staging buffer; ${pool.created} buffers made (bound ${directWriteBuffersPerStamp})`);
    assert.ok(pool.lent >= 8 * 3, 'every replica of every 8 MiB block went through O_DIRECT');
    assert.ok(pool.created <= directWriteBuffersPerStamp, 'one bound for the whole stamp');
    for (const [name, bytes] of blobs) assert.equal(sha(await box.getBlobClient(name).downloadToBuffer()), sha(bytes), name);
    const writes = await sumsByWay(registry, 'kura_disk_large_writes_total');
    const reads = await sumsByWay(registry, 'kura_disk_large_reads_total');
    const refused = await sumsByWay(registry, 'kura_disk_direct_io_refused', 'io');
    const staging = (await registry.getSingleMetric('kura_direct_staging_bytes')?.get())?.values.map(({ labels, value }) => `${String(labels['io'])} ${String(labels['state'])} ${(value / (1024 * 1024)).toFixed(2)} MiB`);
    t.diagnostic(`metrics over the 3 disks: large writes ${JSON.stringify(writes)}, large reads ${JSON.stringify(reads)}, O_DIRECT refused ${JSON.stringify(refused)}; staging pools ${JSON.stringify(staging)}`);
    assert.equal(writes['direct'], pool.lent, 'the metric counts each write that took a staging buffer');
    assert.ok((writes['direct'] ?? 0) >= 8 * 3 && (reads['direct'] ?? 0) >= 8, 'large writes and reads counted by way');
    assert.deepEqual(refused, { write: 0, read: 0 });
    assert.deepEqual(staging?.filter((text) => text.startsWith('write')), [`write made ${((pool.created * pool.bufferBytes) / MiB).toFixed(2)} MiB`, `write max ${((directWriteBuffersPerStamp * pool.bufferBytes) / MiB).toFixed(2)} MiB`], 'the write pool\'s resident bytes and bound');
  } finally {
    await stamp.stop();
  }
});

test('O_DIRECT switched off (directWriteBuffers and directReadBuffers 0, kura serve --direct-write-buffers 0 --direct-read-buffers 0): no pools, the same bytes', { timeout: 120_000 }, async (t) => {
  assert.deepEqual(['0', '16', '64'].map((text) => stagingBufferCount(text, '--direct-write-buffers')), [0, 16, 64]);
  assert.throws(() => stagingBufferCount('65', '--direct-write-buffers'), /--direct-write-buffers must be an integer 0\.\.64/);
  const root = await mkdtemp(join(tmpdir(), 'kura-direct-off-'));
  roots.push(root);
  const registry = new Registry();
  const stamp = await EmbeddedStamp.start({ disks: [join(root, 'disk0')], clock: new SystemClock(), blob: { host: '127.0.0.1', port: 0 }, registry, directWriteBuffers: 0, directReadBuffers: 0 });
  try {
    const text = connectionString({ account: developmentAccountName, key: developmentAccountKey, host: '127.0.0.1', port: stamp.blobPort ?? 0 });
    const box = BlobServiceClient.fromConnectionString(text, { retryOptions: { maxTries: 1 } }).getContainerClient('off');
    await box.create();
    const bytes = payload('off', 8 * MiB);
    await box.getBlockBlobClient('off').uploadData(bytes, { blockSize: 8 * MiB });
    assert.equal(sha(await box.getBlobClient('off').downloadToBuffer()), sha(bytes));
    const writes = await sumsByWay(registry, 'kura_disk_large_writes_total');
    const reads = await sumsByWay(registry, 'kura_disk_large_reads_total');
    t.diagnostic(`one 8 MiB block with O_DIRECT off: pools ${stamp.directWrites === null && stamp.directReads === null ? 'none' : 'made'}, large writes by way ${JSON.stringify(writes)}, large reads ${JSON.stringify(reads)}`);
    assert.ok(stamp.directWrites === null && stamp.directReads === null);
    assert.equal(reads['direct'], 0);
    assert.deepEqual(writes, { direct: 0, no_staging_buffer: 0, refused: 0 }, 'no large write went O_DIRECT or counted as a fallback: the disks have no O_DIRECT writes');
  } finally {
    await stamp.stop();
  }
});

/** A metric's values summed over nodes, by one label. */
async function sumsByWay(registry: Registry, name: string, label = 'way'): Promise<Record<string, number>> {
  const metric = registry.getSingleMetric(name);
  assert.ok(metric !== undefined, `${name} is registered`);
  const sums: Record<string, number> = {};
  for (const { labels, value } of (await metric.get()).values) {
    const key = String(labels[label]);
    sums[key] = (sums[key] ?? 0) + value;
  }
  return sums;
}
