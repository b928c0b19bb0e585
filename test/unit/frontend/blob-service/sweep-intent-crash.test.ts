// A front end that dies right after a commit that discards more rows than its own transaction
// deletes (docs/blob-schema.md, "Sweep intents"), on a real in-process stamp: a Put Block List
// consuming 300 uncommitted blocks (254 fit beside its own ops), a Delete Blob of a blob with 300
// staged blocks, a Put Blob replacing a paged block list, a Delete Snapshot of the only version
// naming a paged list. Before sweep intents each left its rest dead for the blob's lifetime (no
// later write of the blob sweeps them); now the commit is preceded by a durable intent, and the
// background sweeper (ContainerSweeper's tick) finishes the sweep: 0 dead rows, 0 intents left.
// Also the writer dying between its intent and its commit: the sweeper rewrites the fence row (the
// staging row, or the blob row with its ETag and Last-Modified pinned: unchanged for clients) so the
// commit can never apply, then drops the intent.
import type { BlobGetPropertiesResponse, BlockBlobClient } from '@azure/storage-blob';
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Registry } from 'prom-client';
import { blobCleanupBatchRows, containerSweepGraceMs } from '../../../../src/constants.ts';
import { deadRows } from '../../../../src/frontend/blob-service/blob-sweep.ts';
import { ContainerSweeper, type SweepTick } from '../../../../src/frontend/blob-service/container-sweep.ts';
import type { BlobServiceContext } from '../../../../src/frontend/blob-service/context.ts';
import { auxPrefix, blobKey, blobPrefix, containerKey, sweepIntentPrefix } from '../../../../src/frontend/blob-service/keys.ts';
import { PartitionBlobBackend } from '../../../../src/frontend/blob-service/partition-blob-backend.ts';
import { decodeContainer } from '../../../../src/frontend/blob-service/records.ts';
import type { AccountName, BlobName, BlockId, ContainerName } from '../../../../src/frontend/model.ts';
import type { PartitionOp } from '../../../../src/partition/partition.ts';
import { registerBlobSweepMetrics } from '../../../../src/observability/blob-sweep-metrics.ts';
import { isStorageError } from '../../../../src/util/errors.ts';
import { callContext, requestBody } from '../../../../sim/blob-workload.ts';
import { TablesThatDie } from '../../../../sim/frontend-role.ts';
import { account } from '../helpers.ts';
import { BlobStamp } from './blob-stamp.ts';

let stamp: BlobStamp;
let ctx: BlobServiceContext;
before(async () => {
  stamp = await BlobStamp.start();
  ctx = { tables: stamp.tables, clock: stamp.backendClock, stats: { raceRetries: 0, raceExhausted: 0 } };
  await stamp.client.getContainerClient('intents').create();
});
after(async () => { await stamp.stop(); });

type BlobRef = { readonly account: AccountName; readonly container: ContainerName; readonly blob: BlobName; readonly conditions: Record<string, never> };
const blobRef = (blob: string): BlobRef => ({ account: account as AccountName, container: 'intents' as ContainerName, blob: blob as BlobName, conditions: {} });

function live(): PartitionBlobBackend {
  return new PartitionBlobBackend({ tables: stamp.tables, clock: stamp.backendClock });
}

/** A front end that dies right after its first transact for which `dieAfter` answers true. */
function dying(dieAfter: (ops: readonly PartitionOp[]) => boolean): { backend: PartitionBlobBackend; tables: TablesThatDie } {
  const tables = new TablesThatDie(stamp.tables, dieAfter);
  return { backend: new PartitionBlobBackend({ tables, clock: stamp.backendClock }), tables };
}

const endsWith = (suffix: string) => (ops: readonly PartitionOp[]): boolean => ops.some((op) => op.key.toString('latin1').endsWith(suffix));

async function stage(backend: PartitionBlobBackend, ref: BlobRef, count: number): Promise<BlockId[]> {
  const blockIds = Array.from({ length: count }, (_, index) => Buffer.from(`b${String(index).padStart(7, '0')}`, 'latin1').toString('base64') as BlockId);
  for (const blockId of blockIds) {
    const bytes = Buffer.from(blockId);
    await backend.blockBlob.putBlock({ kind: 'PutBlock', ...ref, blockId, contentLength: bytes.length, computeMd5: false }, requestBody(bytes), callContext());
  }
  return blockIds;
}

function commit(backend: PartitionBlobBackend, ref: BlobRef, blockIds: readonly BlockId[]): Promise<unknown> {
  const list = blockIds.map((id) => ({ kind: 'Latest' as const, id }));
  return backend.blockBlob.putBlockList({ kind: 'PutBlockList', ...ref, contentLength: 0, httpHeaders: {}, metadata: new Map(), tags: [] }, list, callContext());
}

async function keyOf(ref: BlobRef): Promise<Buffer> {
  const row = await stamp.tables.get(containerKey(ref.account, ref.container));
  assert.ok(row !== null);
  return blobKey(blobPrefix(ref.account, ref.container, decodeContainer(row).inc), ref.blob);
}

async function intentCount(): Promise<number> {
  const page = await stamp.tables.scan({ prefix: sweepIntentPrefix, limit: 100 });
  return page.items.filter((item) => item.kind === 'row').length;
}

async function untilDead(tables: TablesThatDie): Promise<void> {
  const started = performance.now();
  while (!tables.dead) {
    assert.ok(performance.now() - started < 60_000, 'the commit happened');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The crash's leftovers, then the background sweeper's tick: dead rows and intents before and after. */
async function sweptByBackground(t: { diagnostic(message: string): void }, ref: BlobRef, what: string): Promise<void> {
  const key = await keyOf(ref);
  const deadBefore = (await deadRows(ctx, key)).length;
  const intentsBefore = await intentCount();
  const tick = await new ContainerSweeper(ctx, { graceMs: 0 }).tick();
  const deadAfter = (await deadRows(ctx, key)).length;
  t.diagnostic(`${what}: after the crash ${deadBefore} dead rows, ${intentsBefore} intent(s); the sweeper's tick resolved ${tick.intents.resolved} (${tick.intents.rowsDeleted} rows deleted, ${tick.intents.fencesRewritten} fences rewritten); then ${deadAfter} dead rows, ${await intentCount()} intent(s)`);
  assert.equal(intentsBefore, 1, 'the commit left its intent');
  assert.equal(deadAfter, 0);
  assert.equal(await intentCount(), 0);
}

/** `write` run by a front end that dies right after putting its sweep intent; then one sweeper tick. */
/** A blob of `blockCount` committed blocks, its SDK client and its properties as clients see them now. */
async function committedBlob(name: string, blockCount: number): Promise<{ ref: BlobRef; backend: PartitionBlobBackend; client: BlockBlobClient; before: BlobGetPropertiesResponse }> {
  const ref = blobRef(name);
  const backend = live();
  await commit(backend, ref, await stage(backend, ref, blockCount));
  const client = stamp.client.getContainerClient(ref.container).getBlockBlobClient(ref.blob);
  return { ref, backend, client, before: await client.getProperties() };
}

async function abandonedAtIntent(write: (backend: PartitionBlobBackend) => Promise<unknown>): Promise<SweepTick> {
  const crash = dying((ops) => ops.some((op) => op.key[0] === sweepIntentPrefix[0]));
  void write(crash.backend);
  await untilDead(crash.tables);
  assert.equal(await intentCount(), 1);
  return new ContainerSweeper(ctx, { graceMs: 0 }).tick();
}

test('Put Block List consuming 300 uncommitted blocks: a front end dying after the commit leaves an intent the sweeper finishes', { timeout: 120_000 }, async (t) => {
  const ref = blobRef('big-gen');
  const staged = await stage(live(), ref, 300);
  const { backend, tables } = dying(endsWith('\0g'));
  void commit(backend, ref, staged.slice(0, 3));
  await untilDead(tables);
  const properties = await stamp.client.getContainerClient(ref.container).getBlockBlobClient(ref.blob).getProperties();
  assert.equal(properties.contentLength, 3 * 12, 'the commit is in');
  assert.ok((await deadRows(ctx, await keyOf(ref))).length > 0, 'the rest of the generation is dead until swept');
  await sweptByBackground(t, ref, 'Put Block List of 3 of 300 staged blocks');
});

test('Delete Blob of a blob with 300 staged blocks: the rows past its transaction are swept by the background', { timeout: 120_000 }, async (t) => {
  const ref = blobRef('big-delete');
  const backend = live();
  await commit(backend, ref, await stage(backend, ref, 1));
  await stage(backend, ref, 300);
  const crash = dying(endsWith(`\0${ref.blob}`));
  void crash.backend.blob.deleteBlob({ kind: 'DeleteBlob', ...ref }, callContext());
  await untilDead(crash.tables);
  assert.equal(await stamp.client.getContainerClient(ref.container).getBlockBlobClient(ref.blob).exists(), false, 'the delete is in');
  await sweptByBackground(t, ref, 'Delete Blob with 300 staged blocks');
});

test('a Put Blob replacing a paged block list, then a Delete Snapshot of the list\'s last version: each crash is swept by the background', { timeout: 120_000 }, async (t) => {
  const ref = blobRef('paged');
  const backend = live();
  await commit(backend, ref, await stage(backend, ref, 400));
  assert.equal(await intentCount(), 0, 'a writer that lives deletes its own intent');
  const replace = dying((ops) => ops.some((op) => op.kind === 'put' && op.key.toString('latin1').endsWith(`\0${ref.blob}`)));
  const body = Buffer.from('replaced');
  void replace.backend.blockBlob.putBlob({ kind: 'PutBlob', ...ref, contentLength: body.length, httpHeaders: {}, metadata: new Map(), tags: [] }, requestBody(body), callContext());
  await untilDead(replace.tables);
  await sweptByBackground(t, ref, 'Put Blob over a 400-block (paged) list');

  await commit(backend, ref, await stage(backend, ref, 400));
  const { snapshot } = await backend.blob.snapshotBlob({ kind: 'SnapshotBlob', ...ref, metadata: new Map() }, callContext());
  await commit(backend, ref, await stage(backend, ref, 1));
  assert.equal((await deadRows(ctx, await keyOf(ref))).length, 0, 'the snapshot keeps the paged list alive');
  const remove = dying(endsWith(`\0s${snapshot}`));
  void remove.backend.blob.deleteBlob({ kind: 'DeleteBlob', ...ref, snapshot }, callContext());
  await untilDead(remove.tables);
  await sweptByBackground(t, ref, 'Delete Snapshot of the paged list\'s last version');
});

/** Rows of the blob's range besides its own row (snapshots, the snapshot horizon, staging, pages). */
async function auxRowCount(ref: BlobRef): Promise<number> {
  let count = 0;
  let continuation: string | null = null;
  do {
    const page = await stamp.tables.scan({ prefix: auxPrefix(await keyOf(ref)), limit: 500, ...(continuation === null ? {} : { continuation }) });
    count += page.items.filter((item) => item.kind === 'row').length;
    continuation = page.continuation;
  } while (continuation !== null);
  return count;
}

/** A blob with 300 snapshots whose Delete Blob's front end dies right after the commit writes the
 * snapshot horizon: what clients list then (snapshot ids, 'base' for the blob) and the rows left. */
async function snapshotsDeletedByDyingWriter(name: string, deleteSnapshots: 'include' | 'only') {
  const { ref, backend, client } = await committedBlob(name, 1);
  for (let index = 0; index < 300; index++) await backend.blob.snapshotBlob({ kind: 'SnapshotBlob', ...ref, metadata: new Map() }, callContext());
  const crash = dying(endsWith('\0h'));
  void crash.backend.blob.deleteBlob({ kind: 'DeleteBlob', ...ref, deleteSnapshots }, callContext());
  await untilDead(crash.tables);
  const listed: string[] = [];
  for await (const item of stamp.client.getContainerClient(ref.container).listBlobsFlat({ includeSnapshots: true, prefix: ref.blob })) listed.push(item.snapshot ?? 'base');
  return { ref, client, listed, hidden: await auxRowCount(ref) };
}

test('Delete Blob of a blob with 300 snapshots, its front end dying after the commit: all gone for clients at once, the hidden rest swept by the background', { timeout: 120_000 }, async (t) => {
  const { ref, client, listed, hidden } = await snapshotsDeletedByDyingWriter('many-snapshots', 'include');
  assert.equal(await client.exists(), false);
  assert.equal(listed.length, 0, 'no snapshot listed');
  const tick = await new ContainerSweeper(ctx, { graceMs: 0 }).tick();
  t.diagnostic(`Delete Blob include of 300 snapshots, writer dead after the commit: 0 listed, ${hidden} rows left (hidden snapshots + horizon); the sweeper's tick deleted ${tick.intents.rowsDeleted}; then ${await auxRowCount(ref)} rows, ${await intentCount()} intent(s)`);
  assert.equal(hidden, 300 - blobCleanupBatchRows + 1);
  assert.equal(await auxRowCount(ref), 0);
  assert.equal(await intentCount(), 0);
});

test('Delete Blob of 300 snapshots only, its front end dying after the commit: the blob alone is listed, the sweeper leaves no row behind', { timeout: 120_000 }, async (t) => {
  const { ref, client, listed, hidden } = await snapshotsDeletedByDyingWriter('only-snapshots', 'only');
  await new ContainerSweeper(ctx, { graceMs: 0 }).tick();
  t.diagnostic(`Delete Blob only of 300 snapshots, writer dead after the commit: listed ${JSON.stringify(listed)}, ${hidden} rows hidden; after one sweeper tick ${await auxRowCount(ref)} rows, ${await intentCount()} intent(s)`);
  assert.equal(await client.exists(), true);
  assert.deepEqual(listed, ['base']);
  assert.equal(await auxRowCount(ref), 0);
  assert.equal(await intentCount(), 0);
});

test('a front end dying between its intent and its commit: the sweeper fences the commit out, unseen by clients', { timeout: 120_000 }, async (t) => {
  const { ref, backend, client, before } = await committedBlob('abandoned', 1);
  const staged = await stage(backend, ref, 300);
  const tick = await abandonedAtIntent((backend) => commit(backend, ref, staged.slice(0, 3)));
  const afterTick = await client.getProperties();
  t.diagnostic(`intent without its commit: ${tick.intents.fencesRewritten} fence rewritten, ${tick.intents.resolved} resolved, ${await intentCount()} intents left; ETag ${before.etag} -> ${afterTick.etag}`);
  assert.equal(tick.intents.fencesRewritten, 1);
  assert.equal(await intentCount(), 0);
  assert.equal(afterTick.etag, before.etag, 'the blob is unchanged for clients');
  assert.equal(afterTick.contentLength, before.contentLength);
  const list = await client.getBlockList('uncommitted');
  assert.equal(list.uncommittedBlocks?.length, 300, 'the staged generation is intact: the commit never applied');
});

test('a Put Blob over a paged list dying between its intent and its commit: the blob row is the fence, rewritten unseen by clients', { timeout: 120_000 }, async (t) => {
  const { ref, client, before } = await committedBlob('abandoned-paged', 400);
  const rowBefore = await stamp.tables.get(await keyOf(ref));
  assert.ok(rowBefore !== null);
  const body = Buffer.from('never');
  const tick = await abandonedAtIntent((backend) => backend.blockBlob.putBlob({ kind: 'PutBlob', ...ref, contentLength: body.length, httpHeaders: {}, metadata: new Map(), tags: [] }, requestBody(body), callContext()));
  const afterTick = await client.getProperties();
  const committed = await client.getBlockList('committed');
  t.diagnostic(`Put Blob's intent without its commit: ${tick.intents.fencesRewritten} fence (the blob row) rewritten, ${await intentCount()} intents left; ETag ${before.etag} -> ${afterTick.etag}, Last-Modified kept: ${afterTick.lastModified?.getTime() === before.lastModified?.getTime()}, ${committed.committedBlocks?.length} committed blocks`);
  assert.equal(tick.intents.fencesRewritten, 1);
  assert.equal(await intentCount(), 0);
  assert.equal(afterTick.etag, before.etag);
  assert.equal(afterTick.lastModified?.getTime(), before.lastModified?.getTime());
  assert.equal(committed.committedBlocks?.length, 400, 'the paged list is still the blob');
  assert.equal((await deadRows(ctx, await keyOf(ref))).length, 0);
  // The dead writer's commit, had it been sent late, was conditional on the row's ETag it read: refused now.
  await assert.rejects(stamp.tables.transact([{ kind: 'put', key: rowBefore.key, columns: rowBefore.columns, ifMatch: rowBefore.etag }]), (error: unknown) => isStorageError(error) && error.code === 'partition.condition_failed');
});

test('the sweep\'s metrics count each way an intent goes: its writer, a sweep, a fence rewrite; pending until a pass resolves them', { timeout: 120_000 }, async (t) => {
  const sweeping = live();
  const registry = new Registry();
  registerBlobSweepMetrics(registry, () => sweeping.background.counts());
  const scrape = async (): Promise<string> => (await registry.metrics()).split('\n').filter((line) => /^kura_(sweep_intents|container_sweep_ticks)/.test(line)).join('\n');
  const ref = blobRef('metrics-writer');
  await commit(sweeping, ref, (await stage(sweeping, ref, 300)).slice(0, 3));
  const applied = blobRef('metrics-applied');
  const appliedStaged = await stage(live(), applied, 300);
  const diesAfterCommit = dying(endsWith('\0g'));
  void commit(diesAfterCommit.backend, applied, appliedStaged.slice(0, 3));
  await untilDead(diesAfterCommit.tables);
  const { ref: fenced, backend } = await committedBlob('metrics-fenced', 1);
  const fencedStaged = await stage(backend, fenced, 300);
  const diesAtIntent = dying((ops) => ops.some((op) => op.key[0] === sweepIntentPrefix[0]));
  void commit(diesAtIntent.backend, fenced, fencedStaged.slice(0, 3));
  await untilDead(diesAtIntent.tables);

  await sweeping.sweeper.tick();
  const inGrace = await scrape();
  stamp.backendClock.offsetMs += containerSweepGraceMs;
  try {
    await sweeping.sweeper.tick();
  } finally {
    stamp.backendClock.offsetMs -= containerSweepGraceMs;
  }
  const resolved = await scrape();
  t.diagnostic(`two intents left by dead writers, first tick (in grace):\n${inGrace}\nafter the grace:\n${resolved}`);
  assert.match(inGrace, /^kura_sweep_intents_written_total 1$/m);
  assert.match(inGrace, /^kura_sweep_intents_resolved_total\{by="writer"\} 1$/m);
  assert.match(inGrace, /^kura_sweep_intents_pending 2$/m);
  assert.match(resolved, /^kura_sweep_intents_resolved_total\{by="sweep"\} 1$/m);
  assert.match(resolved, /^kura_sweep_intents_resolved_total\{by="fence_rewrite"\} 1$/m);
  assert.match(resolved, /^kura_sweep_intents_pending 0$/m);
  assert.match(resolved, /^kura_container_sweep_ticks_total 2$/m);
  assert.equal(await intentCount(), 0);
});

test('a Delete Blob of a blob whose snapshots hold more rows than its commit, dying between its intent and its commit: the snapshot row is the fence, the blob row is never rewritten', { timeout: 120_000 }, async (t) => {
  // More rows than the commit can hold beside its own ops: 10 snapshots each naming its own page
  // row (the 400-block list committed again), then 240 more snapshots (each an op of the commit).
  const ref = blobRef('delete-fenced-by-snapshot');
  const backend = live();
  const blockIds = await stage(backend, ref, 400);
  for (let i = 0; i < 250; i++) {
    if (i < 10) await commit(backend, ref, blockIds);
    await backend.blob.snapshotBlob({ kind: 'SnapshotBlob', ...ref, metadata: new Map() }, callContext());
  }
  const rowBefore = await stamp.tables.get(await keyOf(ref));
  assert.ok(rowBefore !== null);
  const tick = await abandonedAtIntent((dead) => dead.blob.deleteBlob({ kind: 'DeleteBlob', ...ref, deleteSnapshots: 'include' }, callContext()));
  const rowAfter = await stamp.tables.get(await keyOf(ref));
  t.diagnostic(`Delete Blob of a blob with 250 snapshots (10 page rows) dead at its intent: ${tick.intents.fencesRewritten} fence rewritten, ${await intentCount()} intents left; blob row ETag ${rowBefore.etag} -> ${rowAfter?.etag} (what an async copy's If-Match holds)`);
  assert.equal(tick.intents.fencesRewritten, 1);
  assert.equal(await intentCount(), 0);
  assert.equal(rowAfter?.etag, rowBefore.etag, 'the blob row is untouched: a copy writing it If-Match goes on');
  const versions: string[] = [];
  for await (const item of stamp.client.getContainerClient(ref.container).listBlobsFlat({ includeSnapshots: true, prefix: ref.blob })) versions.push(item.snapshot ?? 'base');
  assert.equal(versions.length, 251, 'the blob and its 250 snapshots are still there: the delete never applied');
});
