// The fault run of issue 6 on a real `kura dev-cluster` (a script, not a CI test: it takes minutes).
//
//   npm run faults:cluster [-- --etcd-members 3 --window-s 45 --writers 4 --readers 2 --blob-kib 64 --keep]
//
// A whole stamp (3 etcd members by default, 2 controllers, 6 extent nodes in 3 fault domains,
// 2 partition servers, 2 front ends) under a steady SDK load through the balancer: writers upload
// unique blobs (each acknowledged one is recorded with its SHA-256), readers download random
// acknowledged blobs and compare. One process of each role is killed with SIGKILL in turn, each
// followed by a window of --window-s seconds: an extent node, the partition server owning the most
// partitions, a front end, the leading controller, an etcd member. Nothing is restarted.
//
// Figures per kill: seconds of unavailability (the longest stretch after the kill with no
// acknowledged write, and the same for reads), operations that failed after the SDK's retries, and
// for the extent node the time until full replication is restored (no extent in the replica map
// names the dead node any more: each replica it held was copied to a live node and recorded). At the end: every acknowledged write read
// back (lost must be 0) and corrupt reads served (must be 0). Saved to
// bench/results/cluster-faults-<date>.json and printed.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { EtcdMetaStore } from '../src/metastore/etcd-meta-store.ts';
import { metaRangeLimitMax } from '../src/constants.ts';
import { prefixEnd } from '../src/metastore/meta-store.ts';
import { readMap } from '../src/partition/partition-map.ts';
import { extentRecord } from '../src/stream/protocol.ts';
import { readControllerLeader } from '../src/stamp/cluster-controller.ts';
import { DevClusterProcess, delay, killAllDevClusters, tempClusterDirectory } from '../test/helpers/dev-cluster.ts';
import { runKura } from '../test/helpers/kura-serve.ts';

const { values: flags } = parseArgs({
  options: {
    'etcd-members': { type: 'string', default: '3' },
    'window-s': { type: 'string', default: '45' },
    writers: { type: 'string', default: '4' },
    readers: { type: 'string', default: '2' },
    'blob-kib': { type: 'string', default: '64' },
    keep: { type: 'boolean', default: false },
  },
});
const windowMs = Number(flags['window-s']) * 1000;
const writerCount = Number(flags.writers);
const readerCount = Number(flags.readers);
const blobBytes = Number(flags['blob-kib']) * 1024;
/** Replication must be back within this long after an extent node's kill, or it is reported as not restored. */
const replicationWaitMs = 180_000;
const baselineMs = 10_000;

interface Operation {
  readonly kind: 'write' | 'read';
  readonly startMs: number;
  readonly endMs: number;
  readonly ok: boolean;
  readonly error?: string;
}

interface KillFigure {
  readonly role: string;
  readonly victim: string;
  readonly atS: number;
  readonly writeUnavailableS: number;
  readonly readUnavailableS: number;
  readonly writesAcknowledged: number;
  readonly writesFailed: number;
  readonly readsFailed: number;
  readonly replicationRestoredS: number | null;
  readonly note: string;
}

const runStartMs = performance.now();
const now = (): number => performance.now() - runStartMs;
const sha = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** Steady load: writers upload unique blobs, readers check random acknowledged ones. */
class Load {
  readonly acknowledged = new Map<string, string>();
  readonly operations: Operation[] = [];
  corruptReads = 0;
  private stopping = false;
  private readonly running: Promise<void>[] = [];
  private readonly container: ContainerClient;

  constructor(container: ContainerClient) {
    this.container = container;
  }

  start(): void {
    for (let w = 0; w < writerCount; w++) this.running.push(this.writer(w));
    for (let r = 0; r < readerCount; r++) this.running.push(this.reader());
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.running);
  }

  private async writer(writer: number): Promise<void> {
    for (let sequence = 0; !this.stopping; sequence++) {
      const name = `w${writer}/${sequence}`;
      const body = Buffer.concat([Buffer.from(`${name}\n`), randomBytes(blobBytes)]);
      const startMs = now();
      try {
        await this.container.getBlockBlobClient(name).upload(body, body.length);
        this.acknowledged.set(name, sha(body));
        this.operations.push({ kind: 'write', startMs, endMs: now(), ok: true });
      } catch (error) {
        this.operations.push({ kind: 'write', startMs, endMs: now(), ok: false, error: describe(error) });
      }
    }
  }

  private async reader(): Promise<void> {
    while (!this.stopping) {
      const names = [...this.acknowledged.keys()];
      const name = names[Math.floor(Math.random() * names.length)];
      if (name === undefined) {
        await delay(50);
        continue;
      }
      const startMs = now();
      try {
        const body = await this.container.getBlockBlobClient(name).downloadToBuffer();
        if (sha(body) !== this.acknowledged.get(name)) this.corruptReads++;
        this.operations.push({ kind: 'read', startMs, endMs: now(), ok: true });
      } catch (error) {
        this.operations.push({ kind: 'read', startMs, endMs: now(), ok: false, error: describe(error) });
      }
    }
  }

  /** The longest stretch in [fromMs, toMs] with no successful operation of this kind ending in it. */
  longestGapMs(kind: Operation['kind'], fromMs: number, toMs: number): number {
    const ends = this.operations.filter((op) => op.kind === kind && op.ok && op.endMs > fromMs && op.endMs <= toMs).map((op) => op.endMs).sort((a, b) => a - b);
    let previous = fromMs;
    let longest = 0;
    for (const end of [...ends, toMs]) {
      longest = Math.max(longest, end - previous);
      previous = end;
    }
    return longest;
  }

  count(kind: Operation['kind'], ok: boolean, fromMs: number, toMs: number): number {
    return this.operations.filter((op) => op.kind === kind && op.ok === ok && op.endMs > fromMs && op.endMs <= toMs).length;
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message.split('\n')[0] ?? error.name : String(error);
}

/** Extents in the replica map (sm/extents/* in etcd) and how many still name `nodeId` as a replica. */
async function extentsOnNode(etcd: EtcdMetaStore, nodeId: string): Promise<{ extents: number; onNode: number }> {
  const prefix = 'sm/extents/';
  let start = prefix;
  let extents = 0;
  let onNode = 0;
  for (;;) {
    const page = await etcd.range(start, { end: prefixEnd(prefix), limit: metaRangeLimitMax });
    for (const kv of page) {
      extents++;
      if (extentRecord.parse(JSON.parse(kv.value)).replicas.includes(nodeId)) onNode++;
    }
    const last = page.at(-1);
    if (page.length < metaRangeLimitMax || last === undefined) return { extents, onNode };
    // Keys are printable ASCII: '!' is the smallest byte that can follow, so nothing is skipped.
    start = `${last.key}!`;
  }
}

/** Time from the kill until no extent names the dead node any more: every replica it held was
 * copied elsewhere and recorded (null: not within replicationWaitMs). */
async function waitReplication(etcd: EtcdMetaStore, nodeId: string, killMs: number): Promise<{ restoredS: number | null; onNodeAtKill: number; extents: number }> {
  const atKill = await extentsOnNode(etcd, nodeId);
  while (now() - killMs < replicationWaitMs) {
    const current = await extentsOnNode(etcd, nodeId).catch(() => null);
    if (current?.onNode === 0) return { restoredS: (now() - killMs) / 1000, onNodeAtKill: atKill.onNode, extents: current.extents };
    await delay(500);
  }
  return { restoredS: null, onNodeAtKill: atKill.onNode, extents: atKill.extents };
}

async function chooseVictim(role: string, etcd: EtcdMetaStore): Promise<string> {
  switch (role) {
    case 'extent-node': return 'en1';
    case 'frontend': return 'fe1';
    case 'etcd': return 'etcd1';
    case 'controller': {
      return (await readControllerLeader(etcd))?.controllerId ?? 'c1';
    }
    case 'partition-server': {
      const map = await readMap(etcd);
      const owners = new Map<string, number>();
      for (const entry of map?.map.partitions ?? []) if (entry.owner !== null) owners.set(entry.owner.serverId, (owners.get(entry.owner.serverId) ?? 0) + 1);
      return [...owners.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'ps1';
    }
    default: throw new Error(`no victim rule for ${role}`);
  }
}

async function killOne(role: string, cluster: DevClusterProcess, etcd: EtcdMetaStore, load: Load): Promise<KillFigure> {
  const victim = await chooseVictim(role, etcd);
  const killMs = now();
  process.stdout.write(`[${(killMs / 1000).toFixed(0)} s] kill -9 ${victim} (${role})\n`);
  await cluster.kill9(victim);
  const replication = role === 'extent-node' ? waitReplication(etcd, victim, killMs) : null;
  await delay(windowMs);
  const restored = replication === null ? null : await replication;
  const endMs = now();
  const errors = [...new Set(load.operations.filter((op) => !op.ok && op.endMs > killMs && op.endMs <= endMs).map((op) => op.error ?? ''))].slice(0, 3);
  return {
    role, victim, atS: Math.round(killMs / 100) / 10,
    writeUnavailableS: Math.round(load.longestGapMs('write', killMs, endMs) / 100) / 10,
    readUnavailableS: Math.round(load.longestGapMs('read', killMs, endMs) / 100) / 10,
    writesAcknowledged: load.count('write', true, killMs, endMs),
    writesFailed: load.count('write', false, killMs, endMs),
    readsFailed: load.count('read', false, killMs, endMs),
    replicationRestoredS: restored?.restoredS === undefined || restored.restoredS === null ? null : Math.round(restored.restoredS * 10) / 10,
    note: [restored === null ? '' : `${restored.onNodeAtKill} of ${restored.extents} extents had a replica on ${victim}`, errors.length === 0 ? '' : `errors: ${errors.join(' | ')}`].filter((text) => text !== '').join('; '),
  };
}

/** Every acknowledged write read back, 8 at a time. */
async function readBack(container: ContainerClient, acknowledged: ReadonlyMap<string, string>): Promise<{ lost: string[]; corrupt: string[] }> {
  const lost: string[] = [];
  const corrupt: string[] = [];
  const queue = [...acknowledged.entries()];
  await Promise.all(Array.from({ length: 8 }, async () => {
    for (let next = queue.pop(); next !== undefined; next = queue.pop()) {
      const [name, digest] = next;
      try {
        if (sha(await container.getBlockBlobClient(name).downloadToBuffer()) !== digest) corrupt.push(name);
      } catch (error) {
        lost.push(`${name}: ${describe(error)}`);
      }
    }
  }));
  return { lost, corrupt };
}

async function main(): Promise<void> {
  const directory = await tempClusterDirectory('faults');
  process.stdout.write(`starting kura dev-cluster in ${directory} (${flags['etcd-members']} etcd members)\n`);
  const cluster = await DevClusterProcess.start({ directory, args: ['--etcd-members', flags['etcd-members']], readyTimeoutMs: 300_000 });
  process.stdout.write(`ready in ${cluster.readySeconds} s\n`);
  const state = (await cluster.processes()).filter((record) => record.role === 'etcd').map((record) => record.address ?? '');
  const etcd = await EtcdMetaStore.connect({ endpoints: state });
  const client = BlobServiceClient.fromConnectionString(cluster.connectionString, { retryOptions: { maxTries: 10, retryDelayInMs: 250, maxRetryDelayInMs: 4_000, tryTimeoutInMs: 60_000 } });
  const container = client.getContainerClient('faults');
  await container.create();
  const load = new Load(container);
  load.start();
  await delay(baselineMs);
  const baseline = { writesPerS: load.count('write', true, 0, now()) / (now() / 1000), readsPerS: load.count('read', true, 0, now()) / (now() / 1000) };
  process.stdout.write(`baseline: ${baseline.writesPerS.toFixed(1)} writes/s, ${baseline.readsPerS.toFixed(1)} reads/s of ${blobBytes / 1024} KiB\n`);
  const kills: KillFigure[] = [];
  for (const role of ['extent-node', 'partition-server', 'frontend', 'controller', 'etcd']) {
    const figure = await killOne(role, cluster, etcd, load);
    kills.push(figure);
    process.stdout.write(`  ${JSON.stringify(figure)}\n`);
  }
  await load.stop();
  const status = await runKura(['status', '--data', directory]);
  const check = await readBack(container, load.acknowledged);
  await etcd.close();
  const stopCode = await cluster.stop();
  const report = {
    date: new Date().toISOString(), flags, baseline,
    acknowledgedWrites: load.acknowledged.size, lostWrites: check.lost.length, corruptOnReadBack: check.corrupt.length, corruptReadsServed: load.corruptReads,
    reads: load.count('read', true, 0, Number.POSITIVE_INFINITY), kills, stopExitCode: stopCode, statusAfterKills: status.stdout, lost: check.lost.slice(0, 20),
  };
  await mkdir('bench/results', { recursive: true });
  const path = `bench/results/cluster-faults-${report.date.slice(0, 19).replaceAll(':', '-')}.json`;
  await writeFile(path, `${JSON.stringify(report, null, 2)}\n`);
  printSummary(report, kills, path);
  if (!flags.keep) await killAllDevClusters();
}

function printSummary(report: { acknowledgedWrites: number; lostWrites: number; corruptOnReadBack: number; corruptReadsServed: number; reads: number }, kills: readonly KillFigure[], path: string): void {
  const lines = [
    '',
    'kill -9 (role: victim)          write gap s  read gap s  writes ok/failed  reads failed  replication restored s',
    ...kills.map((kill) => `${`${kill.role}: ${kill.victim}`.padEnd(32)}${String(kill.writeUnavailableS).padStart(11)}${String(kill.readUnavailableS).padStart(12)}${`${kill.writesAcknowledged}/${kill.writesFailed}`.padStart(18)}${String(kill.readsFailed).padStart(14)}  ${kill.replicationRestoredS ?? '-'}`),
    '',
    `acknowledged writes ${report.acknowledgedWrites}, lost ${report.lostWrites}, corrupt on read-back ${report.corruptOnReadBack}; reads ${report.reads}, corrupt reads served ${report.corruptReadsServed}`,
    `saved ${path}`,
    '',
  ];
  process.stdout.write(lines.join('\n'));
}

try {
  await main();
} catch (error) {
  process.stderr.write(`cluster-faults: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`);
  await killAllDevClusters();
  process.exitCode = 1;
}
