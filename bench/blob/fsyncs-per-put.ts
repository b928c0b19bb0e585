// Fsyncs and durable appends per Put Blob on `kura serve` (1 disk by default), read from its
// --admin metrics before and after N SDK Put Blobs: kura_extent_store_fsyncs_total by file
// (journal = group-commit batches, extent = background extent syncs) and the primary appends
// (kura_extent_append_seconds_count, role=primary), with inline bodies on (the default) and off
// (--inline-body-bytes 0), interleaved, so the two modes see the same machine load. Figures only:
// never run by the test suite.
//
//   node bench/blob/fsyncs-per-put.ts [--size 65536] [--concurrency 16] [--count 800] [--rounds 2] [--disks 1]
import { headerUsage, parseBenchArgs } from '../lib/cli-args.ts';
import { forEachBounded, sequenceName } from './bounded-parallel.ts';
import { freeLoopbackPort } from './free-port.ts';
import { installChildCleanup, killAllChildren } from './child-server.ts';
import { payloadFor } from './payload.ts';
import { kuraServePeer } from './peers.ts';
import { SdkBlobClient } from './sdk-client.ts';

interface Counters {
  readonly journalFsyncs: number;
  readonly extentFsyncs: number;
  readonly primaryAppends: number;
}

function sumMetric(text: string, name: string, labels: readonly string[]): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!labels.every((label) => line.includes(label))) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

async function scrape(admin: string): Promise<Counters> {
  const text = await (await fetch(`http://${admin}/metrics`)).text();
  return {
    journalFsyncs: sumMetric(text, 'kura_extent_store_fsyncs_total', ['file="journal"']),
    extentFsyncs: sumMetric(text, 'kura_extent_store_fsyncs_total', ['file="extent"']),
    primaryAppends: sumMetric(text, 'kura_extent_append_seconds_count', ['role="primary"']),
  };
}

async function measure(options: { size: number; concurrency: number; count: number; disks: number; inlineBodyBytes: number }): Promise<string> {
  const admin = `127.0.0.1:${await freeLoopbackPort()}`;
  const peer = kuraServePeer(options.disks, { serveArgs: ['--admin', admin, '--inline-body-bytes', String(options.inlineBodyBytes)] });
  const endpoint = await peer.start();
  try {
    const client = new SdkBlobClient({ connectionString: endpoint.connectionString, maxTries: 1 });
    await client.createContainer('fsyncs');
    const body = payloadFor('fsyncs', options.size);
    await forEachBounded(64, options.concurrency, (index) => client.putBlob('fsyncs', sequenceName('warm', index), body));
    const before = await scrape(admin);
    const started = performance.now();
    await forEachBounded(options.count, options.concurrency, (index) => client.putBlob('fsyncs', sequenceName('put', index), body));
    const seconds = (performance.now() - started) / 1000;
    const after = await scrape(admin);
    const per = (field: keyof Counters): string => ((after[field] - before[field]) / options.count).toFixed(2);
    const mode = options.inlineBodyBytes === 0 ? 'inline off' : `inline ≤ ${options.inlineBodyBytes}`;
    return `${mode.padEnd(16)} ${options.count} Put Blob ${options.size} B ×${options.concurrency}: ${(options.count / seconds).toFixed(0)} ops/s; per Put: primary appends ${per('primaryAppends')}, journal fsyncs ${per('journalFsyncs')}, extent fsyncs ${per('extentFsyncs')}`;
  } finally {
    await peer.stop();
  }
}

async function main(): Promise<void> {
  const values = parseBenchArgs(headerUsage(import.meta.url), { size: { type: 'string', default: '65536' }, concurrency: { type: 'string', default: '16' }, count: { type: 'string', default: '800' }, rounds: { type: 'string', default: '2' }, disks: { type: 'string', default: '1' } });
  const numbers = { size: Number(values.size), concurrency: Number(values.concurrency), count: Number(values.count), disks: Number(values.disks) };
  for (const [name, value] of Object.entries({ ...numbers, rounds: Number(values.rounds) })) {
    if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`--${name} must be a positive integer`);
  }
  installChildCleanup();
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const inlineBodyBytes of [65_536, 0]) {
      const load = (await import('node:os')).loadavg().map((value) => value.toFixed(1)).join(' ');
      console.log(`round ${round}, load ${load}: ${await measure({ ...numbers, inlineBodyBytes })}`);
    }
  }
}

main().catch((error: unknown) => {
  console.error(error);
  killAllChildren();
  process.exitCode = 1;
});
