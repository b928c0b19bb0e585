// The O_DIRECT staging buffers of a three-disk embedded stamp are one pool for the process
// (src/stamp/embedded-stamp.ts; constants directWriteBuffersPerStamp): 8 MiB blocks uploaded
// through the front end, several blobs at once, go through O_DIRECT on every replica, the pool
// makes no more buffers than its bound (min(directWriteBuffers × disks, directWriteBuffersPerStamp))
// and every byte reads back as uploaded. In-process stamp (RealDisk, real fsync, real sockets), the
// official SDK as the client. Figures: large replica writes through the pool, buffers made.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BlobServiceClient } from '@azure/storage-blob';
import { connectionString } from '../../src/cli/serve-command.ts';
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
  const stamp = await EmbeddedStamp.start({ disks: [0, 1, 2].map((index) => join(root, `disk${index}`)), clock: new SystemClock(), blob: { host: '127.0.0.1', port: 0 } });
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
  } finally {
    await stamp.stop();
  }
});
