// The blob benchmark's `kura dev-cluster` peers: a whole stamp as separate processes on loopback
// (1 etcd member to save CPU, 1 controller, 3 extent nodes in 3 fault domains = 3 replicas,
// 1 partition server, 1 or 2 front ends behind dev-cluster's built-in TCP balancer), started on
// the peer's temporary data directory with the balancer on its port. Ready once dev-cluster
// printed its connection string (after every process is ready).
//
// Addressing: by default every request goes through dev-cluster's one endpoint, the balancer, as a
// user's would; it hands each connection to a front end's process, so it costs next to nothing
// (it piped every byte before, 0.4-0.9 ms of CPU per 64 KiB operation on 2 shared cores:
// bench/README.md, "Dev cluster: where the CPU goes"). `-direct` peers spread the timed loops'
// requests over the front ends' own addresses instead (PeerEndpoint.spreadConnectionStrings, one
// per front end, as a client given a list of addresses or DNS round robin would). Setup, warm-up
// and the kill -9 read-back always use the balancer's connection string.
//
// What differs from a one-process peer:
// - the server is many processes: a sample sums CPU and resident memory over the supervisor
//   (which runs the balancer) and every process its cluster.json names, etcd included;
// - kill -9 is of the whole cluster: the supervisor and every child at once (the children run
//   in their own process group, so killing the supervisor alone would leave them running), and
//   the restart is `kura dev-cluster` again on the same --data and --listen port;
// - a stop is the same kill -9 (the data directory is deleted next), so it is bounded;
// - it runs only the cells named by clusterWorkloads (each restart costs a whole stamp's start).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { devConnectionString, type BenchPeer, type PeerEndpoint } from './peer.ts';
import { clusterPeerPrefix } from './ratios.ts';
import { kuraConnectionStringLine } from './peers.ts';
import { ProcessPeer, type LaunchContext } from './process-peer.ts';
import { readProcessSample, type ProcessSample } from './proc-sample.ts';
import type { WorkloadSpec } from './workloads.ts';

const kuraMain = join(import.meta.dirname, '..', '..', 'src', 'main', 'kura.ts');
/** A whole stamp's start on a loaded 2-core machine: ~10 s quiet, several times that under load. */
const clusterReadyTimeoutMs = 180_000;
const goneTimeoutMs = 15_000;
const gonePollMs = 20;

/** Every cluster process any cluster peer started, killed on the benchmark's exit. */
const knownClusterPids = new Set<number>();
let exitHookInstalled = false;

export function clusterPeerName(frontends: number): string {
  return `${clusterPeerPrefix}${frontends}fe`;
}

export function isClusterPeer(name: string): boolean {
  return name.startsWith(clusterPeerPrefix);
}

/** The cells a cluster peer runs: Put Blob and Get Blob 64 KiB ×16 with the SDK. */
export function clusterWorkloads(spec: WorkloadSpec): boolean {
  return (spec.kind === 'put' || spec.kind === 'get') && spec.client === 'sdk' && spec.sizeBytes === 64 * 1024 && spec.concurrency === 16;
}

/** The pids a cluster.json names (the supervisor and every process), without duplicates. */
export function clusterPids(clusterJsonText: string): number[] {
  const parsed = JSON.parse(clusterJsonText) as { supervisorPid?: unknown; processes?: unknown };
  const pids = new Set<number>();
  if (typeof parsed.supervisorPid === 'number') pids.add(parsed.supervisorPid);
  if (Array.isArray(parsed.processes)) {
    for (const entry of parsed.processes as unknown[]) {
      const pid = typeof entry === 'object' && entry !== null && 'pid' in entry ? entry.pid : null;
      if (typeof pid === 'number' && pid > 0) pids.add(pid);
    }
  }
  return [...pids];
}

/** CPU and memory of a set of processes as one: CPU and RSS summed, peak = sum of each peak. */
export function sumSamples(samples: readonly ProcessSample[]): ProcessSample {
  return samples.reduce((total, sample) => ({
    cpuSeconds: total.cpuSeconds + sample.cpuSeconds,
    rssBytes: total.rssBytes + sample.rssBytes,
    peakRssBytes: total.peakRssBytes + sample.peakRssBytes,
  }), { cpuSeconds: 0, rssBytes: 0, peakRssBytes: 0 });
}

/** Alive and not a zombie (a killed grandchild waits for its new parent to reap it). */
function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const pid of knownClusterPids) killQuietly(pid);
  });
}

/** One process of a running dev cluster, as cluster.json names it (the balancer is the supervisor). */
export interface ClusterProcess {
  readonly name: string;
  readonly role: string;
  readonly pid: number;
  /** Its service address (a front end's HTTP address), or null. */
  readonly address: string | null;
}

/** The processes a cluster.json names, each once (by pid; the first name wins). */
export function clusterProcesses(clusterJsonText: string): ClusterProcess[] {
  const parsed = JSON.parse(clusterJsonText) as { processes?: unknown };
  const byPid = new Map<number, ClusterProcess>();
  if (!Array.isArray(parsed.processes)) return [];
  for (const entry of parsed.processes as unknown[]) {
    if (typeof entry !== 'object' || entry === null) continue;
    const { name, role, pid, address } = entry as Record<string, unknown>;
    if (typeof name !== 'string' || typeof role !== 'string' || typeof pid !== 'number' || pid <= 0 || byPid.has(pid)) continue;
    byPid.set(pid, { name, role, pid, address: typeof address === 'string' ? address : null });
  }
  return [...byPid.values()];
}

export class DevClusterPeer extends ProcessPeer {
  /** The running stamp's pids, read from cluster.json once it is ready. */
  private pids: number[] = [];

  private readonly addressing: ClusterAddressing;

  constructor(frontends: number, addressing: ClusterAddressing) {
    super({
      name: clusterPeerName(frontends) + (addressing === 'direct' ? '-direct' : ''),
      persistence: { kind: 'durable' },
      readyTimeoutMs: clusterReadyTimeoutMs,
      connectionStringLine: kuraConnectionStringLine,
      launch: ({ port, dataDirectory }: LaunchContext) => ({
        command: process.execPath,
        args: [
          kuraMain, 'dev-cluster', '--data', join(dataDirectory, 'cluster'),
          '--etcd-members', '1', '--controllers', '1', '--extent-nodes', '3', '--partition-servers', '1',
          '--frontends', String(frontends), '--listen', `127.0.0.1:${port}`,
        ],
      }),
    });
    this.addressing = addressing;
    installExitHook();
  }

  override async start(): ReturnType<BenchPeer['start']> {
    const endpoint = await super.start();
    this.readPids();
    return this.withFrontends(endpoint);
  }

  override async restart(): ReturnType<BenchPeer['restart']> {
    const endpoint = await super.restart();
    this.readPids();
    return this.withFrontends(endpoint);
  }

  /** Direct addressing: one connection string per front end (their ports are kept across restarts). */
  private withFrontends(endpoint: PeerEndpoint): PeerEndpoint {
    if (this.addressing === 'balancer') return endpoint;
    const strings = this.processes().filter((entry) => entry.role === 'frontend' && entry.address !== null).map((entry) => {
      const port = Number(entry.address?.slice(entry.address.lastIndexOf(':') + 1));
      return devConnectionString(port);
    });
    if (strings.length === 0) throw new Error(`${this.name}: cluster.json names no front end address`);
    return { ...endpoint, spreadConnectionStrings: strings };
  }

  /** SIGKILL of the supervisor and every process of the stamp at once; resolves once all are gone. */
  override async kill9(): Promise<void> {
    const pids = this.pids;
    for (const pid of pids) killQuietly(pid);
    await super.kill9();
    const deadline = performance.now() + goneTimeoutMs;
    while (pids.some(isRunning)) {
      if (performance.now() > deadline) throw new Error(`${this.name}: processes ${pids.filter(isRunning).join(', ')} still running ${goneTimeoutMs} ms after SIGKILL`);
      await sleep(gonePollMs);
    }
    for (const pid of pids) knownClusterPids.delete(pid);
    this.pids = [];
  }

  override async stop(): Promise<void> {
    await this.kill9();
    await super.stop();
  }

  /** The whole stamp: a process that exited makes the sample throw (the sampler keeps the last). */
  override sample(): ProcessSample {
    if (this.pids.length === 0) throw new Error(`${this.name} is not running`);
    return sumSamples(this.pids.map((pid) => readProcessSample(pid)));
  }

  /** Every process of the running stamp (cluster.json), the supervisor (balancer) included. */
  processes(): ClusterProcess[] {
    return clusterProcesses(readFileSync(join(this.dataDirectory, 'cluster', 'cluster.json'), 'utf8'));
  }

  private readPids(): void {
    const pids = clusterPids(readFileSync(join(this.dataDirectory, 'cluster', 'cluster.json'), 'utf8'));
    if (!pids.includes(this.serverPid)) pids.push(this.serverPid);
    for (const pid of pids) knownClusterPids.add(pid);
    this.pids = pids;
  }
}

/** How the timed loops reach the front ends: each at its own address, or through the balancer. */
export type ClusterAddressing = 'direct' | 'balancer';

/** `kura dev-cluster` with 1 etcd member, 3 extent nodes, 1 partition server and `frontends` front ends. */
export function devClusterPeer(frontends: number, options: { readonly addressing?: ClusterAddressing } = {}): DevClusterPeer {
  return new DevClusterPeer(frontends, options.addressing ?? 'balancer');
}
