// The descriptors RealDisk holds on a file besides its own (docs/formats/extent-file.md, "Writing"
// and "Reading"), counted in /proc/self/fd. What must hold: large reads through O_DIRECT hold
// their descriptor only while reads of the file are in flight (a sealed extent read with large
// reads keeps one descriptor, not two; concurrent reads share one); once the file system refused
// an O_DIRECT write (EINVAL before any byte: injected where RealDisk opens the descriptor, as no
// such file system is at hand), the file that met the refusal and every other file of the disk
// that had opened one drop their O_DIRECT descriptor. Figures: descriptors by flags, read time
// per 8 MiB with the descriptor opened and closed around each read.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { directWriteBytesMin } from '../../../src/constants.ts';
import { directReadStaging, directWriteStaging, RealDisk, type DescriptorOpener } from '../../../src/io/real-disk.ts';
import { SeededRandom } from '../../../src/util/random.ts';
import { descriptorsOf } from '../../helpers/descriptors.ts';

const MiB = 1024 * 1024;
const roots: string[] = [];

async function freshRoot(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'kura-descriptors-'));
  roots.push(root);
  return root;
}

/** O_DIRECT opens that succeed; the writes of every descriptor opened after the first `accepted` fail with EINVAL. */
function refusingAfter(accepted: number): DescriptorOpener {
  let opens = 0;
  return async (fullPath: string, flags: number): Promise<FileHandle> => {
    opens += 1;
    const handle = await open(fullPath, flags);
    if (opens <= accepted) return handle;
    const refuse = (): Promise<never> => Promise.reject(Object.assign(new Error('EINVAL: invalid argument, write'), { code: 'EINVAL', errno: -22, syscall: 'write' }));
    return new Proxy(handle, { get: (target, key) => (key === 'write' ? refuse : (Reflect.get(target, key) as unknown)) });
  };
}

/** The largest value `sample` gave while `work` ran (sampled at every turn of the event loop). */
async function mostWhile(work: Promise<unknown>, sample: () => number): Promise<number> {
  let done = false;
  void work.finally(() => { done = true; }).catch(() => undefined);
  let most = 0;
  while (!done) {
    most = Math.max(most, sample());
    await new Promise((resolve) => setImmediate(resolve));
  }
  return most;
}

const directCount = (path: string): number => descriptorsOf(path).filter((flags) => flags.direct).length;

describe('RealDisk: extra descriptors', () => {
  after(async () => {
    for (const root of roots) await rm(root, { recursive: true, force: true });
  });

  it('large reads hold an O_DIRECT descriptor only while they are in flight, one for concurrent reads', async () => {
    const root = await freshRoot();
    const staging = directReadStaging(3);
    const disk = new RealDisk({ root, directWrites: null, directReads: staging });
    const file = await disk.open('sealed.ext', { create: true });
    const bytes = new SeededRandom(20).bytes(24 * MiB);
    await file.writevSynced(0, [bytes]);
    await file.truncate(bytes.length); // a seal: the write's extra descriptor goes
    const path = join(root, 'sealed.ext');
    assert.deepEqual(descriptorsOf(path), [{ dsync: false, direct: false }], 'one descriptor after the seal');
    const startedMs = performance.now();
    for (let round = 0; round < 2; round++) {
      for (let position = 0; position < bytes.length; position += 8 * MiB) assert.ok((await file.read(position, 8 * MiB)).equals(bytes.subarray(position, position + 8 * MiB)));
    }
    const sequentialMs = (performance.now() - startedMs) / 6;
    const afterSequential = descriptorsOf(path);
    const reads = Promise.all([0, 1, 2].map((index) => file.read(index * 8 * MiB + 100, 7 * MiB)));
    const duringConcurrent = await mostWhile(reads, () => directCount(path));
    const results = await reads;
    results.forEach((read, index) => assert.ok(read.equals(bytes.subarray(index * 8 * MiB + 100, index * 8 * MiB + 100 + 7 * MiB))));
    const afterConcurrent = descriptorsOf(path);
    console.log(`# 6 sequential 8 MiB reads through O_DIRECT, descriptor opened and closed around each: ${sequentialMs.toFixed(2)} ms per read; after them ${afterSequential.length} descriptor(s); 3 concurrent reads held at most ${duringConcurrent} O_DIRECT descriptor(s), ${afterConcurrent.length} after; staging lent ${staging.lent}`);
    assert.equal(staging.lent, 9, 'every read went through O_DIRECT');
    assert.deepEqual(afterSequential, [{ dsync: false, direct: false }], 'no O_DIRECT descriptor left after sequential reads');
    assert.equal(duringConcurrent, 1, 'concurrent reads share one O_DIRECT descriptor');
    assert.deepEqual(afterConcurrent, [{ dsync: false, direct: false }], 'none left after concurrent reads');
    await file.close();
    assert.deepEqual(descriptorsOf(path), [], 'none after close');
  });

  it('an O_DIRECT write refused with EINVAL closes that descriptor, and those other files of the disk opened', async () => {
    const root = await freshRoot();
    const disk = new RealDisk({ root, directWrites: directWriteStaging(2), openDirect: refusingAfter(1) });
    const random = new SeededRandom(21);
    const early = await disk.open('early.ext', { create: true });
    await early.writevSynced(0, [random.bytes(directWriteBytesMin)]); // the disk still takes O_DIRECT: early's descriptor stays
    const earlyPath = join(root, 'early.ext');
    const earlyBefore = directCount(earlyPath);
    const refused = await disk.open('refused.ext', { create: true });
    const refusedBytes = random.bytes(2 * MiB + 5);
    await refused.writevSynced(0, [refusedBytes]);
    const refusedPath = join(root, 'refused.ext');
    const refusedAfter = descriptorsOf(refusedPath);
    const earlyBytes = random.bytes(directWriteBytesMin);
    await early.writevSynced(directWriteBytesMin, [earlyBytes]);
    const earlyAfter = descriptorsOf(earlyPath);
    console.log(`# mode ${disk.directWriteMode}; the refused file holds ${JSON.stringify(refusedAfter)}; the earlier file held ${earlyBefore} O_DIRECT descriptor(s), after its next write ${JSON.stringify(earlyAfter)}`);
    assert.equal(disk.directWriteMode, 'refused');
    assert.equal(earlyBefore, 1, 'the earlier file wrote O_DIRECT before the refusal');
    assert.deepEqual(refusedAfter, [{ dsync: false, direct: false }, { dsync: true, direct: false }].sort(byDsync), 'the refused file: its own and the O_DSYNC descriptor');
    assert.deepEqual(earlyAfter.sort(byDsync), [{ dsync: false, direct: false }, { dsync: true, direct: false }], 'the earlier file dropped its O_DIRECT descriptor');
    assert.ok((await refused.read(0, refusedBytes.length)).equals(refusedBytes), 'the refused write landed through the O_DSYNC descriptor');
    assert.ok((await early.read(directWriteBytesMin, earlyBytes.length)).equals(earlyBytes));
    await early.close();
    await refused.close();
  });
});

function byDsync(left: { readonly dsync: boolean }, right: { readonly dsync: boolean }): number {
  return Number(left.dsync) - Number(right.dsync);
}
