// writeFileDurably's promise (src/io/durable-file.ts): after a power loss at any point, the
// target holds its old bytes or its new bytes, whole; once the call resolves, the new bytes.
// Proven by crashing a SimDisk before each of the helper's disk operations in turn, with torn
// writes on, over many seeds; and by failing each operation with an injected error.
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { Disk, DiskFile, OpenOptions } from '../../../src/io/disk.ts';
import { SimDisk } from '../../../src/io/sim-disk.ts';
import type { SimFaultOperation } from '../../../src/io/sim-disk.ts';
import { readFileFully, writeFileDurably } from '../../../src/io/durable-file.ts';
import { StorageError, isStorageError } from '../../../src/util/errors.ts';
import { SeededRandom } from '../../../src/util/random.ts';

/** Counts disk operations and cuts the power just before operation number `crashAt`. */
class PowerCut {
  readonly disk: SimDisk;
  private readonly crashAt: number;
  operations = 0;
  crashed = false;

  constructor(disk: SimDisk, crashAt: number) {
    this.disk = disk;
    this.crashAt = crashAt;
  }

  /** Called before every operation; after the cut the "process" is dead and nothing runs. */
  step(): void {
    if (!this.crashed && this.operations === this.crashAt) {
      this.crashed = true;
      this.disk.crash({ tornWrites: true });
    }
    this.operations += 1;
    if (this.crashed) throw new StorageError('io.closed', 'power cut');
  }
}

function cutDisk(cut: PowerCut): Disk {
  const inner = cut.disk;
  const run = async <T>(call: () => Promise<T>): Promise<T> => {
    cut.step();
    return call();
  };
  return {
    name: inner.name,
    open: async (path: string, options: OpenOptions) => cutFile(cut, await run(() => inner.open(path, options))),
    list: (directory) => run(() => inner.list(directory)),
    makeDirectory: (directory) => run(() => inner.makeDirectory(directory)),
    rename: (from, to) => run(() => inner.rename(from, to)),
    remove: (path) => run(() => inner.remove(path)),
    syncDirectory: (directory) => run(() => inner.syncDirectory(directory)),
    exists: (path) => run(() => inner.exists(path)),
    freeBytes: () => run(() => inner.freeBytes()),
  };
}

function cutFile(cut: PowerCut, file: DiskFile): DiskFile {
  const run = async <T>(call: () => Promise<T>): Promise<T> => {
    cut.step();
    return call();
  };
  return {
    path: file.path,
    size: () => run(() => file.size()),
    read: (position, length) => run(() => file.read(position, length)),
    write: (position, data) => run(() => file.write(position, data)),
    writev: (position, parts) => run(() => file.writev(position, parts)),
    writevSynced: (position, parts) => run(() => file.writevSynced(position, parts)),
    truncate: (length) => run(() => file.truncate(length)),
    sync: () => run(() => file.sync()),
    close: () => run(() => file.close()),
  };
}

const oldBytes = Buffer.alloc(3000, 0x0a);
const newBytes = Buffer.alloc(1700, 0x0b);

describe('writeFileDurably', () => {
  it('leaves the old or the new file, whole, after a power cut at every step', async (t: TestContext) => {
    const seeds = 25;
    const outcomes = { old: 0, new: 0, completedCalls: 0 };
    let steps = 0;
    for (let crashAt = 0; ; crashAt++) {
      let completed = false;
      for (let seed = 1; seed <= seeds; seed++) {
        const disk = new SimDisk({ random: new SeededRandom(seed * 1000 + crashAt) });
        await disk.makeDirectory('meta');
        await disk.syncDirectory('');
        await writeFileDurably(disk, 'meta/manifest', oldBytes);
        const cut = new PowerCut(disk, crashAt);
        const done = await writeFileDurably(cutDisk(cut), 'meta/manifest', newBytes).then(
          () => true,
          (error: unknown) => {
            assert.ok(isStorageError(error), String(error));
            return false;
          },
        );
        if (done) disk.crash({ tornWrites: true });
        const after = await readFileFully(disk, 'meta/manifest');
        const isOld = after?.equals(oldBytes) === true;
        const isNew = after?.equals(newBytes) === true;
        assert.ok(isOld || isNew, `crash before step ${crashAt}, seed ${seed}: neither old nor new (${after?.length} bytes)`);
        if (done) assert.ok(isNew, `seed ${seed}: the call resolved but the new bytes were lost`);
        outcomes.old += isOld ? 1 : 0;
        outcomes.new += isNew ? 1 : 0;
        outcomes.completedCalls += done ? 1 : 0;
        completed = done;
        steps = cut.operations;
      }
      if (completed) break;
    }
    const crashes = outcomes.old + outcomes.new;
    t.diagnostic(`${steps} disk operations per call; ${crashes} power cuts (every step × ${seeds} seeds, torn writes on): old=${outcomes.old} new=${outcomes.new} corrupt=0`);
    assert.ok(outcomes.old > 0 && outcomes.new > 0);
  });

  for (const operation of ['open', 'write', 'sync', 'syncDirectory'] as const satisfies readonly SimFaultOperation[]) {
    it(`passes on an injected failure of ${operation} and keeps the old file`, async () => {
      const disk = new SimDisk({ random: new SeededRandom(1) });
      await writeFileDurably(disk, 'manifest', oldBytes);
      disk.failNext({ operation, code: 'io.eio' });
      await assert.rejects(writeFileDurably(disk, 'manifest', newBytes), (error: unknown) => isStorageError(error));
      assert.equal(disk.openFileCount(), 0, 'no handle leaks');
      if (operation !== 'syncDirectory') {
        assert.deepEqual(await disk.list(''), ['manifest'], 'the tmp file is removed');
        assert.deepEqual(await readFileFully(disk, 'manifest'), oldBytes);
      }
      disk.crash();
      assert.deepEqual(await readFileFully(disk, 'manifest'), oldBytes, 'a failed call never becomes durable');
    });
  }
});
