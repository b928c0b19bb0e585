// P4 model test of the Blob service: seeded random bursts of Put Block (in parallel on one blob,
// so the staging row's condition races), Put Block List (Latest / Committed / Uncommitted, reuse,
// reorder), Put Blob overwrites, overlapping Append Blocks (in parallel on one append blob) and
// snapshots, through the official SDK and the real front end on a real in-process stamp,
// checked after every burst against a flat byte-array model per blob and per snapshot. Between
// bursts every partition checkpoints, compacts and runs a data GC pass (no grace, small tail
// seals), so copy-forward rewrites blob, page, segment and uncommitted rows under the model.
// Every divergence is counted and printed with the seed; the test expects 0.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ContainerClient } from '@azure/storage-blob';
import { SeededRandom } from '../../../../src/util/random.ts';
import { BlobStamp, pick } from './blob-stamp.ts';

const seed = Number(process.env['KURA_SEED'] ?? 20_260_412);
const rounds = 20;
const blockBlobs = 4;
const appendBlobs = 3;

let stamp: BlobStamp;
before(async () => { stamp = await BlobStamp.start({ partitionLimits: { dataGcGraceMs: 0, dataGcTailSealBytes: 1024 * 1024, dataGcIntervalMs: 3_600_000 } }); });
after(async () => { await stamp.stop(); });

interface BlockModel {
  content: Buffer;
  committed: { readonly id: string; readonly bytes: Buffer }[];
  uncommitted: Map<string, Buffer>;
}

interface Figures {
  putBlocks: number;
  putBlockLists: number;
  putBlobs: number;
  appends: number;
  snapshots: number;
  bytesWritten: number;
  bytesVerified: number;
  checks: number;
  gcPasses: number;
  gcBytesCopied: number;
  gcExtentsDropped: number;
  divergences: string[];
}

function payload(random: SeededRandom, figures: Figures): Buffer {
  const size = random.int(40) === 0 ? 4 * 1024 * 1024 + random.int(300_000) : 1 + random.int(48 * 1024);
  figures.bytesWritten += size;
  return random.bytes(size);
}

async function blockBurst(container: ContainerClient, name: string, model: BlockModel, random: SeededRandom, figures: Figures): Promise<void> {
  const blob = container.getBlockBlobClient(name);
  if (random.int(4) === 0) {
    const bytes = payload(random, figures);
    await blob.upload(bytes, bytes.length);
    figures.putBlobs += 1;
    model.content = bytes;
    model.committed = [];
    return;
  }
  const staged = Array.from({ length: 1 + random.int(5) }, () => ({ id: Buffer.from(`id-${random.int(8)}`).toString('base64'), bytes: payload(random, figures) }));
  const unique = [...new Map(staged.map((block) => [block.id, block])).values()];
  await Promise.all(unique.map((block) => blob.stageBlock(block.id, block.bytes, block.bytes.length)));
  figures.putBlocks += unique.length;
  for (const block of unique) model.uncommitted.set(block.id, block.bytes);
  const choices = [...model.uncommitted.keys(), ...model.committed.map((block) => block.id)];
  const list = Array.from({ length: 1 + random.int(6) }, () => pick(random, choices));
  await blob.commitBlockList(list);
  figures.putBlockLists += 1;
  const committedById = new Map(model.committed.map((block) => [block.id, block.bytes]));
  model.committed = list.map((id) => ({ id, bytes: model.uncommitted.get(id) ?? committedById.get(id) ?? Buffer.alloc(0) }));
  model.content = Buffer.concat(model.committed.map((block) => block.bytes));
  model.uncommitted.clear();
}

async function appendBurst(container: ContainerClient, name: string, model: { content: Buffer }, random: SeededRandom, figures: Figures): Promise<void> {
  const blob = container.getAppendBlobClient(name);
  const payloads = Array.from({ length: 1 + random.int(6) }, () => random.bytes(1 + random.int(64 * 1024)));
  const results = await Promise.all(payloads.map((bytes) => blob.appendBlock(bytes, bytes.length)));
  figures.appends += payloads.length;
  const base = model.content.length;
  const grown = Buffer.alloc(base + payloads.reduce((sum, bytes) => sum + bytes.length, 0));
  model.content.copy(grown);
  const written = new Uint8Array(grown.length - base);
  for (const [index, result] of results.entries()) {
    const bytes = payloads[index] ?? Buffer.alloc(0);
    const offset = Number(result.blobAppendOffset);
    figures.bytesWritten += bytes.length;
    if (offset < base || offset + bytes.length > grown.length || written.subarray(offset - base, offset - base + bytes.length).some((b) => b !== 0)) {
      figures.divergences.push(`${name}: append acknowledged at ${offset} overlaps or leaves the model's range`);
      continue;
    }
    written.fill(1, offset - base, offset - base + bytes.length);
    bytes.copy(grown, offset);
  }
  model.content = grown;
}

async function verify(container: ContainerClient, name: string, expected: Buffer, figures: Figures, snapshot?: string): Promise<void> {
  const client = container.getBlobClient(name);
  const target = snapshot === undefined ? client : client.withSnapshot(snapshot);
  const actual = await target.downloadToBuffer();
  figures.checks += 1;
  figures.bytesVerified += actual.length;
  if (!actual.equals(expected)) figures.divergences.push(`${name}${snapshot === undefined ? '' : `@${snapshot}`}: ${actual.length} bytes, model ${expected.length}`);
}

test('model: random bursts of block, block-list, overwrite, overlapping append and snapshot writes match a flat byte array per blob', async (t) => {
  t.diagnostic(`seed ${seed}`);
  const random = new SeededRandom(seed);
  const container = stamp.client.getContainerClient('model');
  await container.create();
  const figures: Figures = { putBlocks: 0, putBlockLists: 0, putBlobs: 0, appends: 0, snapshots: 0, bytesWritten: 0, bytesVerified: 0, checks: 0, gcPasses: 0, gcBytesCopied: 0, gcExtentsDropped: 0, divergences: [] };
  const blocks = new Map<string, BlockModel>(Array.from({ length: blockBlobs }, (_, i) => [`block-${i}`, { content: Buffer.alloc(0), committed: [], uncommitted: new Map<string, Buffer>() }]));
  const appends = new Map(Array.from({ length: appendBlobs }, (_, i) => [`append-${i}`, { content: Buffer.alloc(0) }]));
  for (const name of appends.keys()) await container.getAppendBlobClient(name).create();
  for (const name of blocks.keys()) await container.getBlockBlobClient(name).upload('', 0);
  const snapshots: { name: string; id: string; content: Buffer }[] = [];
  for (let round = 0; round < rounds; round++) {
    await Promise.all([
      ...[...blocks].map(([name, model]) => blockBurst(container, name, model, random, figures)),
      ...[...appends].map(([name, model]) => appendBurst(container, name, model, random, figures)),
    ]);
    for (let taken = random.int(3); taken > 0; taken--) {
      const [name, model] = pick(random, [...blocks, ...appends]);
      const taken = await container.getBlobClient(name).createSnapshot();
      snapshots.push({ name, id: taken.snapshot ?? '', content: Buffer.from(model.content) });
      figures.snapshots += 1;
    }
    for (const [name, model] of [...blocks, ...appends]) await verify(container, name, model.content, figures);
    const gc = await stamp.collect();
    figures.gcPasses += gc.partitions;
    figures.gcBytesCopied += gc.bytesCopied;
    figures.gcExtentsDropped += gc.extentsDropped;
    if (round % 5 === 4) for (const snapshot of snapshots) await verify(container, snapshot.name, snapshot.content, figures, snapshot.id);
  }
  t.diagnostic(`${rounds} bursts: ${figures.putBlocks} Put Block, ${figures.putBlockLists} Put Block List, ${figures.putBlobs} Put Blob, ${figures.appends} Append Block (up to 6 at once per blob), ${figures.snapshots} snapshots`);
  t.diagnostic(`${(figures.bytesWritten / 1048576).toFixed(1)} MiB written, ${figures.checks} reads checked (${(figures.bytesVerified / 1048576).toFixed(1)} MiB) against the model: ${figures.divergences.length} divergences`);
  t.diagnostic(`${figures.gcPasses} GC passes between bursts: ${(figures.gcBytesCopied / 1048576).toFixed(1)} MiB copied forward, ${figures.gcExtentsDropped} data extents dropped`);
  t.diagnostic(`condition races retried: ${stamp.backend.stats().raceRetries}, exhausted: ${stamp.backend.stats().raceExhausted}; partition client ${JSON.stringify(stamp.tables.stats())}`);
  assert.deepEqual(figures.divergences, [], `seed ${seed}`);
});
