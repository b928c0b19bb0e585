// Where a dev cluster's CPU goes: per-process CPU per operation for Put and Get Blob 64 KiB ×16
// (SDK), read from /proc/<pid>/stat of every process of the stamp (etcd, controller, extent nodes,
// partition server, front ends, and the dev-cluster supervisor, which runs the TCP balancer) and
// of this process (the SDK client) before and after each closed loop, beside the embedded
// default (`kura serve`, 3 disks) measured the same way. Also the whole machine's busy time from
// /proc/stat, so CPU used by anything else (other engineers' runs) shows as "others".
//
// Peers run interleaved, round by round, so each sees the same machine load: an A/B of two shapes
// (e.g. through the balancer vs front ends addressed directly) is `--peers a,b --rounds N`.
// `--profile NAME` takes a CPU profile of one process of the stamp (by its cluster.json name, e.g.
// fe1, ps1, en1, balancer) through its inspector (bench/lib/inspector-profile.ts) during the loops
// and prints its hottest functions. `--frontend-cpu-percent P` gives every front end a CPU budget
// of P % of one core (a cgroup quota, bench/lib/cpu-quota.ts: as if each ran on its own small
// host), so that the front ends are the bottleneck and a second one can show in the throughput on
// this 2-core machine; the CFS throttling of each is printed as the proof that it was the limit.
// Figures only: never run by the test suite.
//
//   node bench/blob/cluster-cpu.ts [--peers kura-3disk,cluster-1fe,cluster-2fe,cluster-2fe-direct]
//       [--kinds put,get,idle] [--seconds 10] [--rounds 1] [--profile fe1] [--top 30] [--frontend-cpu-percent 15]
//
// A peer name: `kura-3disk`, or `cluster-<N>fe` (through dev-cluster's balancer) or
// `cluster-<N>fe-direct` (SDK clients spread over the front ends' own addresses, no balancer).
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { headerUsage, parseBenchArgs } from '../lib/cli-args.ts';
import { parseCpuProfile, summariseProfile, type CpuProfile } from '../lib/cpu-profile.ts';
import { capProcessCpu, type CpuQuota } from '../lib/cpu-quota.ts';
import { profileProcess } from '../lib/inspector-profile.ts';
import { runClosedLoop, type ThroughputResult } from '../lib/stats.ts';
import { forEachBounded, sequenceName } from './bounded-parallel.ts';
import { installChildCleanup, killAllChildren } from './child-server.ts';
import { devClusterPeer, type ClusterProcess, type DevClusterPeer } from './cluster-peer.ts';
import { payloadFor } from './payload.ts';
import { devConnectionString, type BenchPeer } from './peer.ts';
import { kuraServePeer } from './peers.ts';
import { clockTicksPerSecond } from './proc-sample.ts';
import { SdkBlobClient } from './sdk-client.ts';

const repositoryRoot = join(import.meta.dirname, '..', '..');
const sizeBytes = 64 * 1024;
const concurrency = 16;
const getSetSize = 64;
const operationsMax = 100_000;
const kinds = ['put', 'get', 'idle'] as const;
type Kind = (typeof kinds)[number];

interface PeerShape {
  readonly name: string;
  /** null: kura serve with 3 disks. */
  readonly frontends: number | null;
  readonly direct: boolean;
}

interface Options {
  readonly peers: readonly PeerShape[];
  readonly kinds: readonly Kind[];
  readonly seconds: number;
  readonly rounds: number;
  readonly profile: string | null;
  readonly top: number;
  readonly frontendCpuPercent: number | null;
}

function parseShape(name: string): PeerShape {
  if (name === 'kura-3disk') return { name, frontends: null, direct: false };
  const match = /^cluster-(\d+)fe(-direct)?$/.exec(name);
  const frontends = Number(match?.[1]);
  if (match === null || !Number.isSafeInteger(frontends) || frontends < 1 || frontends > 16) throw new Error(`unknown peer ${name}: kura-3disk, cluster-<N>fe or cluster-<N>fe-direct`);
  return { name, frontends, direct: match[2] !== undefined };
}

function parseOptions(): Options {
  const values = parseBenchArgs(headerUsage(import.meta.url), { peers: { type: 'string' }, kinds: { type: 'string' }, seconds: { type: 'string' }, rounds: { type: 'string' }, profile: { type: 'string' }, top: { type: 'string' }, 'frontend-cpu-percent': { type: 'string' } });
  const positive = (text: string | undefined, fallback: number, flag: string): number => {
    const value = text === undefined ? fallback : Number(text);
    if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`--${flag} must be a positive integer`);
    return value;
  };
  const chosenKinds = (values.kinds ?? 'put,get').split(',').map((kind) => {
    const found = kinds.find((candidate) => candidate === kind);
    if (found === undefined) throw new Error(`--kinds: ${kind} is not one of ${kinds.join(', ')}`);
    return found;
  });
  return {
    peers: (values.peers ?? 'kura-3disk,cluster-1fe,cluster-2fe').split(',').map(parseShape),
    kinds: chosenKinds,
    seconds: Math.min(120, positive(values.seconds, 10, 'seconds')),
    rounds: positive(values.rounds, 1, 'rounds'),
    profile: values.profile ?? null,
    top: positive(values.top, 30, 'top'),
    frontendCpuPercent: values['frontend-cpu-percent'] === undefined ? null : positive(values['frontend-cpu-percent'], 100, 'frontend-cpu-percent'),
  };
}

/** Busy and total jiffies of the whole machine (first line of /proc/stat). */
function machineJiffies(): { busy: number; total: number } {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((sum, value) => sum + value, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: total - idle, total };
}

/** User and system CPU seconds of a process (fields 14 and 15 of /proc/<pid>/stat). */
function userSystemSeconds(pid: number): { user: number; system: number } {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).trim().split(/\s+/);
  return { user: Number(fields[11]) / clockTicksPerSecond(), system: Number(fields[12]) / clockTicksPerSecond() };
}

interface CpuReading {
  readonly user: number;
  readonly system: number;
}

/** CPU seconds of each process now; a process that is gone reads NaN (reported, not hidden). */
function cpuNow(processes: readonly ClusterProcess[]): Map<string, CpuReading> {
  const cpu = new Map<string, CpuReading>();
  for (const entry of processes) {
    try {
      cpu.set(entry.name, userSystemSeconds(entry.pid));
    } catch {
      cpu.set(entry.name, { user: Number.NaN, system: Number.NaN });
    }
  }
  const own = process.cpuUsage();
  cpu.set('client', { user: own.user / 1e6, system: own.system / 1e6 });
  return cpu;
}

interface Running {
  readonly peer: BenchPeer;
  readonly processes: readonly ClusterProcess[];
  readonly clients: readonly SdkBlobClient[];
  /** Front ends' CPU budgets by process name (--frontend-cpu-percent). */
  readonly quotas: Map<string, CpuQuota>;
}

async function startPeer(shape: PeerShape, options: Options): Promise<Running> {
  const quotas = new Map<string, CpuQuota>();
  if (shape.frontends === null) {
    const peer = kuraServePeer(3);
    const endpoint = await peer.start();
    return { peer, processes: [{ name: 'kura-serve', role: 'serve', pid: endpoint.pid, address: null }], clients: [new SdkBlobClient({ connectionString: endpoint.connectionString, maxTries: 1 })], quotas };
  }
  const peer: DevClusterPeer = devClusterPeer(shape.frontends);
  const endpoint = await peer.start();
  const processes = peer.processes();
  const frontends = processes.filter((entry) => entry.role === 'frontend' && entry.address !== null);
  const clients = shape.direct
    ? frontends.map((entry) => new SdkBlobClient({ connectionString: devConnectionString(Number(entry.address?.split(':')[1])), maxTries: 1 }))
    : [new SdkBlobClient({ connectionString: endpoint.connectionString, maxTries: 1 })];
  try {
    for (const entry of options.frontendCpuPercent === null ? [] : frontends) quotas.set(entry.name, capProcessCpu(entry.pid, options.frontendCpuPercent ?? 100, entry.name));
  } catch (error) {
    for (const quota of quotas.values()) quota.release();
    await peer.stop();
    throw error;
  }
  return { peer, processes, clients, quotas };
}

interface LoopFigures {
  readonly result: ThroughputResult;
  readonly cpuSeconds: ReadonlyMap<string, CpuReading>;
  readonly machineBusySeconds: number;
  readonly profile: CpuProfile | null;
  readonly throttling: readonly string[];
}

async function loop(running: Running, kind: Kind, options: Options): Promise<LoopFigures> {
  const container = 'cpu';
  const clientFor = (worker: number): SdkBlobClient => {
    const client = running.clients[worker % running.clients.length];
    if (client === undefined) throw new Error('no client');
    return client;
  };
  const body = payloadFor('cluster-cpu', sizeBytes);
  const run = (): Promise<ThroughputResult> => runClosedLoop({
    concurrency: kind === 'idle' ? 1 : concurrency, durationMs: options.seconds * 1000, operationsMax, bytesPerOperation: sizeBytes,
    operation: async (worker, sequence) => {
      if (kind === 'idle') {
        // No requests: what the stamp burns on its own (timers, heartbeats, refreshes), per second.
        await new Promise((resolve) => setTimeout(resolve, options.seconds * 1000));
        return;
      }
      if (kind === 'put') await clientFor(worker).putBlob(container, sequenceName(`p${Date.now()}`, sequence), body);
      else if ((await clientFor(worker).getBlob(container, sequenceName('s', sequence % getSetSize)))?.length !== sizeBytes) throw new Error('Get Blob returned a wrong length');
    },
  });
  const before = cpuNow(running.processes);
  const machineBefore = machineJiffies();
  const throttledBefore = new Map([...running.quotas].map(([name, quota]) => [name, quota.throttled()]));
  const target = options.profile === null ? undefined : running.processes.find((entry) => entry.name === options.profile);
  let profile: CpuProfile | null = null;
  let result: ThroughputResult;
  if (target === undefined) {
    result = await run();
  } else {
    const profiled = await profileProcess(target.pid, run);
    result = profiled.value;
    profile = profiled.profile;
  }
  const after = cpuNow(running.processes);
  const machineAfter = machineJiffies();
  const throttling = [...running.quotas].map(([name, quota]) => {
    const now = quota.throttled();
    const then = throttledBefore.get(name) ?? now;
    return `${name} throttled in ${now.throttledPeriods - then.throttledPeriods} of ${now.periods - then.periods} periods (${((now.throttledMs - then.throttledMs) / 1000).toFixed(1)} s waiting)`;
  });
  const cpuSeconds = new Map([...after].map(([name, value]) => {
    const start = before.get(name) ?? { user: Number.NaN, system: Number.NaN };
    return [name, { user: value.user - start.user, system: value.system - start.system }];
  }));
  return { result, cpuSeconds, machineBusySeconds: (machineAfter.busy - machineBefore.busy) / clockTicksPerSecond(), profile, throttling };
}

function report(shape: PeerShape, kind: Kind, figures: LoopFigures, load: string): void {
  const { result, cpuSeconds } = figures;
  // Idle: "per op" is per second of the loop.
  const ops = kind === 'idle' ? result.seconds : Math.max(1, result.operations);
  const perOp = (seconds: number): string => (seconds / ops * 1000).toFixed(2);
  let stamp = 0;
  const rows: string[] = [];
  for (const [name, { user, system }] of cpuSeconds) {
    if (name !== 'client') stamp += user + system;
    rows.push(`${name}=${perOp(user + system)}(${perOp(system)}s)`);
  }
  const clientReading = cpuSeconds.get('client');
  const client = clientReading === undefined ? 0 : clientReading.user + clientReading.system;
  const others = figures.machineBusySeconds - stamp - client;
  console.log(`${shape.name.padEnd(20)} ${kind} 64 KiB ×16: ${result.opsPerSecond.toFixed(1)} ops/s (${result.operations} in ${result.seconds.toFixed(1)} s), p50 ${result.latency.p50Ms.toFixed(0)} ms, p99 ${result.latency.p99Ms.toFixed(0)} ms, load ${load}`);
  console.log(`  CPU ms/op: stamp ${perOp(stamp)}, client ${perOp(client)}, others ${perOp(others)}; machine busy ${(figures.machineBusySeconds / result.seconds * 100).toFixed(0)} % of 1 core (200 = both)`);
  console.log(`  per process (ms/op, of which in the kernel): ${rows.join(' ')}`);
  const frontendShares = [...cpuSeconds].filter(([name]) => name.startsWith('fe')).map(([name, { user, system }]) => `${name} ${((user + system) / result.seconds * 100).toFixed(0)} %`);
  if (frontendShares.length > 0) console.log(`  front ends' CPU (% of one core): ${frontendShares.join(', ')}`);
  if (figures.throttling.length > 0) console.log(`  CPU quota: ${figures.throttling.join('; ')}`);
}

function printProfile(profile: CpuProfile, top: number): void {
  const summary = summariseProfile(parseCpuProfile(JSON.stringify(profile)), repositoryRoot, top);
  console.log(`profile: ${summary.samples} samples`);
  console.table(summary.bySelf.map((row) => ({ function: row.name, 'self %': (row.self * 100).toFixed(1), 'incl %': (row.inclusive * 100).toFixed(1) })));
  console.table(summary.byInclusive.map((row) => ({ function: row.name, 'incl %': (row.inclusive * 100).toFixed(1) })));
  console.table(summary.byFile.map((row) => ({ file: row.name, 'self %': (row.self * 100).toFixed(1) })));
}

async function measurePeer(shape: PeerShape, options: Options): Promise<void> {
  const running = await startPeer(shape, options);
  try {
    const setup = running.clients[0];
    if (setup === undefined) throw new Error('no client');
    await setup.createContainer('cpu');
    // Warm-up (as the blob benchmark's): a fresh stamp is several times slower for its first second.
    await forEachBounded(64, concurrency, (index) => setup.putBlob('cpu', sequenceName('w', index), payloadFor('w', sizeBytes)));
    await forEachBounded(getSetSize, concurrency, (index) => setup.putBlob('cpu', sequenceName('s', index), payloadFor('cluster-cpu', sizeBytes)));
    await forEachBounded(getSetSize, concurrency, async (index) => { await setup.getBlob('cpu', sequenceName('s', index)); });
    for (const kind of options.kinds) {
      const load = loadavg().map((value) => value.toFixed(1)).join(' ');
      const figures = await loop(running, kind, options);
      report(shape, kind, figures, load);
      if (figures.profile !== null) printProfile(figures.profile, options.top);
    }
  } finally {
    for (const quota of running.quotas.values()) quota.release();
    await running.peer.stop();
  }
}

async function main(): Promise<void> {
  const options = parseOptions();
  installChildCleanup();
  for (let round = 1; round <= options.rounds; round++) {
    console.log(`round ${round} of ${options.rounds}`);
    for (const shape of options.peers) await measurePeer(shape, options);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  killAllChildren();
  process.exitCode = 1;
});
