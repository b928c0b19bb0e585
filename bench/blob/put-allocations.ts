// Where a Put Blob's JS heap allocations come from: starts a whole stamp in this process (as
// `kura serve` wires it, data in a temporary directory), Puts new blobs from `--concurrency` raw
// undici clients (warm-up first), and samples every allocation of the measured Puts with the
// inspector's sampling heap profiler, objects later collected by minor and major GCs included (a
// profile of what survived would miss a request's garbage, which is what drives scavenges).
// Prints the server's KB allocated per Put (frames under bench/ and undici, the client, left out)
// and the top sites, each attributed to its nearest src/ frame. Sampled (every --interval bytes on
// average): a figure is an estimate; compare builds with the same options.
//
//   node bench/blob/put-allocations.ts [--puts 6400] [--concurrency 64] [--size 4096] [--top 30]
//     [--interval 256] [--out FILE.heapprofile]   (open in Chrome DevTools' Memory tab)
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import type { HeapProfiler } from 'node:inspector';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { developmentAccountKey } from '../../src/stamp/account-store.ts';
import { EmbeddedStamp } from '../../src/stamp/embedded-stamp.ts';
import { SystemClock } from '../../src/util/clock.ts';
import { headerUsage, parseBenchArgs, positiveIntegerOption } from '../lib/cli-args.ts';
import { RawBlobClient } from './raw-client.ts';

type SamplingProfile = HeapProfiler.SamplingHeapProfile;
type ProfileNode = HeapProfiler.SamplingHeapProfileNode;

const values = parseBenchArgs(headerUsage(import.meta.url), {
  puts: { type: 'string' }, concurrency: { type: 'string' }, size: { type: 'string' }, top: { type: 'string' }, interval: { type: 'string' }, out: { type: 'string' },
});
const puts = positiveIntegerOption(values.puts, 6400, 'puts');
const concurrency = positiveIntegerOption(values.concurrency, 64, 'concurrency');
const sizeBytes = positiveIntegerOption(values.size, 4096, 'size');
const top = positiveIntegerOption(values.top, 30, 'top');
const intervalBytes = positiveIntegerOption(values.interval, 256, 'interval');

const directory = mkdtempSync(join(tmpdir(), 'kura-put-allocations-'));
const stamp = await EmbeddedStamp.start({ disks: [directory], clock: new SystemClock(), blob: { host: '127.0.0.1', port: 0 } });
try {
  const client = new RawBlobClient({ port: stamp.blobPort ?? 0, accountKey: developmentAccountKey, connections: concurrency });
  const body = Buffer.alloc(sizeBytes, 0x4b);
  let sequence = 0;
  const putAll = (count: number): Promise<void[]> => Promise.all(Array.from({ length: concurrency }, async () => {
    while (sequence < count) await client.putBlob('allocations', `p-${sequence++}`, body);
  }));
  await client.createContainer('allocations');
  await putAll(puts);
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.startSampling', { samplingInterval: intervalBytes, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
  await putAll(2 * puts);
  const { profile } = await session.post('HeapProfiler.stopSampling');
  session.disconnect();
  if (values.out !== undefined) writeFileSync(values.out, JSON.stringify(profile));
  report(profile, puts);
} finally {
  await stamp.stop({ drainMs: 0 });
  rmSync(directory, { recursive: true, force: true });
}

/** Server bytes per Put, and the top sites by the nearest src/ frame (and the leaf, when not that frame). */
function report(profile: SamplingProfile, count: number): void {
  const sites = new Map<string, number>();
  let serverBytes = 0;
  let clientBytes = 0;
  const walk = (node: ProfileNode, stack: readonly string[]): void => {
    const frame = frameName(node);
    const frames = [...stack, frame];
    const bytes = node.selfSize;
    if (bytes > 0 && frames.some(isClientFrame)) clientBytes += bytes;
    else if (bytes > 0) {
      serverBytes += bytes;
      const site = frames.findLast((name) => name.includes('src/')) ?? '(no src/ frame)';
      const key = site === frame ? site : `${site}  <- ${frame}`;
      sites.set(key, (sites.get(key) ?? 0) + bytes);
    }
    for (const child of node.children) walk(child, frames);
  };
  walk(profile.head, []);
  const perPut = (bytes: number): string => (bytes / count / 1024).toFixed(2);
  console.log(`${count} Puts of ${sizeBytes} B x${concurrency}: server ${perPut(serverBytes)} KB of JS heap per Put (client ${perPut(clientBytes)}), sampled every ~${intervalBytes} B`);
  const ranked = [...sites].sort((left, right) => right[1] - left[1]).slice(0, top);
  console.table(ranked.map(([site, bytes]) => ({ 'KB per Put': perPut(bytes), '%': (100 * bytes / serverBytes).toFixed(1), site })));
}

function frameName(node: ProfileNode): string {
  const frame = node.callFrame;
  const url = frame.url.replace(/^file:\/\/.*?\/(src|bench|node_modules)\//, '$1/');
  return `${frame.functionName === '' ? '(anonymous)' : frame.functionName} ${url}:${frame.lineNumber + 1}`;
}

function isClientFrame(name: string): boolean {
  return name.includes('bench/') || name.includes('undici');
}
