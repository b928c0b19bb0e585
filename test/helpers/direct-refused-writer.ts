// The child side of test/integration/real-disk-direct-refused.test.ts, run inside a private mount
// namespace on a ramfs mounted at argv[2] (ramfs refuses open(O_DIRECT) with EINVAL, as tmpfs
// before Linux 6.6 and FUSE file systems without direct I/O do). Through a RealDisk with its
// default staging buffers it writes large records with writevSynced at unaligned positions between
// small buffered writes, checks which descriptors of the file are open (and with which flags)
// while it is still open, then reads everything back through a fresh RealDisk whose large reads
// would go O_DIRECT via its read staging buffers (refused too: the buffered read), in 3 MiB ranges,
// and through a plain read.
// Prints one JSON line: what O_DIRECT's probe said, the disk's mode, the descriptors' flags, the
// bytes written and whether they read back byte-exact, the disks' large-transfer counts and the
// warnings they logged.
import { createHash } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { directWriteBytesMin, readBufferPoolLengthMin } from '../../src/constants.ts';
import { RealDisk } from '../../src/io/real-disk.ts';
import { ReadBufferPool } from '../../src/util/read-buffer-pool.ts';
import { SeededRandom } from '../../src/util/random.ts';
import { descriptorsOf } from './descriptors.ts';
import { pino } from 'pino';

const root = process.argv[2] ?? '';
const fileName = 'refused.ext';
/** Each read back: above directReadBytesMin, so the reopened disk would read it O_DIRECT. */
const rangeBytes = 3 * 1024 * 1024;

/** What open(O_DIRECT) says on this file system: 'ok' or the errno code. */
async function probeDirect(): Promise<string> {
  try {
    await (await open(join(root, 'probe'), fsConstants.O_CREAT | fsConstants.O_WRONLY | fsConstants.O_DIRECT, 0o644)).close();
    return 'ok';
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? String(error);
  }
}

async function main(): Promise<void> {
  const direct = await probeDirect();
  const random = new SeededRandom(41);
  const warnings: unknown[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => warnings.push(JSON.parse(line)) });
  const disk = new RealDisk({ root, logger });
  const file = await disk.open(fileName, { create: true });
  const model: Buffer[] = [];
  let end = 0;
  for (let round = 0; round < 6; round++) {
    const small = random.bytes(1 + random.int(5000));
    await file.writev(end, [small]);
    const large = Array.from({ length: 1 + random.int(40) }, () => random.bytes(1 + random.int(128 * 1024)));
    large.push(random.bytes(directWriteBytesMin));
    await file.writevSynced(end + small.length, large);
    model.push(small, ...large);
    end += small.length + large.reduce((sum, part) => sum + part.length, 0);
  }
  const descriptors = descriptorsOf(join(root, fileName));
  await file.close();
  const expected = createHash('sha256').update(Buffer.concat(model)).digest('hex');
  const readBuffers = new ReadBufferPool({ bytesMax: 16 * rangeBytes, lengthMin: readBufferPoolLengthMin });
  const reader = new RealDisk({ root, directWrites: null, readBuffers, logger });
  const reopened = await reader.open(fileName, { create: false });
  const hash = createHash('sha256');
  for (let position = 0; position < end; position += rangeBytes) hash.update(await reopened.read(position, Math.min(rangeBytes, end - position)));
  const readDescriptors = descriptorsOf(join(root, fileName));
  await reopened.close();
  const viaDisk = hash.digest('hex');
  const viaRead = createHash('sha256').update(await readFile(join(root, fileName))).digest('hex');
  const report = {
    direct, mode: disk.directWriteMode, bytes: end,
    descriptors, readDescriptors, writes: disk.directIo().writes, reads: reader.directIo().reads,
    warnings: warnings.map((line) => { const { io, at, errno, path } = line as Record<string, unknown>; return { io, at, errno, path }; }),
    exactViaDisk: viaDisk === expected, exactViaRead: viaRead === expected,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

await main();
