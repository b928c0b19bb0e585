// Sweep intents a dead writer left, resolved by a real `kura serve` started after it: the writer
// (a front end over these data directories) died 30 s before the restart, leaving 4 intents whose
// commits never applied (fence: the blob's staging row, its ETag unchanged: the sweeper must fence
// them out) and 4 whose commits did (fence row gone: the sweeper sweeps the blob). The intents are
// put through the in-process stamp on the stopped server's directories, as a dying writer leaves
// them; then `kura serve --admin` starts and /metrics is read every 200 ms (bounded: 120 s) until
// its sweeper has resolved all 8. Figure: seconds from ready to resolved. Before (the grace counted
// from the sweeper's first sight, which a restart starts again, and 60 s long): ~62 s; now the
// intents' own age (their `since`) counts and the grace is sweepIntentGraceMs (10 s): the first ticks.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { BlobServiceClient } from '@azure/storage-blob';
import { sweepIntentGraceMs } from '../../src/constants.ts';
import { blobKey, blobPrefix, containerKey, stagingKey, sweepIntentKey } from '../../src/frontend/blob-service/keys.ts';
import { decodeContainer } from '../../src/frontend/blob-service/records.ts';
import type { PartitionClient } from '../../src/partition/partition-client.ts';
import { EmbeddedStamp } from '../../src/stamp/embedded-stamp.ts';
import { SystemClock } from '../../src/util/clock.ts';
import { cleanupServes, freePort, KuraServe, tempDisks } from '../helpers/kura-serve.ts';

after(cleanupServes);

const account = 'devstoreaccount1';
const writerDiedAgoMs = 30_000;

/** Blob `staged-<i>` of container `intents` with 20 staged blocks each, through a real `kura serve`. */
async function stageBlobs(disks: readonly string[], count: number): Promise<void> {
  const serve = await KuraServe.start({ disks });
  try {
    const container = BlobServiceClient.fromConnectionString(serve.connectionString).getContainerClient('intents');
    await container.create();
    for (let index = 0; index < count; index++) {
      const blob = container.getBlockBlobClient(`staged-${index}`);
      for (let block = 0; block < 20; block++) await blob.stageBlock(Buffer.from(`block-${String(block).padStart(3, '0')}`).toString('base64'), Buffer.alloc(64, block), 64);
    }
  } finally {
    assert.equal(await serve.stop(), 0);
  }
}

/** An intent as a writer puts it (sweep-intents.ts): fence row and ETag, since = its put time. */
async function putIntent(tables: PartitionClient, blob: Buffer, fence: { readonly key: Buffer; readonly etag: string }, id: string): Promise<void> {
  await tables.transact([{ kind: 'put', key: sweepIntentKey(blob, id), ifNoneMatch: '*', columns: [
    { name: 'fence', value: { kind: 'bytes', value: fence.key } },
    { name: 'fenceEtag', value: { kind: 'string', value: fence.etag } },
    { name: 'since', value: { kind: 'int64', value: BigInt(Date.now() - writerDiedAgoMs) } },
  ] }]);
}

/** 4 intents of commits that never applied (staging row unchanged) and 4 of commits that did (fence row gone). */
async function leaveIntents(disks: readonly string[]): Promise<void> {
  const stamp = await EmbeddedStamp.start({ disks, clock: new SystemClock(), blob: null });
  try {
    const containerRow = await stamp.partitions.get(containerKey(account, 'intents'));
    assert.ok(containerRow !== null);
    const prefix = blobPrefix(account, 'intents', decodeContainer(containerRow).inc);
    for (let index = 0; index < 4; index++) {
      const blob = blobKey(prefix, `staged-${index}`);
      const staging = await stamp.partitions.get(stagingKey(blob));
      assert.ok(staging !== null);
      await putIntent(stamp.partitions, blob, staging, `00000000000000a${index}`);
      const applied = blobKey(prefix, `committed-${index}`);
      await putIntent(stamp.partitions, applied, { key: stagingKey(applied), etag: '0x1' }, `00000000000000b${index}`);
    }
  } finally {
    await stamp.stop();
  }
}

function resolvedBy(metrics: string, by: string): number {
  return Number(new RegExp(`^kura_sweep_intents_resolved_total\\{by="${by}",role="serve"\\} (\\d+)$`, 'm').exec(metrics)?.[1] ?? 0);
}

test('kura serve started after a writer died resolves its 8 sweep intents within its first ticks', { timeout: 240_000 }, async (t) => {
  const disks = await tempDisks(1, 'sweep-intents');
  await stageBlobs(disks, 4);
  await leaveIntents(disks);
  const adminPort = await freePort();
  const serve = await KuraServe.start({ disks, extraArgs: ['--admin', `127.0.0.1:${adminPort}`] });
  const readyAtMs = Date.now();
  let metrics = '';
  try {
    for (let polls = 0; polls < 600; polls++) {
      metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
      if (resolvedBy(metrics, 'sweep') + resolvedBy(metrics, 'fence_rewrite') >= 8) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    assert.equal(await serve.stop(), 0);
  }
  const tookMs = Date.now() - readyAtMs;
  t.diagnostic(`8 intents of a writer dead ${writerDiedAgoMs / 1000} s before the start: resolved by sweep ${resolvedBy(metrics, 'sweep')}, by fence_rewrite ${resolvedBy(metrics, 'fence_rewrite')}, ${(tookMs / 1000).toFixed(1)} s after ready`);
  assert.equal(resolvedBy(metrics, 'fence_rewrite'), 4);
  assert.equal(resolvedBy(metrics, 'sweep'), 4);
  assert.ok(tookMs < sweepIntentGraceMs, `resolved within the intents' grace after the start (${tookMs} ms)`);
});
