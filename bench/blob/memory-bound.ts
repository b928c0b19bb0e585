// Memory bound of `kura serve` under many concurrent large uploads (issue 4): starts `kura serve`,
// runs `--uploads` concurrent uploads of `--blob-mib` MiB each in staged blocks of `--block-mib`
// MiB (one Put Block in flight per upload, so --uploads request bodies arrive at once), commits
// the blobs that finished, and reports the server's resident memory: RSS after start, peak RSS
// (the kernel's VmHWM, so no sample can miss the peak) and the bound the limits give
// (bench/README.md "kura serve: memory under concurrent uploads"). Bounded in time: no new block
// starts after `--seconds`; blocks in flight finish. Not a test (speed and memory depend on the
// machine): it prints its figures and saves bench/results/memory-bound-<date>.json.
//
//   node bench/blob/memory-bound.ts [--uploads 64] [--blob-mib 256] [--block-mib 8] [--seconds 120] [--disks 1]
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { headerUsage, parseBenchArgs, positiveIntegerOption } from '../lib/cli-args.ts';
import { dataAppendBytesMax, frontendBodyBytesMax } from '../../src/constants.ts';
import { blockIdFor } from './blob-client.ts';
import { installChildCleanup, killAllChildren } from './child-server.ts';
import { kuraServePeer } from './peers.ts';
import { ProcessSampler } from './proc-sample.ts';
import { SdkBlobClient } from './sdk-client.ts';

const MiB = 1024 * 1024;

async function main(): Promise<void> {
  const values = parseBenchArgs(headerUsage(import.meta.url), { uploads: { type: 'string' }, 'blob-mib': { type: 'string' }, 'block-mib': { type: 'string' }, seconds: { type: 'string' }, disks: { type: 'string' } });
  const uploads = positiveIntegerOption(values.uploads, 64, 'uploads');
  const blobMiB = positiveIntegerOption(values['blob-mib'], 256, 'blob-mib');
  const blockMiB = positiveIntegerOption(values['block-mib'], 8, 'block-mib');
  const seconds = positiveIntegerOption(values.seconds, 120, 'seconds');
  const disks = positiveIntegerOption(values.disks, 1, 'disks');
  if (blobMiB % blockMiB !== 0) throw new Error('--blob-mib must be a multiple of --block-mib');
  installChildCleanup();
  const peer = kuraServePeer(disks);
  try {
    const endpoint = await peer.start();
    // Retries on (as a user's SDK): a 503 under load is retried, and counted by the server's answers.
    const client = new SdkBlobClient({ connectionString: endpoint.connectionString, maxTries: 4 });
    await client.createContainer('memory');
    const started = peer.sample();
    const sampler = new ProcessSampler({ read: () => peer.sample(), intervalMs: 100 });
    const block = randomBytes(blockMiB * MiB); // one body for every block: the client's memory stays small
    const blocksPerBlob = blobMiB / blockMiB;
    const deadline = Date.now() + seconds * 1000;
    const startMs = Date.now();
    let staged = 0;
    let failed = 0;
    let committed = 0;
    /** Failed blocks by the SDK's final answer (status and Azure code, after its retries). */
    const failures = new Map<string, number>();
    const upload = async (index: number): Promise<void> => {
      const name = `big-${String(index).padStart(3, '0')}`;
      const ids: string[] = [];
      for (let at = 0; at < blocksPerBlob && Date.now() < deadline; at++) {
        const id = blockIdFor(at);
        try {
          await client.stageBlock('memory', name, id, block);
          ids.push(id);
          staged += 1;
        } catch (error) {
          failed += 1;
          const rest = error as { statusCode?: number; code?: string; name?: string };
          const reason = `${rest.statusCode ?? rest.name ?? 'error'} ${rest.code ?? ''}`.trim();
          failures.set(reason, (failures.get(reason) ?? 0) + 1);
        }
      }
      if (ids.length === blocksPerBlob) {
        await client.commitBlockList('memory', name, ids);
        committed += 1;
      }
    };
    await Promise.all(Array.from({ length: uploads }, (_, index) => upload(index)));
    const elapsedSeconds = (Date.now() - startMs) / 1000;
    const { peakRssBytes } = sampler.stop();
    const result = {
      date: new Date().toISOString(), loadAverage: loadavg()[0], disks, uploads, blobMiB, blockMiB, seconds: Number(elapsedSeconds.toFixed(1)),
      stagedMiB: staged * blockMiB, blocksFailed: failed, failuresByAnswer: Object.fromEntries(failures), blobsCommitted: committed, mibPerSecond: Number(((staged * blockMiB) / elapsedSeconds).toFixed(1)),
      rssAfterStartMiB: Number((started.rssBytes / MiB).toFixed(1)), peakRssMiB: Number((peakRssBytes / MiB).toFixed(1)),
      bodyBudgetMiB: frontendBodyBytesMax / MiB, appendChunkMiB: dataAppendBytesMax / MiB,
    };
    console.log(`${uploads} concurrent uploads of ${blobMiB} MiB in ${blockMiB} MiB blocks (${disks} disk, load ${(result.loadAverage ?? 0).toFixed(1)}): ` +
      `${result.stagedMiB} MiB staged in ${result.seconds} s (${result.mibPerSecond} MiB/s), ${committed} blobs committed, ${failed} blocks failed${failures.size === 0 ? '' : ` (${[...failures].map(([reason, count]) => `${count} x ${reason}`).join(', ')})`}`);
    console.log(`kura serve RSS: ${result.rssAfterStartMiB} MiB after start, peak ${result.peakRssMiB} MiB (body budget ${result.bodyBudgetMiB} MiB)`);
    const directory = join(import.meta.dirname, '..', 'results');
    await mkdir(directory, { recursive: true });
    const file = join(directory, `memory-bound-${result.date.slice(0, 19).replaceAll(':', '-')}.json`);
    await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
    console.log(`saved ${file}`);
  } finally {
    await peer.stop();
    killAllChildren();
  }
}

await main();
