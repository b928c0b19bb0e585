// Partition data GC under the Blob service (docs/partition-gc.md, "References"; docs/blob-schema.md
// v2), through the official SDK on a real in-process stamp (three replicas on real disks):
// upload Put Blob blobs, staged blobs whose block lists exceed 16 KiB (paged lists), append blobs
// (one long enough to fill segment rows), uncommitted blocks and snapshots; then overwrite 45 %
// and delete 45 % of the data (the overwritten blobs' snapshots too), run checkpoint + compaction
// + GC passes, and check every remaining blob, snapshot and uncommitted block byte-exact.
// Figure: bytes on the three disks (extent files, journals, partition streams; not the MetaStore)
// ÷ (live bytes × 3), expected ≤ 1.5.

import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { ContainerClient } from '@azure/storage-blob';
import { SeededRandom } from '../../../../src/util/random.ts';
import { BlobStamp } from './blob-stamp.ts';

const seed = Number(process.env['KURA_SEED'] ?? 20_261_122);
const MiB = 1024 * 1024;

let stamp: BlobStamp;
before(async () => {
  stamp = await BlobStamp.start({ partitionLimits: { dataGcGraceMs: 0, dataGcTailSealBytes: 4 * MiB, dataGcIntervalMs: 3_600_000 } });
});
after(async () => { await stamp.stop(); });

/** Expected content of every blob and snapshot still live, by `name` or `name@snapshot`. */
type Live = Map<string, Buffer>;

async function diskBytes(directory: string): Promise<{ total: number; journal: number }> {
  const sizes = { total: 0, journal: 0 };
  for (const entry of await readdir(directory, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    if (path.includes(`${join(stamp.root, 'd0', 'meta')}`)) continue;
    const { size } = await stat(path);
    sizes.total += size;
    if (/journal|\.jnl$/.test(path)) sizes.journal += size;
  }
  return sizes;
}

async function inBatches<T>(items: readonly T[], size: number, each: (item: T) => Promise<void>): Promise<void> {
  for (let at = 0; at < items.length; at += size) await Promise.all(items.slice(at, at + size).map(each));
}

/** A block blob committed from `count` staged blocks with 60-byte ids (a list over 16 KiB). */
async function stageLargeList(container: ContainerClient, name: string, count: number, random: SeededRandom): Promise<Buffer> {
  const blob = container.getBlockBlobClient(name);
  const blocks = Array.from({ length: count }, (_, i) => ({ id: Buffer.from(`${name}-${String(i).padStart(40, '0')}`.padEnd(60, 'x').slice(0, 60)).toString('base64'), bytes: random.bytes(2048) }));
  await inBatches(blocks, 32, async (block) => { await blob.stageBlock(block.id, block.bytes, block.bytes.length); });
  await blob.commitBlockList(blocks.map((block) => block.id));
  return Buffer.concat(blocks.map((block) => block.bytes));
}

async function appendAll(container: ContainerClient, name: string, parts: readonly Buffer[]): Promise<Buffer> {
  const blob = container.getAppendBlobClient(name);
  await blob.create();
  for (const part of parts) await blob.appendBlock(part, part.length);
  return Buffer.concat(parts);
}

interface Workload {
  readonly live: Live;
  /** Uncommitted blocks left staged (block id → bytes) on blob `pending`. */
  readonly pending: Map<string, Buffer>;
  bytesWritten: number;
}

async function writeAll(container: ContainerClient, random: SeededRandom): Promise<Workload> {
  const work: Workload = { live: new Map(), pending: new Map(), bytesWritten: 0 };
  const plain = Array.from({ length: 40 }, (_, i) => `plain-${i}`);
  await inBatches(plain, 8, async (name) => {
    const bytes = random.bytes(MiB);
    await container.getBlockBlobClient(name).upload(bytes, bytes.length);
    work.live.set(name, bytes);
  });
  for (let i = 0; i < 4; i++) work.live.set(`staged-${i}`, await stageLargeList(container, `staged-${i}`, 300, random));
  for (let i = 0; i < 4; i++) work.live.set(`append-${i}`, await appendAll(container, `append-${i}`, Array.from({ length: 4 }, () => random.bytes(256 * 1024))));
  work.live.set('append-long', await appendAll(container, 'append-long', Array.from({ length: 300 }, () => random.bytes(512))));
  for (const [name, bytes] of [...work.live].filter(([name]) => name.startsWith('plain-')).slice(0, 8)) {
    const taken = await container.getBlobClient(name).createSnapshot();
    work.live.set(`${name}@${taken.snapshot ?? ''}`, bytes);
  }
  for (const blob of ['plain-0', 'plain-39']) {
    for (let i = 0; i < 4; i++) {
      const id = Buffer.from(`pending-${blob}-${i}`).toString('base64');
      const bytes = random.bytes(256 * 1024);
      await container.getBlockBlobClient(blob).stageBlock(id, bytes, bytes.length);
      if (blob === 'plain-39') work.pending.set(id, bytes);
    }
  }
  work.bytesWritten = [...work.live.values()].reduce((sum, bytes) => sum + bytes.length, 0) + 8 * 256 * 1024;
  return work;
}

/** Overwrites about 45 % and deletes about 45 % of the bytes (snapshots of changed blobs go too). */
async function churn(container: ContainerClient, work: Workload, random: SeededRandom): Promise<void> {
  const names = [...work.live.keys()].filter((name) => !name.includes('@') && name !== 'plain-39');
  for (const [index, name] of names.entries()) {
    if (index % 10 === 9) continue;
    const snapshots = [...work.live.keys()].filter((key) => key.startsWith(`${name}@`));
    if (index % 2 === 0) {
      await container.getBlobClient(name).delete({ deleteSnapshots: 'include' });
      work.live.delete(name);
    } else {
      const bytes = random.bytes(work.live.get(name)?.length ?? MiB);
      await container.getBlobClient(name).delete({ deleteSnapshots: 'include' });
      if (name.startsWith('append')) await appendAll(container, name, [bytes]);
      else await container.getBlockBlobClient(name).upload(bytes, bytes.length);
      work.live.set(name, bytes);
    }
    for (const key of snapshots) work.live.delete(key);
  }
}

async function verifyAll(container: ContainerClient, work: Workload): Promise<{ checked: number; bytes: number; divergences: string[] }> {
  const result = { checked: 0, bytes: 0, divergences: [] as string[] };
  for (const [key, expected] of work.live) {
    const [name = '', snapshot] = key.split('@');
    const client = container.getBlobClient(name);
    const actual = await (snapshot === undefined ? client : client.withSnapshot(snapshot)).downloadToBuffer();
    result.checked += 1;
    result.bytes += actual.length;
    if (!actual.equals(expected)) result.divergences.push(`${key}: ${actual.length} bytes, expected ${expected.length}`);
  }
  const list = await container.getBlockBlobClient('plain-39').getBlockList('uncommitted');
  if ((list.uncommittedBlocks?.length ?? 0) !== work.pending.size) result.divergences.push(`plain-39: ${list.uncommittedBlocks?.length ?? 0} uncommitted blocks, expected ${work.pending.size}`);
  return result;
}

test('data GC on the blob tables: overwrite 45 % and delete 45 % (paged lists, snapshots, uncommitted blocks, append segments), collect: every live byte reads back, disk ≤ 1.5 × live × replicas', async (t) => {
  t.diagnostic(`seed ${seed}`);
  const random = new SeededRandom(seed);
  const container = stamp.client.getContainerClient('collected');
  await container.create();
  const work = await writeAll(container, random);
  await churn(container, work, random);
  const liveBytes = [...work.live.values()].reduce((sum, bytes) => sum + bytes.length, 0) + [...work.pending.values()].reduce((sum, bytes) => sum + bytes.length, 0);
  const before = await diskBytes(stamp.root);
  const passes = [];
  for (let pass = 0; pass < 4; pass++) passes.push(await stamp.collect());
  const afterGc = await diskBytes(stamp.root);
  if (process.env['KURA_GC_FILES'] !== undefined) {
    for (const entry of await readdir(stamp.root, { withFileTypes: true, recursive: true })) {
      if (entry.isFile()) t.diagnostic(`${join(entry.parentPath, entry.name).slice(stamp.root.length)} ${(await stat(join(entry.parentPath, entry.name))).size}`);
    }
  }
  const checked = await verifyAll(container, work);
  const ratio = afterGc.total / (liveBytes * 3);
  t.diagnostic(`wrote ${(work.bytesWritten / MiB).toFixed(1)} MiB (+ churn); live ${(liveBytes / MiB).toFixed(1)} MiB in ${work.live.size} blobs and snapshots + ${work.pending.size} uncommitted blocks`);
  t.diagnostic(`GC passes: ${JSON.stringify(passes)}`);
  t.diagnostic(`disk (3 replicas, journals ${(afterGc.journal / MiB).toFixed(1)} MiB): ${(before.total / MiB).toFixed(1)} → ${(afterGc.total / MiB).toFixed(1)} MiB; disk ÷ (live × 3) = ${(before.total / (liveBytes * 3)).toFixed(2)} → ${ratio.toFixed(3)}`);
  t.diagnostic(`${checked.checked} blobs and snapshots read back (${(checked.bytes / MiB).toFixed(1)} MiB): ${checked.divergences.length} divergences`);
  assert.deepEqual(checked.divergences, []);
  assert.equal(passes.reduce((sum, pass) => sum + pass.opaqueRows, 0), 0, 'no v1 rows');
  assert.ok(ratio <= 1.5, `disk ÷ (live × replicas) = ${ratio}`);
  // The pending blocks still commit after GC moved them.
  const blob = container.getBlockBlobClient('plain-39');
  await blob.commitBlockList([...work.pending.keys()]);
  assert.ok((await blob.downloadToBuffer()).equals(Buffer.concat([...work.pending.values()])), 'uncommitted blocks survive GC and commit');
});
