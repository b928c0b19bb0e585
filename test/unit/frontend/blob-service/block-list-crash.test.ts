// A front end that dies right after Put Block List's commit (docs/blob-schema.md, "Rows nothing
// refers to"), on a real in-process stamp: the commit wrote the blob row and deleted the staging
// row, and the front end's answer and everything after it never happen. Before the fix the
// consumed generation's uncommitted rows were dropped by a separate call after the commit, so this
// crash left them behind: dead rows (keeping their blocks' bytes alive, those the list did not use
// included) that no later Put Block or Put Block List of the blob sweeps (only Delete Blob did).
// Found by reading while giving the simulator a front-end role and a dead-row check
// (docs/simulation.md): the window is one partition call wide and no seed run hit it, so this test
// kills the front end exactly there (before the fix: 3 dead rows, still 3 after the next write).
// Now the commit deletes them in the same transaction when they fit in it, so there is no window:
// 0 dead rows after the crash, and the blob's next Put Block List leaves none either. The same for
// Delete Blob, whose sweep after the commit was the only thing removing the deleted blob's staged
// blocks (before: 2 dead rows after the crash; a new blob of that name is not swept unless deleted).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { deadRows } from '../../../../src/frontend/blob-service/blob-sweep.ts';
import { blobKey, blobPrefix, containerKey } from '../../../../src/frontend/blob-service/keys.ts';
import { PartitionBlobBackend } from '../../../../src/frontend/blob-service/partition-blob-backend.ts';
import { decodeContainer } from '../../../../src/frontend/blob-service/records.ts';
import type { AccountName, BlobName, BlockId, ContainerName } from '../../../../src/frontend/model.ts';
import { callContext, requestBody } from '../../../../sim/blob-workload.ts';
import { TablesThatDie } from '../../../../sim/frontend-role.ts';
import { account } from '../helpers.ts';
import { BlobStamp } from './blob-stamp.ts';

let stamp: BlobStamp;
before(async () => { stamp = await BlobStamp.start(); });
after(async () => { await stamp.stop(); });

const ref = { account: account as AccountName, container: 'crash-commit' as ContainerName, blob: 'staged' as BlobName, conditions: {} };
const other = { ...ref, blob: 'deleted' as BlobName };

async function stage(backend: PartitionBlobBackend, ids: readonly string[], blob = ref): Promise<BlockId[]> {
  const blockIds = ids.map((id) => Buffer.from(id.padEnd(8, '.'), 'latin1').toString('base64') as BlockId);
  for (const blockId of blockIds) {
    const bytes = Buffer.alloc(4096, blockId);
    await backend.blockBlob.putBlock({ kind: 'PutBlock', ...blob, blockId, contentLength: bytes.length, computeMd5: false }, requestBody(bytes), callContext());
  }
  return blockIds;
}

function commit(backend: PartitionBlobBackend, blockIds: readonly BlockId[], blob = ref): Promise<unknown> {
  const list = blockIds.map((id) => ({ kind: 'Latest' as const, id }));
  return backend.blockBlob.putBlockList({ kind: 'PutBlockList', ...blob, contentLength: 0, httpHeaders: {}, metadata: new Map(), tags: [] }, list, callContext());
}

async function deadRowCount(name: string = ref.blob): Promise<number> {
  const row = await stamp.tables.get(containerKey(ref.account, ref.container));
  assert.ok(row !== null);
  const blob = blobKey(blobPrefix(ref.account, ref.container, decodeContainer(row).inc), name);
  return (await deadRows({ tables: stamp.tables, clock: stamp.backendClock, stats: { raceRetries: 0, raceExhausted: 0 } }, blob)).length;
}

async function untilDead(tables: TablesThatDie): Promise<void> {
  const started = performance.now();
  while (!tables.dead) {
    assert.ok(performance.now() - started < 30_000, 'the commit happened');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test('a front end dying right after Put Block List commits leaves no dead uncommitted rows behind', { timeout: 60_000 }, async (t) => {
  await stamp.client.getContainerClient(ref.container).create();
  // The dying front end stages three blocks and commits two of them; it dies once the commit
  // that deletes the staging row is in (the blob row is written: the Put Block List happened).
  const dying = new TablesThatDie(stamp.tables, (ops) => ops.some((op) => op.kind === 'delete' && op.key.toString('latin1').endsWith('\0g')));
  const first = new PartitionBlobBackend({ tables: dying, clock: stamp.backendClock });
  const staged = await stage(first, ['a', 'b', 'c']);
  void commit(first, staged.slice(0, 2));
  await untilDead(dying);
  const properties = await stamp.client.getContainerClient(ref.container).getBlockBlobClient(ref.blob).getProperties();
  assert.equal(properties.contentLength, 2 * 4096, 'the commit is in: the blob holds the two blocks');
  const afterCrash = await deadRowCount();

  // The restarted front end writes the blob again: Put Block + Put Block List of a new generation.
  const restarted = new PartitionBlobBackend({ tables: stamp.tables, clock: stamp.backendClock });
  await commit(restarted, await stage(restarted, ['d']));
  const afterNextWrite = await deadRowCount();
  t.diagnostic(`dead uncommitted rows: ${afterCrash} right after the crash, ${afterNextWrite} after the blob's next Put Block + Put Block List`);
  assert.equal(afterCrash, 0, 'the consumed generation’s rows went with the commit');
  assert.equal(afterNextWrite, 0);
});

test('a front end dying right after Delete Blob commits leaves no dead uncommitted rows of the deleted blob', { timeout: 60_000 }, async (t) => {
  // The blob exists (one committed block) and has two more blocks staged; the front end deleting
  // it dies once the transaction deleting the blob row is in, before its sweep.
  const live = new PartitionBlobBackend({ tables: stamp.tables, clock: stamp.backendClock });
  await commit(live, await stage(live, ['x'], other), other);
  await stage(live, ['y', 'z'], other);
  const blobSuffix = `\0${other.blob}`;
  const dying = new TablesThatDie(stamp.tables, (ops) => ops.some((op) => op.kind === 'delete' && op.key.toString('latin1').endsWith(blobSuffix)));
  const first = new PartitionBlobBackend({ tables: dying, clock: stamp.backendClock });
  void first.blob.deleteBlob({ kind: 'DeleteBlob', ...other }, callContext());
  await untilDead(dying);
  const exists = await stamp.client.getContainerClient(ref.container).getBlockBlobClient(other.blob).exists();
  assert.equal(exists, false, 'the delete is in');
  const afterCrash = await deadRowCount(other.blob);
  t.diagnostic(`dead uncommitted rows of the deleted blob right after the crash: ${afterCrash}`);
  assert.equal(afterCrash, 0, 'the staged blocks went with the delete');
});
