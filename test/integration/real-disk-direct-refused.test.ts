// RealDisk on a real file system that refuses O_DIRECT (docs/formats/extent-file.md, "Writing":
// EINVAL from open(O_DIRECT) turns the disk's O_DIRECT off and the write goes the buffered
// O_DSYNC way). This kernel's tmpfs and ext4 accept O_DIRECT; ramfs refuses it, as tmpfs before
// Linux 6.6 and FUSE file systems without direct I/O do. The ramfs is mounted in a private mount
// namespace (unshare -m, root, as CI runs) that dies with the child: no mount can leak. What must
// hold: large synced writes still land byte-exact (read back through a fresh RealDisk and a plain
// read), through a descriptor opened O_DSYNC and none opened O_DIRECT, and the disk says 'refused';
// large reads (O_DIRECT via staging buffers, refused the same way) return them exact.
// Figures: bytes written, the descriptors' flags.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { repositoryRoot, runCommand } from '../helpers/kura-serve.ts';

const nodeBin = join(repositoryRoot, 'node_modules', '.bin', 'node');
const writer = join(repositoryRoot, 'test', 'helpers', 'direct-refused-writer.ts');

test('large synced writes on ramfs (O_DIRECT refused with EINVAL) land byte-exact through the O_DSYNC descriptor', { timeout: 120_000 }, async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip('mounting ramfs needs root (CI runs as root)');
    return;
  }
  const mountPoint = await mkdtemp(join(tmpdir(), 'kura-ramfs-'));
  try {
    const script = 'mount -t ramfs ramfs "$0" && exec "$@"';
    const child = await runCommand('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, mountPoint, nodeBin, writer, mountPoint], { timeoutMs: 90_000 });
    assert.equal(child.code, 0, child.stderr);
    const report = JSON.parse(child.stdout) as {
      direct: string; mode: string; bytes: number; descriptors: { dsync: boolean; direct: boolean }[]; readDescriptors: { direct: boolean }[]; exactViaDisk: boolean; exactViaRead: boolean;
      writes: { mode: string; counts: Record<string, number> }; reads: { mode: string; counts: Record<string, number> }; warnings: Record<string, unknown>[];
    };
    t.diagnostic(`ramfs: open(O_DIRECT) -> ${report.direct}; disk mode ${report.mode}; ${(report.bytes / (1024 * 1024)).toFixed(1)} MiB in 6 large synced writes; descriptors of the file: ${JSON.stringify(report.descriptors)}; while reading back in 3 MiB ranges: ${JSON.stringify(report.readDescriptors)}`);
    assert.equal(report.direct, 'EINVAL', 'ramfs refuses O_DIRECT: the case under test');
    assert.equal(report.mode, 'refused');
    assert.ok(report.exactViaDisk && report.exactViaRead, 'every byte read back as written');
    assert.equal(report.descriptors.filter((flags) => flags.direct).length, 0, 'no O_DIRECT descriptor stays open');
    assert.equal(report.descriptors.filter((flags) => flags.dsync).length, 1, 'the large writes went through the O_DSYNC descriptor');
    assert.deepEqual(report.readDescriptors.map((flags) => flags.direct), [false], 'large reads went the buffered way');
    t.diagnostic(`large writes ${JSON.stringify(report.writes)}, large reads ${JSON.stringify(report.reads)}; warnings ${JSON.stringify(report.warnings)}`);
    assert.deepEqual(report.writes, { mode: 'refused', counts: { direct: 0, noStagingBuffer: 0, refused: 6, coverTooLarge: 0 } }, 'the 6 large writes counted as refused');
    assert.equal(report.reads.mode, 'refused');
    assert.ok(report.reads.counts['refused'] !== undefined && report.reads.counts['refused'] >= 1 && report.reads.counts['direct'] === 0, 'the large reads counted as refused');
    assert.deepEqual(report.warnings, [{ io: 'write', at: 'open', errno: 'EINVAL', path: 'refused.ext' }, { io: 'read', at: 'open', errno: 'EINVAL', path: 'refused.ext' }], 'one warning per disk and direction');
  } finally {
    await rm(mountPoint, { recursive: true, force: true });
  }
});
