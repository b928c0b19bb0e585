// The Disk contract (src/io/disk.ts), one suite run against every implementation: RealDisk in a
// fresh temporary directory (also with directReadBytesMin 1, so every read goes through O_DIRECT
// via an aligned staging buffer: docs/formats/extent-file.md, "Reading") and SimDisk. What passes here is what every layer above may rely
// on; fault behaviour that only SimDisk can inject is tested in test/unit/io/sim-disk.test.ts.
import { after, describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Disk } from '../../src/io/disk.ts';
import { directReadStaging, RealDisk } from '../../src/io/real-disk.ts';
import { SimDisk } from '../../src/io/sim-disk.ts';
import { readFileFully, writeFileDurably } from '../../src/io/durable-file.ts';
import { AssertionFailure } from '../../src/util/assert.ts';
import { isStorageError } from '../../src/util/errors.ts';
import type { StorageErrorCode } from '../../src/util/errors.ts';
import { SeededRandom } from '../../src/util/random.ts';

interface DiskFactory {
  readonly name: string;
  /** A fresh, empty disk for one test. */
  create(): Promise<Disk>;
  /** Called once after the suite. */
  cleanup(): Promise<void>;
}

function rejectsWith(code: StorageErrorCode): (error: unknown) => boolean {
  return (error) => {
    assert.ok(isStorageError(error, code), `expected ${code}, got ${String(error)}`);
    return true;
  };
}

const bytes = (text: string): Buffer => Buffer.from(text, 'utf8');

type FreshDisk = () => Promise<Disk>;

function diskContract(factory: DiskFactory): void {
  describe(`Disk contract: ${factory.name}`, () => {
    after(() => factory.cleanup());
    const fresh: FreshDisk = () => factory.create();
    fileContract(fresh);
    namespaceContract(fresh);
    durabilityContract(fresh, factory.name);
  });
}

/** Reads, writes, sizes, truncates and the open rules of one file. */
function fileContract(fresh: FreshDisk): void {
  it('reads back what was written; short reads only at end of file', async () => {
    const disk = await fresh();
    const file = await disk.open('a.dat', { create: true });
    await file.write(0, bytes('hello, '));
    await file.write(7, bytes('world'));
    assert.equal(await file.size(), 12);
    assert.deepEqual(await file.read(0, 12), bytes('hello, world'));
    assert.deepEqual(await file.read(7, 100), bytes('world'));
    assert.equal((await file.read(12, 10)).length, 0);
    assert.equal((await file.read(1000, 10)).length, 0);
    const view = new Uint8Array(Buffer.from('__view__')).subarray(2, 6);
    await file.write(12, view);
    assert.deepEqual(await file.read(12, 4), bytes('view'), 'a Uint8Array view writes its own bytes only');
    await file.sync();
    await file.close();
  });

  it('writev writes its parts back to back, views included, over and past the end', async () => {
    const disk = await fresh();
    const file = await disk.open('v.dat', { create: true });
    await file.write(0, bytes('0123456789'));
    const big = Buffer.alloc(3 * 1024 * 1024 + 5, 0x61); // large enough for the kernel to split it
    const view = new Uint8Array(Buffer.from('__mid__')).subarray(2, 5);
    await file.writev(4, [bytes('head'), view, big, bytes(''), bytes('tail')]);
    const expected = Buffer.concat([bytes('0123'), bytes('head'), bytes('mid'), big, bytes('tail')]);
    assert.equal(await file.size(), expected.length);
    assert.ok((await file.read(0, expected.length)).equals(expected), 'the concatenation of the parts, at the position');
    await file.writev(2, [bytes('ab'), bytes('c')]);
    assert.deepEqual(await file.read(0, 8), bytes('01abcead'), 'an overwrite inside the file');
    await file.sync();
    await file.close();
  });

  it('large reads at unaligned positions return the bytes written, synced or not, short only at end of file', async (t) => {
    const disk = await fresh();
    const file = await disk.open('r.dat', { create: true });
    const random = new SeededRandom(21);
    const model = random.bytes(9 * 1024 * 1024 + 777);
    await file.writevSynced(0, [model.subarray(0, 5 * 1024 * 1024)]);
    await file.write(5 * 1024 * 1024, model.subarray(5 * 1024 * 1024)); // not synced: dirty pages
    let reads = 0;
    for (let round = 0; round < 24; round++) {
      const position = random.int(model.length);
      const length = 1 + random.int(3 * 1024 * 1024);
      const got = await file.read(position, length);
      assert.ok(got.equals(model.subarray(position, position + length)), `round ${round}: ${length} bytes at ${position}`);
      reads += 1;
    }
    assert.ok((await file.read(model.length - 100, 3 * 1024 * 1024)).equals(model.subarray(model.length - 100)), 'short at the end of the file');
    assert.equal((await file.read(model.length + 5000, 3 * 1024 * 1024)).length, 0, 'nothing past the end');
    await file.close();
    t.diagnostic(`${reads} reads of 1 B..3 MiB at random positions matched what was written`);
  });

  it('writevSynced writes its parts like writev, past the end and over earlier writes', async () => {
    const disk = await fresh();
    const file = await disk.open('s.dat', { create: true });
    await file.write(0, bytes('0123456789'));
    const big = Buffer.alloc(3 * 1024 * 1024 + 5, 0x62);
    await file.writevSynced(10, [bytes('head'), big, bytes('tail')]);
    const expected = Buffer.concat([bytes('0123456789head'), big, bytes('tail')]);
    assert.equal(await file.size(), expected.length);
    assert.ok((await file.read(0, expected.length)).equals(expected));
    await file.writevSynced(1, [bytes('ab')]);
    await file.write(3, bytes('c'));
    assert.deepEqual(await file.read(0, 6), bytes('0abc45'), 'writes through the file and writevSynced see each other');
    await file.truncate(4);
    await file.writevSynced(4, [bytes('seal')]);
    assert.deepEqual(await file.read(0, 100), bytes('0abcseal'), 'after a truncate (RealDisk: its O_DSYNC descriptor released) it writes again');
    await file.close();
    await file.close();
  });

  it('zero-fills holes and truncates both ways', async () => {
    const disk = await fresh();
    const file = await disk.open('holes.dat', { create: true });
    await file.write(10, bytes('x'));
    assert.deepEqual(await file.read(0, 11), Buffer.concat([Buffer.alloc(10), bytes('x')]));
    await file.truncate(4);
    assert.equal(await file.size(), 4);
    await file.truncate(8);
    assert.deepEqual(await file.read(0, 100), Buffer.alloc(8));
    await file.close();
  });

  it('opens by the create and exclusive rules', async () => {
    const disk = await fresh();
    await assert.rejects(disk.open('missing', { create: false }), rejectsWith('io.not_found'));
    const first = await disk.open('f', { create: true, exclusive: true });
    await first.write(0, bytes('keep'));
    await first.close();
    await assert.rejects(disk.open('f', { create: true, exclusive: true }), rejectsWith('io.already_exists'));
    const again = await disk.open('f', { create: true });
    assert.deepEqual(await again.read(0, 10), bytes('keep'), 'create on an existing file keeps its bytes');
    await again.close();
    await assert.rejects(disk.open('no-such-dir/f', { create: true }), rejectsWith('io.not_found'));
  });
}

/** Directories, listing, rename, remove, exists, path rules. */
function namespaceContract(fresh: FreshDisk): void {
  it('lists names sorted, makes nested directories idempotently', async () => {
    const disk = await fresh();
    await disk.makeDirectory('x/y/z');
    await disk.makeDirectory('x/y');
    for (const name of ['b', 'a', 'c']) await (await disk.open(`x/y/${name}`, { create: true })).close();
    assert.deepEqual(await disk.list('x/y'), ['a', 'b', 'c', 'z']);
    assert.deepEqual(await disk.list(''), ['x']);
    assert.deepEqual(await disk.list('x/y/z'), []);
    await assert.rejects(disk.list('nope'), rejectsWith('io.not_found'));
    assert.equal(await disk.exists('x/y/z'), true);
    assert.equal(await disk.exists('x/y/q'), false);
    assert.equal(await disk.exists('x/y/a/under-a-file'), false);
  });

  it('renames, replacing the target; open handles follow the file', async () => {
    const disk = await fresh();
    await writeFileDurably(disk, 'old', bytes('old bytes'));
    const file = await disk.open('new', { create: true });
    await file.write(0, bytes('new bytes'));
    await disk.rename('new', 'old');
    assert.equal(await disk.exists('new'), false);
    await file.write(9, bytes('!'));
    assert.deepEqual(await readFileFully(disk, 'old'), bytes('new bytes!'));
    await file.close();
    await assert.rejects(disk.rename('new', 'other'), rejectsWith('io.not_found'));
    await disk.makeDirectory('d');
    await disk.rename('old', 'd/moved');
    assert.deepEqual(await disk.list('d'), ['moved']);
  });

  it('removes files and empty directories', async () => {
    const disk = await fresh();
    await disk.makeDirectory('d');
    await writeFileDurably(disk, 'd/f', bytes('x'));
    await disk.remove('d/f');
    assert.equal(await disk.exists('d/f'), false);
    await assert.rejects(disk.remove('d/f'), rejectsWith('io.not_found'));
    await disk.remove('d');
    assert.deepEqual(await disk.list(''), []);
  });

  it('syncs files and directories; a closed handle fails with io.closed', async () => {
    const disk = await fresh();
    await disk.makeDirectory('d');
    const file = await disk.open('d/f', { create: true });
    await file.write(0, bytes('durable'));
    await file.sync();
    await disk.syncDirectory('d');
    await disk.syncDirectory('');
    await file.close();
    await file.close(); // idempotent
    await assert.rejects(file.read(0, 1), rejectsWith('io.closed'));
    await assert.rejects(file.write(0, bytes('x')), rejectsWith('io.closed'));
    await assert.rejects(file.sync(), rejectsWith('io.closed'));
    await assert.rejects(disk.syncDirectory('missing'), rejectsWith('io.not_found'));
  });

  it('rejects paths that could escape the root as programmer errors', async () => {
    const disk = await fresh();
    for (const path of ['../escape', 'a/../../b', '/etc/passwd', 'a//b', './a', '']) {
      await assert.rejects(disk.open(path, { create: true }), AssertionFailure, path);
    }
    await assert.rejects(disk.list('..'), AssertionFailure);
    await assert.rejects(disk.rename('a', '../b'), AssertionFailure);
    await assert.rejects(disk.remove('/tmp'), AssertionFailure);
  });
}

/** The durable-file helper, free space, and a seeded model check. */
function durabilityContract(fresh: FreshDisk, name: string): void {
  it('writes files durably through tmp + sync + rename + directory sync', async () => {
    const disk = await fresh();
    await disk.makeDirectory('meta');
    await writeFileDurably(disk, 'meta/manifest', bytes('version 1, a longer body'));
    await writeFileDurably(disk, 'meta/manifest', bytes('version 2'));
    assert.deepEqual(await readFileFully(disk, 'meta/manifest'), bytes('version 2'));
    assert.deepEqual(await disk.list('meta'), ['manifest'], 'no tmp file is left behind');
    assert.equal(await readFileFully(disk, 'meta/absent'), null);
    await assert.rejects(readFileFully(disk, 'meta/manifest', { bytesMax: 4 }), rejectsWith('wire.too_large'));
    await writeFileDurably(disk, 'meta/empty', new Uint8Array(0));
    assert.equal((await readFileFully(disk, 'meta/empty'))?.length, 0);
  });

  it('reports free bytes as a non-negative safe integer', async () => {
    const disk = await fresh();
    const free = await disk.freeBytes();
    assert.ok(Number.isSafeInteger(free) && free >= 0, `freeBytes ${free}`);
  });

  it('matches a flat byte-array model over seeded random writes and truncates', async (t: TestContext) => {
    const disk = await fresh();
    const random = new SeededRandom(20240611);
    const file = await disk.open('model.dat', { create: true });
    let model = Buffer.alloc(0);
    const operations = 400;
    for (let i = 0; i < operations; i++) {
      if (random.int(10) === 0) {
        const length = random.int(6000);
        const next = Buffer.alloc(length);
        model.copy(next, 0, 0, Math.min(length, model.length));
        model = next;
        await file.truncate(length);
      } else {
        const position = random.int(8000);
        const data = random.bytes(1 + random.int(1500));
        const next = Buffer.alloc(Math.max(model.length, position + data.length));
        model.copy(next);
        data.copy(next, position);
        model = next;
        // A third of the writes are writevSynced (on RealDisk another descriptor, O_DSYNC): reads and
        // later writes through the file see them in place.
        if (random.int(3) === 0) await file.writevSynced(position, [data.subarray(0, 7), data.subarray(7)]);
        else await file.write(position, data);
      }
      if (random.int(20) === 0) await file.sync();
    }
    assert.equal(await file.size(), model.length);
    assert.deepEqual(await file.read(0, model.length + 10), model);
    await file.close();
    t.diagnostic(`${name}: ${operations} random writes/truncates matched the model byte for byte (${model.length} bytes)`);
  });
}

let realRoot = '';

diskContract({
  name: 'RealDisk',
  create: async () => {
    if (realRoot === '') realRoot = await mkdtemp(join(tmpdir(), 'kura-disk-contract-'));
    return new RealDisk({ root: await mkdtemp(join(realRoot, 'disk-')) });
  },
  cleanup: async () => {
    if (realRoot !== '') await rm(realRoot, { recursive: true, force: true });
  },
});

// Every read (directReadBytesMin 1) takes the O_DIRECT path: the whole contract holds through it.
const everyReadDirect = directReadStaging(2);
let directRoot = '';

diskContract({
  name: 'RealDisk, every read O_DIRECT',
  create: async () => {
    if (directRoot === '') directRoot = await mkdtemp(join(tmpdir(), 'kura-disk-contract-direct-'));
    return new RealDisk({ root: await mkdtemp(join(directRoot, 'disk-')), directReads: everyReadDirect, directReadBytesMin: 1 });
  },
  cleanup: async () => {
    console.log(`# RealDisk, every read O_DIRECT: ${everyReadDirect.lent} reads took a staging buffer`);
    assert.ok(everyReadDirect.lent >= 30, 'the reads went through O_DIRECT');
    if (directRoot !== '') await rm(directRoot, { recursive: true, force: true });
  },
});

let simSeed = 1;

diskContract({
  name: 'SimDisk',
  create: () => Promise.resolve(new SimDisk({ random: new SeededRandom(simSeed++), name: `sim:${simSeed}` })),
  cleanup: () => Promise.resolve(),
});

