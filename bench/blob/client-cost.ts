// `node bench/blob/client-cost.ts [--seconds S] [--rounds N]`: what the benchmark's clients cost
// on their own. Runs the goal cells (Put Blob 64 KiB ×16, Get Blob 64 KiB ×16, Put Blob 4 KiB ×64)
// with the SDK and the raw undici client against the null server, in its own process, and prints
// the client process's CPU per operation (process.cpuUsage) and, from it, the most any server could
// be driven to by this one client process: its main thread saturates at 1000 / (its CPU ms per op)
// operations a second, and on 2 cores client and server share 2000 ms of CPU a second. Why a goal
// can be out of reach on this machine whatever the server does (bench/blob/README.md "Goals").
import { headerUsage, parseBenchArgs } from '../lib/cli-args.ts';
import { loadavg } from 'node:os';
import { runClosedLoop } from '../lib/stats.ts';
import type { PutGetClient } from './blob-client.ts';
import { installChildCleanup, killAllChildren } from './child-server.ts';
import { payloadFor } from './payload.ts';
import { nullServerPeer } from './peers.ts';
import { goalCells, sizeLabel, type PutGetCell } from './profiles.ts';
import { RawBlobClient } from './raw-client.ts';
import { SdkBlobClient } from './sdk-client.ts';

function options(): { seconds: number; rounds: number } {
  const values = parseBenchArgs(headerUsage(import.meta.url), { seconds: { type: 'string', default: '5' }, rounds: { type: 'string', default: '2' } });
  const seconds = Number(values.seconds);
  const rounds = Number(values.rounds);
  if (!(seconds > 0 && seconds <= 60)) throw new Error(`--seconds must be in (0, 60], got ${values.seconds}`);
  if (!(Number.isInteger(rounds) && rounds >= 1 && rounds <= 10)) throw new Error(`--rounds must be an integer in [1, 10], got ${values.rounds}`);
  return { seconds, rounds };
}

async function measureCell(client: PutGetClient, cell: PutGetCell, seconds: number): Promise<Record<string, string>> {
  const body = payloadFor('client-cost', cell.sizeBytes);
  const cpu0 = process.cpuUsage();
  const result = await runClosedLoop({
    concurrency: cell.concurrency, durationMs: seconds * 1000, operationsMax: 200_000, bytesPerOperation: cell.sizeBytes,
    operation: async (_worker, sequence) => {
      if (cell.kind === 'put') await client.putBlob('cost', `b${sequence}`, body);
      else await client.getBlob('cost', 'fixed');
    },
  });
  const cpu = process.cpuUsage(cpu0);
  const msPerOp = (cpu.user + cpu.system) / 1000 / Math.max(1, result.operations);
  return {
    cell: `${cell.kind} ${sizeLabel(cell.sizeBytes)} ×${cell.concurrency} ${cell.client}`,
    'ops/s': result.opsPerSecond.toFixed(0),
    'client CPU ms/op': msPerOp.toFixed(3),
    'client thread cap ops/s': (1000 / msPerOp).toFixed(0),
    'load 1m': (loadavg()[0] ?? 0).toFixed(1),
  };
}

installChildCleanup();
const peer = nullServerPeer();
try {
  const { seconds, rounds } = options();
  const endpoint = await peer.start();
  const sdk = new SdkBlobClient({ connectionString: endpoint.connectionString, maxTries: 1 });
  const raw = new RawBlobClient({ connectionString: endpoint.connectionString, connections: 64 });
  await sdk.createContainer('cost');
  await sdk.putBlob('cost', 'fixed', payloadFor('fixed', 64 * 1024));
  const rows: Record<string, string>[] = [];
  for (let round = 1; round <= rounds; round += 1) {
    for (const cell of goalCells) rows.push({ round: String(round), ...(await measureCell(cell.client === 'sdk' ? sdk : raw, cell, seconds)) });
  }
  await raw.close();
  console.table(rows);
} finally {
  await peer.stop();
  killAllChildren();
}
