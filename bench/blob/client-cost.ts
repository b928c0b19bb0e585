// `node bench/blob/client-cost.ts [--seconds S] [--rounds N] [--peers null,kura] [--cells goal|put4k]`:
// what the benchmark's clients cost on their own. Runs the goal cells (Put Blob 64 KiB ×16, Get
// Blob 64 KiB ×16, Put Blob 4 KiB ×64; `--cells put4k`: the Put 4 KiB ×64 pair only) with the SDK
// and the raw undici client against each peer (the null server by default; `kura`: a fresh
// `kura serve` on one disk), in its own process, and prints the client process's CPU per operation
// (process.cpuUsage), the server process's, and from the client's the most any server could be
// driven to by this one client process: its main thread saturates at 1000 / (its CPU ms per op)
// operations a second, and on 2 cores client and server share 2000 ms of CPU a second. Why a goal
// can be out of reach on this machine whatever the server does (bench/blob/README.md "Goals"),
// and (peers null,kura, measured in turn each round) whether a server's answers cost the client
// more than the null server's do.
import { headerUsage, parseBenchArgs } from '../lib/cli-args.ts';
import { loadavg } from 'node:os';
import { runClosedLoop } from '../lib/stats.ts';
import type { PutGetClient } from './blob-client.ts';
import { installChildCleanup, killAllChildren } from './child-server.ts';
import { payloadFor } from './payload.ts';
import type { BenchPeer } from './peer.ts';
import { kuraServePeer, nullServerPeer } from './peers.ts';
import { goalCells, sizeLabel, type PutGetCell } from './profiles.ts';
import { RawBlobClient } from './raw-client.ts';
import { SdkBlobClient } from './sdk-client.ts';

const peerKinds = { null: nullServerPeer, kura: () => kuraServePeer(1) } as const;
type PeerKind = keyof typeof peerKinds;
/** A fresh server first runs 2 s of Puts with each client (compiles its Put path: the first
 * seconds of a fresh `kura serve` ran at a quarter of its later rate), not reported. */
const warmUpSeconds = 2;

interface Options {
  readonly seconds: number;
  readonly rounds: number;
  readonly peers: readonly PeerKind[];
  readonly cells: readonly PutGetCell[];
}

function options(): Options {
  const values = parseBenchArgs(headerUsage(import.meta.url), { seconds: { type: 'string', default: '5' }, rounds: { type: 'string', default: '2' }, peers: { type: 'string', default: 'null' }, cells: { type: 'string', default: 'goal' } });
  const seconds = Number(values.seconds);
  const rounds = Number(values.rounds);
  if (!(seconds > 0 && seconds <= 60)) throw new Error(`--seconds must be in (0, 60], got ${values.seconds}`);
  if (!(Number.isInteger(rounds) && rounds >= 1 && rounds <= 10)) throw new Error(`--rounds must be an integer in [1, 10], got ${values.rounds}`);
  const peers = values.peers.split(',').map((name) => {
    if (name !== 'null' && name !== 'kura') throw new Error(`--peers takes null and kura, got ${name}`);
    return name;
  });
  if (values.cells !== 'goal' && values.cells !== 'put4k') throw new Error(`--cells must be goal or put4k, got ${values.cells}`);
  const cells = values.cells === 'goal' ? goalCells : goalCells.filter((cell) => cell.kind === 'put' && cell.sizeBytes === 4096);
  return { seconds, rounds, peers, cells };
}

interface Target {
  readonly kind: PeerKind;
  readonly peer: BenchPeer;
  readonly sdk: SdkBlobClient;
  readonly raw: RawBlobClient;
}

async function startTarget(kind: PeerKind): Promise<Target> {
  const peer = peerKinds[kind]();
  const endpoint = await peer.start();
  const sdk = new SdkBlobClient({ connectionString: endpoint.connectionString, maxTries: 1 });
  const raw = new RawBlobClient({ connectionString: endpoint.connectionString, connections: 64 });
  await sdk.createContainer('cost');
  await sdk.putBlob('cost', 'fixed', payloadFor('fixed', 64 * 1024));
  const target = { kind, peer, sdk, raw };
  for (const client of ['sdk', 'raw'] as const) await measureCell(target, { kind: 'put', client, sizeBytes: 4096, concurrency: 16 }, warmUpSeconds, 0);
  return target;
}

async function measureCell(target: Target, cell: PutGetCell, seconds: number, round: number): Promise<Record<string, string>> {
  const client: PutGetClient = cell.client === 'sdk' ? target.sdk : target.raw;
  const body = payloadFor('client-cost', cell.sizeBytes);
  const load = (loadavg()[0] ?? 0).toFixed(1);
  const server0 = target.peer.sample().cpuSeconds;
  const cpu0 = process.cpuUsage();
  const result = await runClosedLoop({
    concurrency: cell.concurrency, durationMs: seconds * 1000, operationsMax: 200_000, bytesPerOperation: cell.sizeBytes,
    operation: async (_worker, sequence) => {
      if (cell.kind === 'put') await client.putBlob('cost', `r${round}-${cell.client}-${sequence}`, body);
      else await client.getBlob('cost', 'fixed');
    },
  });
  const cpu = process.cpuUsage(cpu0);
  const operations = Math.max(1, result.operations);
  const msPerOp = (cpu.user + cpu.system) / 1000 / operations;
  return {
    round: String(round), peer: target.kind,
    cell: `${cell.kind} ${sizeLabel(cell.sizeBytes)} ×${cell.concurrency} ${cell.client}`,
    'ops/s': result.opsPerSecond.toFixed(0),
    'client CPU ms/op': msPerOp.toFixed(3),
    'server CPU ms/op': (((target.peer.sample().cpuSeconds - server0) * 1000) / operations).toFixed(3),
    'client thread cap ops/s': (1000 / msPerOp).toFixed(0),
    'load 1m': load,
  };
}

installChildCleanup();
const targets: Target[] = [];
try {
  const { seconds, rounds, peers, cells } = options();
  for (const kind of peers) targets.push(await startTarget(kind));
  const rows: Record<string, string>[] = [];
  for (let round = 1; round <= rounds; round += 1) {
    for (const cell of cells) for (const target of targets) rows.push(await measureCell(target, cell, seconds, round));
  }
  console.table(rows);
} finally {
  for (const target of targets) {
    await target.raw.close();
    await target.peer.stop();
  }
  killAllChildren();
}
