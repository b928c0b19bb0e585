// P4 model test of inline bodies (docs/blob-schema.md, "Inline bodies"): one seeded random
// sequence of Put Blob (0 bytes, small, exactly the threshold, just above it; bursts in parallel so
// row commits share group commits), overwrite, Delete Blob, Snapshot Blob, Set Blob Metadata (a
// row rewrite that carries the body), Copy Blob from an inline source, ranged Get Blob, checkpoint
// (inline bodies spilled to the data stream), compaction + data GC, a crash of the partition server
// (kill -9: its lease expires, a new server loads every partition from checkpoint + log replay)
// and a move (clean stop, new owner), through the official SDK and the real front end on a real
// in-process stamp, run twice: inline on (64 KiB) and off (0). Every blob and snapshot is checked
// against a flat byte array after every step that can lose or move rows, and ETags must survive
// checkpoints and reloads (a spilled row is the same version). Expects 0 divergences in both modes.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ContainerClient } from '@azure/storage-blob';
import { inlineBodyBytesDefault } from '../../../../src/constants.ts';
import type { Partition } from '../../../../src/partition/partition.ts';
import { isStorageError } from '../../../../src/util/errors.ts';
import { SeededRandom } from '../../../../src/util/random.ts';
import { BlobStamp, pick } from './blob-stamp.ts';

const seed = Number(process.env['KURA_SEED'] ?? 20_261_122);
const steps = 90;
const names = ['a', 'b', 'c', 'd', 'e', 'f'];

interface Model {
  readonly blobs: Map<string, { content: Buffer; etag: string }>;
  readonly snapshots: { name: string; id: string; content: Buffer }[];
}

interface Figures {
  puts: number;
  inlineSized: number;
  deletes: number;
  snapshots: number;
  metadata: number;
  copies: number;
  rangeReads: number;
  checkpoints: number;
  collects: number;
  crashes: number;
  moves: number;
  checks: number;
  bytesVerified: number;
  rowsSpilled: number;
  bytesSpilled: number;
  spillAppends: number;
  divergences: string[];
}

/** Sizes around the threshold: empty, small, up to it, exactly it, just above it. */
function bodySize(random: SeededRandom): number {
  const roll = random.int(20);
  if (roll === 0) return 0;
  if (roll < 8) return 1 + random.int(4096);
  if (roll < 14) return 4096 + random.int(inlineBodyBytesDefault - 4096);
  if (roll < 16) return inlineBodyBytesDefault;
  return inlineBodyBytesDefault + 1 + random.int(40_000);
}

async function verifyAll(stamp: BlobStamp, container: ContainerClient, model: Model, figures: Figures, when: string, etags: boolean): Promise<void> {
  for (const name of names) {
    const expected = model.blobs.get(name);
    const client = container.getBlobClient(name);
    if (expected === undefined) {
      if (await client.exists()) figures.divergences.push(`${when}: ${name} exists, the model deleted it`);
      continue;
    }
    const actual = await client.downloadToBuffer();
    figures.checks += 1;
    figures.bytesVerified += actual.length;
    if (!actual.equals(expected.content)) figures.divergences.push(`${when}: ${name} ${actual.length} bytes, model ${expected.content.length}`);
    if (etags) {
      const etag = (await client.getProperties()).etag ?? '';
      if (etag !== expected.etag) figures.divergences.push(`${when}: ${name} ETag ${etag}, acknowledged ${expected.etag}`);
    }
  }
  for (const snapshot of model.snapshots) {
    const actual = await container.getBlobClient(snapshot.name).withSnapshot(snapshot.id).downloadToBuffer();
    figures.checks += 1;
    figures.bytesVerified += actual.length;
    if (!actual.equals(snapshot.content)) figures.divergences.push(`${when}: ${snapshot.name}@${snapshot.id} ${actual.length} bytes, model ${snapshot.content.length}`);
  }
  void stamp;
}

/** Runs a maintenance call on the served partitions; a partition the server is just reloading
 * (a re-grant after a crash closes and reopens it) is retried, bounded. */
async function maintain(stamp: BlobStamp, action: (partition: Partition) => Promise<unknown>): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      for (const partitionId of stamp.server.servingPartitions()) {
        const partition = stamp.server.servedPartition(partitionId);
        if (partition !== null) await action(partition);
      }
      return;
    } catch (error) {
      if (attempt >= 50 || !isStorageError(error) || !['partition.closed', 'partition.not_owner', 'partition.unavailable'].includes(error.code)) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

function addSpillFigures(stamp: BlobStamp, figures: Figures): void {
  for (const partitionId of stamp.server.servingPartitions()) {
    const stats = stamp.server.servedPartition(partitionId)?.stats();
    if (stats === undefined) continue;
    figures.rowsSpilled += stats.inlineRowsSpilled;
    figures.bytesSpilled += stats.inlineBytesSpilled;
    figures.spillAppends += stats.inlineSpillAppends;
  }
}

async function putBurst(container: ContainerClient, model: Model, random: SeededRandom, figures: Figures): Promise<void> {
  const chosen = [...new Set(Array.from({ length: 1 + random.int(5) }, () => pick(random, names)))];
  const bodies = chosen.map(() => random.bytes(bodySize(random)));
  const results = await Promise.all(chosen.map((name, index) => {
    const body = bodies[index] ?? Buffer.alloc(0);
    return container.getBlockBlobClient(name).upload(body, body.length);
  }));
  for (const [index, name] of chosen.entries()) {
    const content = bodies[index] ?? Buffer.alloc(0);
    model.blobs.set(name, { content, etag: results[index]?.etag ?? '' });
    figures.puts += 1;
    if (content.length > 0 && content.length <= inlineBodyBytesDefault) figures.inlineSized += 1;
  }
}

/** One random step; answers whether it may have moved rows (checkpoint, reload), so a full check follows. */
async function step(stamp: BlobStamp, container: ContainerClient, model: Model, random: SeededRandom, figures: Figures): Promise<boolean> {
  const roll = random.int(100);
  const existing = [...model.blobs.keys()];
  if (roll < 40 || existing.length === 0) {
    await putBurst(container, model, random, figures);
    return false;
  }
  const name = pick(random, existing);
  const current = model.blobs.get(name);
  if (current === undefined) throw new Error('picked a blob the model lacks');
  const client = container.getBlobClient(name);
  if (roll < 48) {
    await client.delete({ deleteSnapshots: 'include' });
    model.blobs.delete(name);
    model.snapshots.splice(0, model.snapshots.length, ...model.snapshots.filter((snapshot) => snapshot.name !== name));
    figures.deletes += 1;
  } else if (roll < 56) {
    const taken = await client.createSnapshot();
    model.snapshots.push({ name, id: taken.snapshot ?? '', content: current.content });
    model.blobs.set(name, { ...current, etag: taken.etag ?? current.etag });
    figures.snapshots += 1;
  } else if (roll < 63) {
    const result = await client.setMetadata({ step: String(figures.metadata) });
    model.blobs.set(name, { ...current, etag: result.etag ?? '' });
    figures.metadata += 1;
  } else if (roll < 70) {
    const target = pick(random, names);
    const result = await container.getBlobClient(target).syncCopyFromURL(client.url);
    if (result.copyStatus !== 'success') figures.divergences.push(`copy ${name} → ${target}: ${result.copyStatus}`);
    model.blobs.set(target, { content: current.content, etag: result.etag ?? '' });
    figures.copies += 1;
  } else if (roll < 80) {
    if (current.content.length === 0) return false;
    const start = random.int(current.content.length);
    const count = 1 + random.int(current.content.length - start);
    const actual = await client.downloadToBuffer(start, count);
    figures.rangeReads += 1;
    if (!actual.equals(current.content.subarray(start, start + count))) figures.divergences.push(`range ${name} [${start}, +${count}): differs`);
  } else if (roll < 88) {
    await maintain(stamp, (partition) => partition.checkpoint());
    figures.checkpoints += 1;
    return true;
  } else if (roll < 93) {
    addSpillFigures(stamp, figures);
    await maintain(stamp, async (partition) => {
      await partition.checkpoint();
      await partition.compact();
      await partition.collectGarbage();
    });
    figures.collects += 1;
    return true;
  } else {
    addSpillFigures(stamp, figures);
    const how = roll < 97 ? 'crash' : 'stop';
    await stamp.replaceServer(how);
    if (how === 'crash') figures.crashes += 1;
    else figures.moves += 1;
    return true;
  }
  return false;
}

async function runModel(t: { diagnostic: (message: string) => void }, inlineBodyBytesMax: number): Promise<Figures> {
  const stamp = await BlobStamp.start({ inlineBodyBytesMax, leaseTtlMs: 1_000, partitionLimits: { dataGcGraceMs: 0, dataGcIntervalMs: 3_600_000 } });
  const figures: Figures = {
    puts: 0, inlineSized: 0, deletes: 0, snapshots: 0, metadata: 0, copies: 0, rangeReads: 0, checkpoints: 0, collects: 0, crashes: 0, moves: 0,
    checks: 0, bytesVerified: 0, rowsSpilled: 0, bytesSpilled: 0, spillAppends: 0, divergences: [],
  };
  try {
    const random = new SeededRandom(seed);
    const container = stamp.client.getContainerClient('inline-model');
    await container.create();
    const model: Model = { blobs: new Map(), snapshots: [] };
    for (let index = 0; index < steps; index++) {
      if (await step(stamp, container, model, random, figures)) await verifyAll(stamp, container, model, figures, `step ${index}`, true);
    }
    // Everything still inline is spilled and reloaded once more before the last check.
    await maintain(stamp, (partition) => partition.checkpoint());
    addSpillFigures(stamp, figures);
    await stamp.replaceServer('stop');
    await verifyAll(stamp, container, model, figures, 'end', true);
  } finally {
    await stamp.stop();
  }
  const mode = inlineBodyBytesMax === 0 ? 'inline OFF' : `inline ON (${inlineBodyBytesMax} bytes)`;
  t.diagnostic(`${mode}, seed ${seed}: ${figures.puts} Put Blob (${figures.inlineSized} of 1..64 KiB), ${figures.deletes} deletes, ${figures.snapshots} snapshots, ${figures.metadata} Set Metadata, ${figures.copies} copies, ${figures.rangeReads} range reads`);
  t.diagnostic(`${mode}: ${figures.checkpoints} checkpoints, ${figures.collects} compaction + GC passes, ${figures.crashes} crashes (kill -9, lease expiry), ${figures.moves + 1} moves; ${figures.checks} reads checked (${(figures.bytesVerified / 1048576).toFixed(1)} MiB), ${figures.divergences.length} divergences`);
  t.diagnostic(`${mode}: spilled at checkpoints ${figures.rowsSpilled} rows, ${(figures.bytesSpilled / 1048576).toFixed(2)} MiB in ${figures.spillAppends} data appends (counted on the servers before each reload)`);
  return figures;
}

test('model: Put Blob / overwrite / delete / snapshot / metadata / copy / checkpoint / crash / move with inline bodies on and off match a flat byte array', async (t) => {
  const on = await runModel(t, inlineBodyBytesDefault);
  const off = await runModel(t, 0);
  assert.deepEqual(on.divergences, [], `inline on, seed ${seed}`);
  assert.deepEqual(off.divergences, [], `inline off, seed ${seed}`);
  assert.ok(on.rowsSpilled > 0, 'inline on: checkpoints spilled inline bodies');
  assert.equal(off.rowsSpilled, 0, 'inline off: nothing inline to spill');
  assert.ok(on.crashes + on.moves > 0 && on.checkpoints > 0, 'the sequence crashed or moved and checkpointed');
});
