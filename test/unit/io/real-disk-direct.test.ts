// RealDisk's large writevSynced through O_DIRECT (docs/formats/extent-file.md, "Writing"): head and
// tail through the O_DSYNC descriptor, the 4 KiB-aligned middle through O_DIRECT from a staging
// buffer. What must hold: the file holds exactly the bytes one pwritev would have written, at any
// position and with parts of any sizes, coherent with the buffered descriptor's reads and writes;
// no staging buffer free means the buffered way, same bytes. A file system that accepts the
// O_DIRECT open and refuses the write with EINVAL (injected at the open: none is at hand; the
// refusal at open is tested on ramfs, test/integration/real-disk-direct-refused.test.ts) turns the
// disk's O_DIRECT off before any byte moved: same bytes, the buffered way; EINVAL after bytes moved
// is a failed synced write: the file is poisoned, as after a failed fsync.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { pino, type Logger } from 'pino';
import { join } from 'node:path';
import { directWriteBytesMin } from '../../../src/constants.ts';
import { AlignedBuffers } from '../../../src/io/aligned-buffers.ts';
import type { LargeIoCounts } from '../../../src/io/disk.ts';
import { RealDisk, type DescriptorOpener } from '../../../src/io/real-disk.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import { SeededRandom } from '../../../src/util/random.ts';

const MiB = 1024 * 1024;
const roots: string[] = [];

async function diskWith(buffers: AlignedBuffers, options: { readonly openDirect?: DescriptorOpener; readonly logger?: Logger } = {}): Promise<RealDisk> {
  const root = await mkdtemp(join(tmpdir(), 'kura-direct-'));
  roots.push(root);
  return new RealDisk({ root, directWrites: buffers, ...options });
}

/** A pino logger that keeps its lines (parsed). */
function capturingLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { logger: pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) }), lines };
}

const largeWrites = (disk: RealDisk): LargeIoCounts => disk.directIo().writes.counts;

/** A real O_DIRECT descriptor whose writes move `bytesBeforeRefusal` bytes (one 4 KiB piece at a
 * time), then fail with EINVAL as a file system refusing the alignment does; counts the opens. */
function refusingWrites(bytesBeforeRefusal: number): { opener: DescriptorOpener; opens: number; refusals: number } {
  const state = { opens: 0, refusals: 0, opener: async (fullPath: string, flags: number): Promise<FileHandle> => {
    state.opens += 1;
    const handle = await open(fullPath, flags);
    let moved = 0;
    const write = async (buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesWritten: number; buffer: Buffer }> => {
      if (moved >= bytesBeforeRefusal) {
        state.refusals += 1;
        throw Object.assign(new Error('EINVAL: invalid argument, write'), { code: 'EINVAL', errno: -22, syscall: 'write' });
      }
      const result = await handle.write(buffer, offset, Math.min(length, 4096), position);
      moved += result.bytesWritten;
      return result;
    };
    return new Proxy(handle, { get: (target, key) => (key === 'write' ? write : (Reflect.get(target, key) as unknown)) });
  } };
  return state;
}

/** `length` random bytes cut into parts of 1 byte to 128 KiB (a socket's chunks and odd ones). */
function randomParts(random: SeededRandom, length: number): Buffer[] {
  const parts: Buffer[] = [];
  for (let left = length; left > 0;) {
    const size = Math.min(left, random.int(4) === 0 ? 1 + random.int(100) : 1 + random.int(128 * 1024));
    parts.push(random.bytes(size));
    left -= size;
  }
  return parts;
}

describe('RealDisk: large writevSynced through O_DIRECT', () => {
  after(async () => {
    for (const root of roots) await rm(root, { recursive: true, force: true });
  });

  it('writes the same bytes as one pwritev at unaligned positions, coherent with buffered reads and writes', async () => {
    const random = new SeededRandom(10);
    const buffers = new AlignedBuffers({ bufferBytes: 8 * MiB + 4096, buffersMax: 1 });
    const disk = await diskWith(buffers);
    const file = await disk.open('d.ext', { create: true });
    const model = Buffer.alloc(40 * MiB);
    let end = 0;
    for (let round = 0; round < 8; round++) {
      // A small buffered write first (a record header, journaled blocks): the page the next large write's head shares.
      const small = randomParts(random, 1 + random.int(5000));
      await file.writev(end, small);
      end = Buffer.concat(small).copy(model, end) + end;
      const parts = randomParts(random, directWriteBytesMin + random.int(7 * MiB));
      await file.writevSynced(end, parts);
      end = Buffer.concat(parts).copy(model, end) + end;
      assert.equal(await file.size(), end, `round ${round}: the size is the write's end`);
    }
    assert.ok((await file.read(0, end)).equals(model.subarray(0, end)), 'every byte as written');
    console.log(`# ${buffers.lent} of 8 large writes went through O_DIRECT, ${(end / MiB).toFixed(1)} MiB`);
    assert.equal(buffers.lent, 8, 'each large write took the staging buffer');
    // Over written bytes, then read back through the buffered descriptor.
    const over = randomParts(random, 3 * MiB);
    await file.writevSynced(5000, over);
    Buffer.concat(over).copy(model, 5000);
    assert.ok((await file.read(0, end)).equals(model.subarray(0, end)), 'an overwrite through O_DIRECT is read back');
    assert.deepEqual(largeWrites(disk), { direct: 9, noStagingBuffer: 0, refused: 0, coverTooLarge: 0 }, 'counted: 9 large writes, all O_DIRECT');
    await file.close();
  });

  it('without a free staging buffer writes the buffered way, same bytes', async () => {
    const random = new SeededRandom(11);
    const buffers = new AlignedBuffers({ bufferBytes: 8 * MiB, buffersMax: 0 });
    const disk = await diskWith(buffers);
    const file = await disk.open('b.ext', { create: true });
    const parts = randomParts(random, 2 * MiB + 77);
    await file.writevSynced(123, parts);
    assert.equal(buffers.lent, 0);
    assert.deepEqual(largeWrites(disk), { direct: 0, noStagingBuffer: 1, refused: 0, coverTooLarge: 0 }, 'counted as a large write without a staging buffer');
    assert.ok((await file.read(123, 2 * MiB + 77)).equals(Buffer.concat(parts)));
    await file.close();
  });

  it('EINVAL from the O_DIRECT write before any byte moved: the disk falls back for good, same bytes', async () => {
    const random = new SeededRandom(12);
    const refusing = refusingWrites(0);
    const log = capturingLogger();
    const disk = await diskWith(new AlignedBuffers({ bufferBytes: 8 * MiB + 4096, buffersMax: 2 }), { openDirect: refusing.opener, logger: log.logger });
    const file = await disk.open('r.ext', { create: true });
    const model: Buffer[] = [];
    let end = 0;
    for (let round = 0; round < 4; round++) {
      const parts = randomParts(random, directWriteBytesMin + random.int(3 * MiB));
      await file.writevSynced(end, parts);
      model.push(...parts);
      end += parts.reduce((sum, part) => sum + part.byteLength, 0);
    }
    await file.close();
    const reopened = await new RealDisk({ root: disk.name, directWrites: null }).open('r.ext', { create: false });
    const read = await reopened.read(0, end + 1);
    await reopened.close();
    console.log(`# ${(end / MiB).toFixed(1)} MiB in 4 large writes; O_DIRECT opened ${refusing.opens}, refused ${refusing.refusals}; mode ${disk.directWriteMode}`);
    assert.ok(read.equals(Buffer.concat(model)), 'every byte as written, none past the end');
    assert.deepEqual({ opens: refusing.opens, refusals: refusing.refusals, mode: disk.directWriteMode }, { opens: 1, refusals: 1, mode: 'refused' }, 'refused once, never tried again');
    assert.deepEqual(largeWrites(disk), { direct: 0, noStagingBuffer: 0, refused: 4, coverTooLarge: 0 }, 'every large write counted as refused');
    const warnings = log.lines.map(({ level, disk: name, io, path, at, errno }) => ({ level, name, io, path, at, errno }));
    console.log(`# log: ${JSON.stringify(log.lines.map((line) => line['msg']))}`);
    assert.deepEqual(warnings, [{ level: 40, name: disk.name, io: 'write', path: 'r.ext', at: 'transfer', errno: 'EINVAL' }], 'one warning, at the first refusal');
  });

  it('EINVAL from the O_DIRECT write after bytes moved: the write fails and poisons the file', async () => {
    const refusing = refusingWrites(8192);
    const file = await (await diskWith(new AlignedBuffers({ bufferBytes: 8 * MiB + 4096, buffersMax: 1 }), { openDirect: refusing.opener })).open('p.ext', { create: true });
    const failed = await file.writevSynced(0, [Buffer.alloc(2 * MiB, 5)]).then(() => null, (error: unknown) => error);
    assert.ok(isStorageError(failed) && failed.code === 'io.fsync_failed', `a failed synced write: ${String(failed)}`);
    const later = await file.writevSynced(0, [Buffer.alloc(10, 1)]).then(() => null, (error: unknown) => error);
    assert.ok(isStorageError(later) && later.code === 'io.fsync_failed', 'the file is poisoned');
    await file.close();
  });

  it('a write whose aligned middle is shorter than directWriteBytesMin stays buffered', async () => {
    const buffers = new AlignedBuffers({ bufferBytes: 8 * MiB, buffersMax: 1 });
    const file = await (await diskWith(buffers)).open('s.ext', { create: true });
    const data = Buffer.alloc(directWriteBytesMin + 3000, 9);
    await file.writevSynced(100, [data]); // middle: directWriteBytesMin minus a page
    assert.equal(buffers.lent, 0);
    await file.writevSynced(0, [Buffer.alloc(directWriteBytesMin, 8)]);
    assert.equal(buffers.lent, 1, 'an aligned write of exactly directWriteBytesMin goes direct');
    await file.close();
  });
});
