// RealDisk's durable append alone (bench/README.md, "tenth session: large appends through
// O_DIRECT"): sequential writevSynced appends of one record (a 40-byte header and a body in 64 KiB
// parts, as a Put Block's socket chunks arrive) to a new file, the buffered O_DSYNC way and the
// O_DIRECT way interleaved, `--rounds` rounds. Prints ms per append, MiB/s and the process's CPU
// per MiB with the load average. Bounded: `--appends` per run (default 48 × 8 MiB). Never run by
// the test suite.
//
//   node bench/disk-append.ts --body-bytes 8388608 --appends 48 --rounds 3 [--dir /tmp]
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { RealDisk } from '../src/io/real-disk.ts';
import { headerUsage, parseBenchArgs } from './lib/cli-args.ts';

const MiB = 1024 * 1024;
const partBytes = 64 * 1024;
const headerBytes = 40;

interface Options { readonly bodyBytes: number; readonly appends: number; readonly rounds: number; readonly dir: string }

function parseOptions(): Options {
  const values = parseBenchArgs(headerUsage(import.meta.url), {
    'body-bytes': { type: 'string', default: String(8 * MiB) },
    appends: { type: 'string', default: '48' },
    rounds: { type: 'string', default: '3' },
    dir: { type: 'string', default: tmpdir() },
  });
  return { bodyBytes: Number(values['body-bytes']), appends: Number(values.appends), rounds: Number(values.rounds), dir: values.dir };
}

/** One run: `appends` records end to end in a new file; the file is removed after. */
async function run(options: Options, direct: boolean): Promise<string> {
  const root = await mkdtemp(join(options.dir, 'kura-disk-append-'));
  try {
    const file = await new RealDisk({ root, ...(direct ? {} : { directWrites: null }) }).open('a.ext', { create: true });
    const body = Buffer.alloc(options.bodyBytes, 0x5a);
    const parts = [Buffer.alloc(headerBytes, 1)];
    for (let offset = 0; offset < body.length; offset += partBytes) parts.push(body.subarray(offset, offset + partBytes));
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    let position = 64;
    for (let index = 0; index < options.appends; index++) {
      await file.writevSynced(position, parts);
      position += headerBytes + body.length;
    }
    const elapsedMs = performance.now() - started;
    const cpu = process.cpuUsage(cpuBefore);
    await file.close();
    const mib = (options.appends * options.bodyBytes) / MiB;
    return `${direct ? 'O_DIRECT' : 'buffered'}: ${(elapsedMs / options.appends).toFixed(2)} ms per append, ${(mib / (elapsedMs / 1000)).toFixed(0)} MiB/s, ` +
      `CPU ${((cpu.user + cpu.system) / 1000 / mib).toFixed(3)} ms/MiB (system ${(cpu.system / 1000 / mib).toFixed(3)})`;
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

const options = parseOptions();
for (let round = 1; round <= options.rounds; round++) {
  console.log(`round ${round}, load ${loadavg().map((load) => load.toFixed(1)).join(' ')}`);
  for (const direct of round % 2 === 1 ? [false, true] : [true, false]) console.log(`  ${await run(options, direct)}`);
}
