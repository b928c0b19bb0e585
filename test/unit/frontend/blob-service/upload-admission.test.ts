// Many concurrent block uploads within the front end's body budget are queued, not refused
// (partition-client.ts, "Admission"): the in-process servers admit only a few appends at once
// (rpc in-flight limit 8 MiB here, 64 MiB in kura serve), as under bench/blob/memory-bound.ts's
// 64 concurrent 8 MiB blocks, where 23-26 blocks used to fail with 503 after the SDK's retries.
// 1. Through the SDK with no retry (maxTries 1): 24 concurrent 2 MiB Put Blocks all succeed; the
//    front end's client waited for its body bytes (admission) and the partition server never
//    answered "overloaded" to it.
// 2. A client allowed more than the server admits (several front ends on one server): the server
//    refuses some appends, the client backs off within the RPC deadline, and every append lands.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { BlobServiceClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { PartitionClient } from '../../../../src/partition/partition-client.ts';
import { SystemClock } from '../../../../src/util/clock.ts';
import { account, accountKeyBase64 } from '../helpers.ts';
import { BlobStamp } from './blob-stamp.ts';

const MiB = 1024 * 1024;

let stamp: BlobStamp;
before(async () => {
  stamp = await BlobStamp.start({ networkInFlightBytesMax: 8 * MiB, clientBodyBytesMax: 6 * MiB });
});
after(async () => { await stamp.stop(); });

test('24 concurrent 2 MiB Put Blocks through a server admitting 8 MiB: all succeed with no retry, none refused', { timeout: 120_000 }, async (t) => {
  const client = new BlobServiceClient(stamp.endpoint, new StorageSharedKeyCredential(account, accountKeyBase64), { retryOptions: { maxTries: 1 } });
  const container = client.getContainerClient('admission');
  await container.create();
  const block = randomBytes(2 * MiB);
  const before = stamp.tables.stats();
  const started = Date.now();
  const results = await Promise.allSettled(Array.from({ length: 24 }, (_, index) => container.getBlockBlobClient(`b-${index}`).stageBlock(Buffer.from('block-1').toString('base64'), block, block.length)));
  const failed = results.filter((result) => result.status === 'rejected');
  const stats = stamp.tables.stats();
  t.diagnostic(`24 x 2 MiB Put Block, server in-flight 8 MiB, client admission 6 MiB: ${24 - failed.length} ok, ${failed.length} failed in ${Date.now() - started} ms; admission waits ${stats.admissionWaits - before.admissionWaits}, overloaded answers ${stats.overloadedAnswers - before.overloadedAnswers}`);
  assert.deepEqual(failed.map((result) => String(result.reason)), [], 'no Put Block failed');
  assert.ok(stats.admissionWaits > before.admissionWaits, 'calls waited for body bytes instead of being sent');
  assert.equal(stats.overloadedAnswers, before.overloadedAnswers, 'the partition server never refused this front end');
  const list = await container.getBlockBlobClient('b-23').getBlockList('uncommitted');
  assert.equal(list.uncommittedBlocks?.[0]?.size, block.length);
});

test('a client sending more than a server admits backs off on "overloaded" until its appends land', { timeout: 120_000 }, async (t) => {
  const greedy = new PartitionClient({ metaStore: stamp.metaStore, network: stamp.network.endpoint('greedy-frontend'), clock: new SystemClock(), bodyBytesMax: 64 * MiB });
  const chunk = randomBytes(MiB);
  const started = Date.now();
  const refs = await Promise.all(Array.from({ length: 32 }, (_, index) => greedy.appendData(Buffer.from(`Bdevstoreaccount1\0admission\0greedy-${index}`), chunk)));
  const stats = greedy.stats();
  t.diagnostic(`32 concurrent 1 MiB appends from one client allowed 64 MiB to a server admitting 8 MiB: all ${refs.length} landed in ${Date.now() - started} ms after ${stats.overloadedAnswers} overloaded answers (retried with back-off, no attempt spent)`);
  assert.equal(refs.length, 32);
  assert.ok(refs.every((ref) => ref.length === MiB));
  assert.ok(stats.overloadedAnswers > 0, 'the server did refuse some appends');
  const first = refs[0];
  assert.ok(first !== undefined);
  assert.ok((await greedy.readData(Buffer.from('Bdevstoreaccount1\0admission\0greedy-0'), first)).equals(chunk), 'an append that waited out the refusals reads back');
});
