// `node bench/partition-gc.ts [--mib 1024] [--chunk-kib 4096]`: the issue 3 figure at full size
// (docs/partition-gc.md). One partition on the real stream layer in one process, on real disks
// (GcStamp below: three ExtentNodes in three fault domains, each on a RealDisk directory under
// one temporary root, an EmbeddedMetaStore, a StreamManager, LocalNetwork, SystemClock): write
// blob-like data (appendData in chunks + one row per blob with a dataRefs column), overwrite 45 %
// and delete 45 % of the blobs (a seeded permutation), then checkpoint, compact and GC until a
// pass changes nothing; every live blob is read back and compared. Figure: bytes of every file
// in the three extent nodes' directories ÷ (live bytes × 3), before and after, plus bytes copied
// forward and extents dropped. Saves bench/results/partition-gc-<date>T<time>.json.
// Never run by the test suite.
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { headerUsage, parseBenchArgs } from './lib/cli-args.ts';
import { RealDisk } from '../src/io/real-disk.ts';
import { EmbeddedMetaStore } from '../src/metastore/embedded-meta-store.ts';
import { Partition } from '../src/partition/partition.ts';
import { StreamLayerPartitionStreams } from '../src/partition/partition-streams.ts';
import type { PartitionStreamIds } from '../src/partition/partition-streams.ts';
import { LocalNetwork } from '../src/rpc/local-network.ts';
import { ExtentNode } from '../src/stream/extent-node.ts';
import { StreamClient } from '../src/stream/stream-client.ts';
import { StreamManager } from '../src/stream/stream-manager.ts';
import { SystemClock } from '../src/util/clock.ts';
import { SeededRandom } from '../src/util/random.ts';
import type { DataRef } from '../src/wire/partition-row.ts';

/** The stream layer in one process on real directories; close() removes them. */
class GcStamp {
  readonly clock = new SystemClock();
  readonly network: LocalNetwork;
  readonly root: string;
  readonly manager: StreamManager;
  private readonly metaStore: EmbeddedMetaStore;
  private readonly nodes: ExtentNode[];

  private constructor(parts: { root: string; network: LocalNetwork; manager: StreamManager; metaStore: EmbeddedMetaStore; nodes: ExtentNode[] }) {
    this.root = parts.root;
    this.network = parts.network;
    this.manager = parts.manager;
    this.metaStore = parts.metaStore;
    this.nodes = parts.nodes;
  }

  static async start(): Promise<GcStamp> {
    const root = await mkdtemp(join(tmpdir(), 'kura-bench-gc-'));
    const clock = new SystemClock();
    const random = new SeededRandom(7);
    const network = new LocalNetwork({ clock, localAddress: 'bench' });
    const disk = async (name: string): Promise<RealDisk> => {
      await mkdir(join(root, name), { recursive: true });
      return new RealDisk({ root: join(root, name) });
    };
    const metaStore = await EmbeddedMetaStore.open({ disk: await disk('meta'), directory: 'store', clock });
    const manager = new StreamManager({ metaStore, network: network.endpoint('sm:1'), clock, random, replicaCountDefault: 3 });
    await manager.start();
    const nodes: ExtentNode[] = [];
    for (let i = 0; i < 3; i++) {
      nodes.push(await ExtentNode.start({
        nodeId: `en${i}`, disk: await disk(`en${i}`), clock, random, network: network.endpoint(`en${i}:1`), listenAddress: `en${i}:1`,
        manager, faultDomain: `fd${i}`, upgradeDomain: `ud${i}`, groupCommit: true,
      }));
    }
    return new GcStamp({ root, network, manager, metaStore, nodes });
  }

  async close(): Promise<void> {
    try {
      await this.manager.close();
      for (const node of this.nodes) await node.stop();
      await this.metaStore.close();
      await this.network.close();
    } finally {
      await rm(this.root, { recursive: true, force: true });
    }
  }
}

interface Settings {
  readonly totalBytes: number;
  readonly chunkBytes: number;
  readonly blobChunks: number;
}

function settings(): Settings {
  const values = parseBenchArgs(headerUsage(import.meta.url), { mib: { type: 'string', default: '1024' }, 'chunk-kib': { type: 'string', default: '4096' } });
  const totalBytes = Number(values.mib) * 1024 * 1024;
  const chunkBytes = Number(values['chunk-kib']) * 1024;
  if (!Number.isSafeInteger(totalBytes) || !Number.isSafeInteger(chunkBytes) || chunkBytes <= 0 || totalBytes < chunkBytes) throw new Error('bad --mib / --chunk-kib');
  return { totalBytes, chunkBytes, blobChunks: 1 };
}

/** Bytes of every file under a directory (recursively). */
async function directoryBytes(path: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(path, { withFileTypes: true })) {
    const child = join(path, entry.name);
    total += entry.isDirectory() ? await directoryBytes(child) : (await stat(child)).size;
  }
  return total;
}

async function nodeDiskBytes(stamp: GcStamp): Promise<number> {
  let total = 0;
  for (let i = 0; i < 3; i++) total += await directoryBytes(join(stamp.root, `en${i}`));
  return total;
}

function blobBytes(seed: number, length: number): Buffer {
  const bytes = Buffer.alloc(length, seed % 251);
  bytes.writeUInt32BE(seed, 0);
  return bytes;
}

class Workload {
  readonly partition: Partition;
  /** Per blob: the seed of each chunk (content is a function of it), or null once deleted. */
  readonly blobs = new Map<number, number[]>();
  private seed = 0;

  constructor(partition: Partition) {
    this.partition = partition;
  }

  async put(blob: number, options: Settings): Promise<void> {
    const refs: DataRef[] = [];
    const seeds: number[] = [];
    for (let i = 0; i < options.blobChunks; i++) {
      this.seed += 1;
      seeds.push(this.seed);
      refs.push(await this.partition.appendData(blobBytes(this.seed, options.chunkBytes)));
    }
    await this.partition.put(Buffer.from(`blob-${String(blob).padStart(6, '0')}`), [{ name: 'data', value: { kind: 'dataRefs', value: refs } }]);
    this.blobs.set(blob, seeds);
  }

  async delete(blob: number): Promise<void> {
    await this.partition.delete(Buffer.from(`blob-${String(blob).padStart(6, '0')}`));
    this.blobs.delete(blob);
  }

  /** Reads every live blob back; throws on any difference. Returns the live bytes. */
  async verify(options: Settings): Promise<number> {
    let live = 0;
    for (const [blob, seeds] of this.blobs) {
      const row = await this.partition.get(Buffer.from(`blob-${String(blob).padStart(6, '0')}`));
      const column = row?.columns[0]?.value;
      if (column?.kind !== 'dataRefs' || column.value.length !== seeds.length) throw new Error(`blob ${blob}: row missing or malformed`);
      for (const [index, ref] of column.value.entries()) {
        const bytes = await this.partition.readData(ref);
        if (!bytes.equals(blobBytes(seeds[index] ?? -1, options.chunkBytes))) throw new Error(`blob ${blob} chunk ${index}: bytes differ`);
        live += bytes.length;
      }
    }
    return live;
  }
}

/** Fisher–Yates with the seeded random: the same blobs are overwritten and deleted every run. */
function shuffle(items: number[], random: SeededRandom): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = random.int(i + 1);
    const item = items[i] ?? 0;
    items[i] = items[j] ?? 0;
    items[j] = item;
  }
}

async function openPartition(stamp: GcStamp): Promise<Partition> {
  const create = async (name: string): Promise<number> => (await stamp.manager.createStream({ name })).streamId;
  const ids: PartitionStreamIds = { meta: await create('gc/meta'), log: await create('gc/log'), checkpoint: await create('gc/checkpoint'), data: await create('gc/data') };
  const client = new StreamClient({ manager: stamp.manager, network: stamp.network.endpoint('gc-bench'), clock: stamp.clock, clientId: 'gc-bench' });
  return Partition.open({
    partitionId: 1, streams: new StreamLayerPartitionStreams({ client, manager: stamp.manager }), streamIds: ids, clock: stamp.clock, ownerEpoch: 1,
    autoMaintenance: false, limits: { dataGcGraceMs: 0 },
  });
}

async function main(): Promise<void> {
  const options = settings();
  const blobs = Math.floor(options.totalBytes / (options.chunkBytes * options.blobChunks));
  const stamp = await GcStamp.start();
  const started = performance.now();
  try {
    const partition = await openPartition(stamp);
    const workload = new Workload(partition);
    for (let blob = 0; blob < blobs; blob++) await workload.put(blob, options);
    const order = [...Array(blobs).keys()];
    shuffle(order, new SeededRandom(3));
    const changed = Math.round(blobs * 0.45);
    for (const blob of order.slice(0, changed)) await workload.put(blob, options);
    for (const blob of order.slice(changed, 2 * changed)) await workload.delete(blob);
    await partition.checkpoint();
    await partition.compact();
    const liveBytes = await workload.verify(options);
    const diskBefore = await nodeDiskBytes(stamp);
    const gcStarted = performance.now();
    let passes = 0;
    for (let quiet = false; !quiet && passes < 12; passes++) {
      const before = JSON.stringify(partition.stats().gc);
      await partition.collectGarbage();
      const after = partition.stats().gc;
      quiet = JSON.stringify({ ...after, passes: 0, lastLiveBytes: 0, lastDeadBytes: 0 }) === JSON.stringify({ ...JSON.parse(before) as object, passes: 0, lastLiveBytes: 0, lastDeadBytes: 0 });
    }
    const gcSeconds = (performance.now() - gcStarted) / 1000;
    await stamp.manager.finishRemovals();
    const liveAfter = await workload.verify(options);
    const diskAfter = await nodeDiskBytes(stamp);
    const gc = partition.stats().gc;
    await partition.close();
    const report = {
      benchmark: 'partition-gc', date: new Date().toISOString(), node: process.version,
      settings: { ...options, blobs, overwritten: changed, deleted: changed, replicas: 3, disks: 'RealDisk (tmpdir)', network: 'LocalNetwork' },
      liveBytes: liveAfter, liveBytesBeforeGc: liveBytes,
      diskBytesBefore: diskBefore, diskBytesAfter: diskAfter,
      ratioBefore: diskBefore / (liveBytes * 3), ratioAfter: diskAfter / (liveAfter * 3),
      passes, gcSeconds, totalSeconds: (performance.now() - started) / 1000, gc,
    };
    console.log(JSON.stringify(report, null, 2));
    await mkdir('bench/results', { recursive: true });
    await writeFile(`bench/results/partition-gc-${report.date.slice(0, 19).replaceAll(':', '-')}.json`, JSON.stringify(report, null, 2) + '\n');
  } finally {
    await stamp.close();
  }
}

await main();
