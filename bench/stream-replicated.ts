// Durable append throughput through the whole stream layer: a StreamClient appending to a
// stream whose extents have 1 or 3 replicas, each replica an ExtentNode on its own real disk
// directory, all talking over real TCP on 127.0.0.1, with the StreamManager on an
// EmbeddedMetaStore — every append acknowledged only when every replica fsync'd it (P1).
// All roles share this process and its 2 cores, so the figure is a floor for separate machines.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RealDisk } from '../src/io/real-disk.ts';
import { EmbeddedMetaStore } from '../src/metastore/embedded-meta-store.ts';
import { TcpNetwork } from '../src/rpc/tcp-network.ts';
import { ExtentNode } from '../src/stream/extent-node.ts';
import { StreamClient } from '../src/stream/stream-client.ts';
import { StreamManager } from '../src/stream/stream-manager.ts';
import { SystemClock } from '../src/util/clock.ts';
import { SeededRandom } from '../src/util/random.ts';
import { runClosedLoop, type ThroughputResult } from './lib/stats.ts';

export interface ReplicatedCase {
  readonly recordBytes: number;
  readonly concurrency: number;
  readonly replicaCount: 1 | 3;
}

interface Stamp {
  readonly client: StreamClient;
  readonly streamId: number;
  stop(): Promise<void>;
}

async function startStamp(replicaCount: number): Promise<Stamp> {
  const root = await mkdtemp(join(tmpdir(), 'kura-bench-stream-'));
  const clock = new SystemClock();
  const network = new TcpNetwork({ clock });
  const metaStore = await EmbeddedMetaStore.open({ disk: new RealDisk({ root }), directory: 'meta', clock });
  const manager = new StreamManager({ metaStore, network, clock, random: new SeededRandom(1), replicaCountDefault: replicaCount });
  await manager.start();
  const nodes: ExtentNode[] = [];
  for (let index = 0; index < replicaCount; index++) {
    const disk = new RealDisk({ root });
    await disk.makeDirectory(`node-${index}`);
    nodes.push(await ExtentNode.start({
      nodeId: `en${index}`, disk: new RealDisk({ root: join(root, `node-${index}`) }), clock, random: new SeededRandom(index + 2), network,
      listenAddress: '127.0.0.1:0', manager, faultDomain: `fd${index}`, upgradeDomain: `ud${index}`, groupCommit: true,
    }));
  }
  const client = new StreamClient({ manager, network, clock, clientId: 'bench' });
  const stream = await manager.createStream({ name: 'bench', replicaCount });
  return {
    client,
    streamId: stream.streamId,
    stop: async () => {
      for (const node of nodes) await node.stop();
      await manager.close();
      await metaStore.close();
      await network.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

export async function measureReplicatedAppend(replicatedCase: ReplicatedCase, bounds: { durationMs: number; operationsMax: number }): Promise<ThroughputResult> {
  const stamp = await startStamp(replicatedCase.replicaCount);
  try {
    const record = Buffer.alloc(replicatedCase.recordBytes, 0x72);
    return await runClosedLoop({
      concurrency: replicatedCase.concurrency,
      durationMs: bounds.durationMs,
      operationsMax: bounds.operationsMax,
      bytesPerOperation: replicatedCase.recordBytes,
      operation: async () => {
        await stamp.client.append(stamp.streamId, record);
      },
    });
  } finally {
    await stamp.stop();
  }
}

export function replicatedCases(): ReplicatedCase[] {
  const cases: ReplicatedCase[] = [];
  for (const recordBytes of [4096, 65536, 1 << 20]) {
    for (const replicaCount of [1, 3] as const) {
      for (const concurrency of [1, 16]) cases.push({ recordBytes, concurrency, replicaCount });
    }
  }
  return cases;
}

export function replicatedLabel(replicatedCase: ReplicatedCase): string {
  const size = replicatedCase.recordBytes >= 1 << 20 ? `${replicatedCase.recordBytes >> 20} MiB` : `${replicatedCase.recordBytes >> 10} KiB`;
  return `stream append ${size} ×${replicatedCase.concurrency}, ${replicatedCase.replicaCount} replica${replicatedCase.replicaCount === 1 ? '' : 's'}`;
}
