// The fault run of issue 6 on a real `kura dev-cluster` (a script, not a CI test: it takes minutes).
//
//   npm run faults:cluster [-- --etcd-members 3 --window-s 45 --writers 4 --readers 2 --blob-kib 64 --keep]
//   npm run faults:cluster -- --random --seconds 300 [--seed S --mean-gap-s 8]
//
// Random mode (--random): dev-cluster supervises (restarts what dies, on the same ports); for
// --seconds the run kills -9 a random process at random moments (gaps uniform in 0.5-1.5 x
// --mean-gap-s), chosen among those whose loss the stamp survives together with what is down
// already (pickVictim): at most 2 extent nodes down and never 2 in one fault domain (every extent
// keeps a live replica: 3 replicas in 3 domains), at least 1 partition server, 1 front end and 1
// controller up (the leader or a standby, whichever is drawn), an etcd quorum kept (3 members: 1
// down at most; 1 member: never). A killed process counts as down until cluster.json shows it back
// (a new pid: dev-cluster writes it once the process is ready). Figures per kill: seconds until it
// was back, the longest stretch without an acknowledged write (read) from the kill until 2 s after
// it was back, failures in that window, for an extent node the seconds until every extent's
// replicas are on running nodes again; totals over the run. The seed is printed and saved: the same
// seed draws the same sequence of choices (which of the allowed processes, which gap), though
// which are allowed at a moment depends on how fast the previous ones came back.
//
// Once mode (the default) runs dev-cluster with --no-restart, so an extent node's kill measures
// re-replication after a permanent loss. A whole stamp (3 etcd members by default, 2 controllers, 6 extent nodes in 3 fault domains,
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
import { headerUsage, parseBenchArgs } from './lib/cli-args.ts';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { EtcdMetaStore } from '../src/metastore/etcd-meta-store.ts';
import { metaRangeLimitMax } from '../src/constants.ts';
import { prefixEnd } from '../src/metastore/meta-store.ts';
import { readMap } from '../src/partition/partition-map.ts';
import { extentRecord } from '../src/stream/protocol.ts';
import { readControllerLeader } from '../src/stamp/cluster-controller.ts';
import { SeededRandom } from '../src/util/random.ts';
import type { ProcessRecord } from '../src/cluster/cluster-state.ts';
import { DevClusterProcess, delay, isAlive, killAllDevClusters, tempClusterDirectory } from '../test/helpers/dev-cluster.ts';
import { runKura } from '../test/helpers/kura-serve.ts';

const flags = parseBenchArgs(headerUsage(import.meta.url), {
  'etcd-members': { type: 'string', default: '3' },
  'window-s': { type: 'string', default: '45' },
  writers: { type: 'string', default: '4' },
  readers: { type: 'string', default: '2' },
  'blob-kib': { type: 'string', default: '64' },
  keep: { type: 'boolean', default: false },
  random: { type: 'boolean', default: false },
  seconds: { type: 'string', default: '300' },
  seed: { type: 'string' },
  'mean-gap-s': { type: 'string', default: '8' },
});
const seed = flags.seed === undefined ? randomBytes(4).readUInt32BE(0) : Number(flags.seed);
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

/** The replica list of every extent in the replica map (sm/extents/* in etcd). */
async function extentReplicas(etcd: EtcdMetaStore): Promise<string[][]> {
  const prefix = 'sm/extents/';
  let start = prefix;
  const replicas: string[][] = [];
  for (;;) {
    const page = await etcd.range(start, { end: prefixEnd(prefix), limit: metaRangeLimitMax });
    for (const kv of page) replicas.push(extentRecord.parse(JSON.parse(kv.value)).replicas);
    const last = page.at(-1);
    if (page.length < metaRangeLimitMax || last === undefined) return replicas;
    // Keys are printable ASCII: '!' is the smallest byte that can follow, so nothing is skipped.
    start = `${last.key}!`;
  }
}

/** Extents in the replica map and how many still name `nodeId` as a replica. */
async function extentsOnNode(etcd: EtcdMetaStore, nodeId: string): Promise<{ extents: number; onNode: number }> {
  const all = await extentReplicas(etcd);
  return { extents: all.length, onNode: all.filter((replicas) => replicas.includes(nodeId)).length };
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
  process.stdout.write(`starting kura dev-cluster in ${directory} (${flags['etcd-members']} etcd members${flags.random ? `; random kills for ${flags.seconds} s, seed ${seed}` : ''})\n`);
  const restart = flags.random ? [] : ['--no-restart'];
  const cluster = await DevClusterProcess.start({ directory, args: ['--etcd-members', flags['etcd-members'], ...restart], readyTimeoutMs: 300_000 });
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
  let random: RandomRun | null = null;
  if (flags.random) {
    random = await runRandom(cluster, etcd, load);
  } else {
    for (const role of ['extent-node', 'partition-server', 'frontend', 'controller', 'etcd']) {
      const figure = await killOne(role, cluster, etcd, load);
      kills.push(figure);
      process.stdout.write(`  ${JSON.stringify(figure)}\n`);
    }
  }
  await load.stop();
  const status = await runKura(['status', '--data', directory]);
  const check = await readBack(container, load.acknowledged);
  await etcd.close();
  const stopCode = await cluster.stop();
  const report = {
    date: new Date().toISOString(), flags, mode: flags.random ? 'random' : 'once', ...(flags.random ? { seed, random } : {}), baseline,
    acknowledgedWrites: load.acknowledged.size, lostWrites: check.lost.length, corruptOnReadBack: check.corrupt.length, corruptReadsServed: load.corruptReads,
    reads: load.count('read', true, 0, Number.POSITIVE_INFINITY), kills, stopExitCode: stopCode, statusAfterKills: status.stdout, lost: check.lost.slice(0, 20),
  };
  await mkdir('bench/results', { recursive: true });
  const path = `bench/results/cluster-faults-${flags.random ? 'random-' : ''}${report.date.slice(0, 19).replaceAll(':', '-')}.json`;
  await writeFile(path, `${JSON.stringify(report, null, 2)}\n`);
  if (random === null) printSummary(report, kills, path);
  else printRandomSummary(report, random, path);
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

// ---- random mode ---------------------------------------------------------------------------

interface RandomKill {
  readonly role: string;
  readonly victim: string;
  /** For a controller: whether it led when killed. */
  readonly leader: boolean | null;
  readonly killedPid: number;
  readonly killMs: number;
  /** Processes already down when it was killed. */
  readonly alsoDown: readonly string[];
  backMs: number | null;
  /** Extent nodes: when every extent's replicas were on running nodes again. */
  replicasMs: number | null;
}

interface RandomKillFigure {
  readonly role: string;
  readonly victim: string;
  readonly leader: boolean | null;
  readonly atS: number;
  readonly alsoDown: readonly string[];
  readonly backS: number | null;
  readonly writeGapS: number;
  readonly readGapS: number;
  readonly writesFailed: number;
  readonly readsFailed: number;
  readonly replicasOnRunningNodesS: number | null;
}

interface RandomRun {
  readonly seconds: number;
  readonly kills: readonly RandomKillFigure[];
  readonly killsByRole: Readonly<Record<string, number>>;
  readonly mostDownAtOnce: number;
  readonly longestWriteGapS: number;
  readonly longestReadGapS: number;
  /** Whole seconds of the fault period in which no write (read) was acknowledged. */
  readonly secondsWithoutWrite: number;
  readonly secondsWithoutRead: number;
  readonly writesAcknowledged: number;
  readonly writesFailed: number;
  readonly readsFailed: number;
  readonly allBackS: number | null;
  readonly replicasOnRunningNodesAtEndS: number | null;
}

const backTimeoutMs = 180_000;
const round1 = (value: number): number => Math.round(value * 10) / 10;

/** How many of each role may be down at once (docs/cluster.md, "Fault runs"). */
function survivable(record: ProcessRecord, down: ReadonlySet<string>, all: readonly ProcessRecord[]): boolean {
  const same = all.filter((other) => other.role === record.role);
  const downSame = same.filter((other) => down.has(other.name));
  switch (record.role) {
    case 'extent-node':
      return downSame.length < 2 && downSame.every((other) => other.faultDomain !== record.faultDomain);
    case 'etcd':
      return downSame.length + 1 <= Math.floor((same.length - 1) / 2);
    case 'controller':
    case 'partition-server':
    case 'frontend':
      return downSame.length + 1 < same.length;
    case 'balancer':
      return false;
  }
}

function pickVictim(rng: SeededRandom, all: readonly ProcessRecord[], down: ReadonlySet<string>): ProcessRecord | null {
  const candidates = all.filter((record) => !down.has(record.name) && record.pid !== null && survivable(record, down, all)).sort((a, b) => a.name.localeCompare(b.name));
  return candidates.length === 0 ? null : candidates[rng.int(candidates.length)] ?? null;
}

async function within<T>(promise: Promise<T>, ms: number): Promise<T | null> {
  return Promise.race([promise, delay(ms).then(() => null)]).catch(() => null);
}

/** Whole seconds in [fromMs, toMs) with no successful operation of this kind ending in them. */
function emptySeconds(load: Load, kind: Operation['kind'], fromMs: number, toMs: number): number {
  const busy = new Set(load.operations.filter((op) => op.kind === kind && op.ok && op.endMs >= fromMs && op.endMs < toMs).map((op) => Math.floor((op.endMs - fromMs) / 1000)));
  return Math.floor((toMs - fromMs) / 1000) - busy.size;
}

async function runRandom(cluster: DevClusterProcess, etcd: EtcdMetaStore, load: Load): Promise<RandomRun> {
  const rng = new SeededRandom(seed);
  const meanGapMs = Number(flags['mean-gap-s']) * 1000;
  const gapMs = (): number => meanGapMs * (0.5 + rng.next());
  const startMs = now();
  const endMs = startMs + Number(flags.seconds) * 1000;
  const kills: RandomKill[] = [];
  const down = new Map<string, RandomKill>();
  let mostDown = 0;
  let nextKillMs = startMs + gapMs();
  let nextReportMs = startMs + 10_000;
  let nextReplicaCheckMs = 0;
  const stamp = (ms: number): string => `[${((ms - startMs) / 1000).toFixed(0).padStart(4)} s]`;
  const say = (line: string): void => { process.stdout.write(`${stamp(now())} ${line}\n`); };
  say(`random kills for ${flags.seconds} s, seed ${seed} (replay: --random --seconds ${flags.seconds} --seed ${seed} --mean-gap-s ${flags['mean-gap-s']})`);
  for (;;) {
    const killing = now() < endMs;
    if (!killing && down.size === 0) break;
    if (!killing && now() > endMs + backTimeoutMs) {
      say(`not back within ${backTimeoutMs / 1000} s of the end: ${[...down.keys()].join(', ')}`);
      break;
    }
    const records = await cluster.processes();
    for (const [name, kill] of down) {
      const record = records.find((entry) => entry.name === name);
      if (record?.pid === null || record === undefined || record.pid === kill.killedPid || !isAlive(record.pid)) continue;
      kill.backMs = now();
      down.delete(name);
      say(`${name} back (pid ${record.pid}) ${((kill.backMs - kill.killMs) / 1000).toFixed(1)} s after its kill`);
    }
    if (now() >= nextReplicaCheckMs && kills.some((kill) => kill.role === 'extent-node' && kill.replicasMs === null)) {
      nextReplicaCheckMs = now() + 1_000;
      const downNodes = new Set([...down.values()].filter((kill) => kill.role === 'extent-node').map((kill) => kill.victim));
      const replicas = await within(extentReplicas(etcd), 5_000);
      if (replicas !== null && replicas.every((list) => list.length >= 3 && list.every((node) => !downNodes.has(node)))) {
        for (const kill of kills) if (kill.role === 'extent-node' && kill.replicasMs === null && kill.backMs !== null) kill.replicasMs = now();
      }
    }
    if (killing && now() >= nextKillMs) {
      const victim = pickVictim(rng, records.filter((record) => record.role !== 'balancer'), new Set(down.keys()));
      if (victim === null) {
        nextKillMs = now() + 1_000;
      } else {
        const leader = victim.role === 'controller' ? (await within(readControllerLeader(etcd), 2_000))?.controllerId === victim.name : null;
        const kill: RandomKill = { role: victim.role, victim: victim.name, leader, killedPid: victim.pid ?? 0, killMs: now(), alsoDown: [...down.keys()], backMs: null, replicasMs: null };
        await cluster.kill9(victim.name);
        kills.push(kill);
        down.set(victim.name, kill);
        mostDown = Math.max(mostDown, down.size);
        say(`kill -9 ${victim.name} (${victim.role}${leader === true ? ', leader' : leader === false ? ', standby' : ''})${kill.alsoDown.length === 0 ? '' : `; also down: ${kill.alsoDown.join(', ')}`}`);
        nextKillMs = now() + gapMs();
      }
    }
    if (now() >= nextReportMs) {
      nextReportMs += 10_000;
      const span = [startMs, now()] as const;
      say(`writes ${load.count('write', true, ...span)} ok / ${load.count('write', false, ...span)} failed, reads ${load.count('read', true, ...span)} ok / ${load.count('read', false, ...span)} failed, corrupt ${load.corruptReads}; ${kills.length} kills; down: ${down.size === 0 ? 'none' : [...down.keys()].join(', ')}`);
    }
    await delay(200);
  }
  // The end of the fault period: every killed node back, then every extent on running nodes.
  const allBackMs = down.size === 0 ? now() : null;
  let replicasAtEndMs: number | null = null;
  while (now() < endMs + backTimeoutMs) {
    const replicas = await within(extentReplicas(etcd), 5_000);
    if (replicas !== null && replicas.every((list) => list.length >= 3)) {
      replicasAtEndMs = now();
      break;
    }
    await delay(1_000);
  }
  for (const kill of kills) if (kill.role === 'extent-node' && kill.replicasMs === null && kill.backMs !== null) kill.replicasMs = replicasAtEndMs;
  const stopMs = now();
  const figures = kills.map((kill): RandomKillFigure => {
    const windowEndMs = Math.min(stopMs, (kill.backMs ?? stopMs) + 2_000);
    return {
      role: kill.role, victim: kill.victim, leader: kill.leader, atS: round1((kill.killMs - startMs) / 1000), alsoDown: kill.alsoDown,
      backS: kill.backMs === null ? null : round1((kill.backMs - kill.killMs) / 1000),
      writeGapS: round1(load.longestGapMs('write', kill.killMs, windowEndMs) / 1000),
      readGapS: round1(load.longestGapMs('read', kill.killMs, windowEndMs) / 1000),
      writesFailed: load.count('write', false, kill.killMs, windowEndMs),
      readsFailed: load.count('read', false, kill.killMs, windowEndMs),
      replicasOnRunningNodesS: kill.replicasMs === null ? null : round1((kill.replicasMs - kill.killMs) / 1000),
    };
  });
  const killsByRole: Record<string, number> = {};
  for (const kill of kills) killsByRole[kill.role] = (killsByRole[kill.role] ?? 0) + 1;
  return {
    seconds: Number(flags.seconds), kills: figures, killsByRole, mostDownAtOnce: mostDown,
    longestWriteGapS: round1(load.longestGapMs('write', startMs, endMs) / 1000),
    longestReadGapS: round1(load.longestGapMs('read', startMs, endMs) / 1000),
    secondsWithoutWrite: emptySeconds(load, 'write', startMs, endMs),
    secondsWithoutRead: emptySeconds(load, 'read', startMs, endMs),
    writesAcknowledged: load.count('write', true, startMs, stopMs),
    writesFailed: load.count('write', false, startMs, stopMs),
    readsFailed: load.count('read', false, startMs, stopMs),
    allBackS: allBackMs === null ? null : round1((allBackMs - endMs) / 1000),
    replicasOnRunningNodesAtEndS: replicasAtEndMs === null ? null : round1((replicasAtEndMs - endMs) / 1000),
  };
}

function printRandomSummary(report: { acknowledgedWrites: number; lostWrites: number; corruptOnReadBack: number; corruptReadsServed: number; reads: number }, run: RandomRun, path: string): void {
  const roles = ['extent-node', 'partition-server', 'frontend', 'controller', 'etcd'];
  const perRole = roles.map((role) => {
    const of = run.kills.filter((kill) => kill.role === role);
    const max = (pick: (kill: RandomKillFigure) => number | null): string => (of.length === 0 ? '-' : String(Math.max(...of.map((kill) => pick(kill) ?? Number.NaN))));
    const median = (pick: (kill: RandomKillFigure) => number | null): string => {
      const values = of.map(pick).filter((value): value is number => value !== null).sort((a, b) => a - b);
      return values.length === 0 ? '-' : String(values[Math.floor(values.length / 2)]);
    };
    return `${role.padEnd(18)}${String(of.length).padStart(6)}${`${median((kill) => kill.backS)} / ${max((kill) => kill.backS)}`.padStart(16)}${`${median((kill) => kill.writeGapS)} / ${max((kill) => kill.writeGapS)}`.padStart(18)}${`${median((kill) => kill.readGapS)} / ${max((kill) => kill.readGapS)}`.padStart(17)}${String(of.reduce((sum, kill) => sum + kill.writesFailed + kill.readsFailed, 0)).padStart(10)}`;
  });
  const lines = [
    '',
    `seed ${seed}: ${run.kills.length} kills in ${run.seconds} s, at most ${run.mostDownAtOnce} down at once`,
    'role                kills  back s (med/max)  write gap s (m/max)  read gap s (m/max)  failed',
    ...perRole,
    '',
    `longest stretch without an acknowledged write ${run.longestWriteGapS} s, read ${run.longestReadGapS} s; seconds without one: ${run.secondsWithoutWrite} / ${run.secondsWithoutRead} of ${run.seconds}`,
    `every killed process back ${run.allBackS ?? 'never'} s after the last kill period; every extent with 3 replicas ${run.replicasOnRunningNodesAtEndS ?? 'never'} s after it`,
    `acknowledged writes ${report.acknowledgedWrites}, lost ${report.lostWrites}, corrupt on read-back ${report.corruptOnReadBack}; reads ${report.reads}, corrupt reads served ${report.corruptReadsServed}; failed after the SDK's retries: ${run.writesFailed} writes, ${run.readsFailed} reads`,
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
