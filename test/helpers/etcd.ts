// Starts real etcd processes (Debian's etcd-server, binary `etcd`) for the MetaStore contract
// suite and for cluster tests: one member or a 3-member Raft cluster on free loopback ports, with
// data in a fresh temporary directory.
//
// Invariants: every process started here is killed and its directory removed by stop(), which
// callers run in an after/afterEach hook so a failing test never leaks an etcd. start waits until
// every member reports healthy, or fails within startTimeoutMs with the tail of etcd's output.
//
// Fault model: a missing etcd binary is a loud failure (never a silent skip): the suite must not
// pass vacuously. A port taken between probing and binding makes etcd exit; start retries with
// fresh ports a bounded number of times.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { commandIn } from './netns.ts';

/** Generous: etcd usually takes well under a second on loopback. */
const startTimeoutMs = 20_000;
const stopTimeoutMs = 5_000;
const startAttemptsMax = 3;
const outputTailBytesMax = 4096;

export interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDirectory: string;
  /** kill -9 this member (data kept), e.g. to test loss of a member. */
  kill(): Promise<void>;
  /** Starts a killed member again on the same ports and data, and waits until it is healthy. */
  restart(): Promise<void>;
}

export interface EtcdCluster {
  readonly endpoints: string[];
  readonly members: readonly EtcdMember[];
  /** Kills every member and removes the temporary directory. Safe to call twice. */
  stop(): Promise<void>;
}

export interface StartEtcdOptions {
  /** 1 (default) or 3. */
  readonly memberCount?: number;
  /** One member inside a network namespace (test/helpers/netns.ts), listening on the host's
   * address at etcd's usual ports (a fresh namespace has them free); default: loopback. */
  readonly host?: { readonly namespace: string; readonly address: string };
  /** One member per host (three hosts: a 3-member Raft cluster across namespaces); overrides
   * memberCount and host. */
  readonly hosts?: readonly { readonly namespace: string; readonly address: string }[];
}

interface MemberPlan {
  readonly name: string;
  readonly host: string;
  /** `ip netns exec <namespace>` prefix, or none. */
  readonly launcher: readonly string[];
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDirectory: string;
}

export function requireEtcdBinary(): void {
  const probe = spawnSync('etcd', ['--version'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) {
    throw new Error('etcd is not installed: run scripts/setup.sh (apt-get install -y etcd-server); the MetaStore contract suite needs a real etcd and is never skipped');
  }
}

export async function startEtcd(options: StartEtcdOptions = {}): Promise<EtcdCluster> {
  const hosts = options.hosts ?? (options.host === undefined ? null : [options.host]);
  const memberCount = hosts?.length ?? options.memberCount ?? 1;
  if (memberCount !== 1 && memberCount !== 3) throw new Error(`etcd memberCount must be 1 or 3, got ${memberCount}`);
  requireEtcdBinary();
  let lastError: unknown = null;
  for (let attempt = 0; attempt < startAttemptsMax; attempt++) {
    const root = await mkdtemp(join(tmpdir(), 'kura-etcd-'));
    try {
      return await startMembers(root, memberCount, hosts);
    } catch (error) {
      lastError = error;
      await rm(root, { recursive: true, force: true });
    }
  }
  throw new Error(`etcd did not start after ${startAttemptsMax} attempts`, { cause: lastError });
}

async function startMembers(root: string, memberCount: number, hosts: NonNullable<StartEtcdOptions['hosts']> | null): Promise<EtcdCluster> {
  const plans: MemberPlan[] = [];
  for (let i = 0; i < memberCount; i++) {
    const dataDirectory = join(root, `m${i}`);
    const host = hosts?.[i];
    plans.push(host === undefined
      ? { name: `m${i}`, host: '127.0.0.1', launcher: [], clientPort: await freePort(), peerPort: await freePort(), dataDirectory }
      : { name: `m${i}`, host: host.address, launcher: commandIn(host.namespace, []), clientPort: 2379, peerPort: 2380, dataDirectory });
  }
  const initialCluster = plans.map((plan) => `${plan.name}=http://${plan.host}:${plan.peerPort}`).join(',');
  const members = plans.map((plan) => new RunningMember(plan, initialCluster));
  const cluster: EtcdCluster = {
    endpoints: members.map((member) => member.clientUrl),
    members,
    stop: async () => {
      await Promise.all(members.map((member) => member.kill()));
      await rm(root, { recursive: true, force: true });
    },
  };
  try {
    for (const member of members) member.spawn();
    await Promise.all(members.map((member) => member.waitHealthy()));
    return cluster;
  } catch (error) {
    await cluster.stop();
    throw error;
  }
}

class RunningMember implements EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDirectory: string;
  private readonly initialCluster: string;
  private readonly launcher: readonly string[];
  private child: ChildProcess | null = null;
  private output = '';
  private exited: Promise<void> = Promise.resolve();

  constructor(plan: MemberPlan, initialCluster: string) {
    this.name = plan.name;
    this.clientUrl = `http://${plan.host}:${plan.clientPort}`;
    this.peerUrl = `http://${plan.host}:${plan.peerPort}`;
    this.dataDirectory = plan.dataDirectory;
    this.initialCluster = initialCluster;
    this.launcher = plan.launcher;
  }

  spawn(): void {
    // Short heartbeat and election timeout: faster elections and a 1 s minimum lease TTL on
    // loopback (etcd's minimum TTL is 1.5 election timeouts).
    const args = [
      '--name', this.name, '--data-dir', this.dataDirectory,
      '--listen-client-urls', this.clientUrl, '--advertise-client-urls', this.clientUrl,
      '--listen-peer-urls', this.peerUrl, '--initial-advertise-peer-urls', this.peerUrl,
      '--initial-cluster', this.initialCluster, '--initial-cluster-state', 'new',
      '--initial-cluster-token', 'kura-test', '--heartbeat-interval', '20', '--election-timeout', '200',
      '--log-level', 'warn',
    ];
    const [command, ...prefix] = [...this.launcher, 'etcd'];
    const child = spawn(command ?? 'etcd', [...prefix, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const append = (chunk: Buffer): void => {
      this.output = (this.output + chunk.toString('utf8')).slice(-outputTailBytesMax);
    };
    child.stdout.on('data', append);
    child.stderr.on('data', append);
    this.exited = new Promise((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    });
    this.child = child;
  }

  async waitHealthy(): Promise<void> {
    const deadline = Date.now() + startTimeoutMs;
    while (Date.now() < deadline) {
      const child = this.child;
      if (child === null || child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`etcd member ${this.name} exited during start:\n${this.output}`);
      }
      if (await this.isHealthy()) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error(`etcd member ${this.name} not healthy after ${startTimeoutMs} ms:\n${this.output}`);
  }

  private async isHealthy(): Promise<boolean> {
    try {
      const response = await fetch(`${this.clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
      const body: unknown = await response.json();
      return typeof body === 'object' && body !== null && 'health' in body && body.health === 'true';
    } catch {
      return false;
    }
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    this.child = null;
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, stopTimeoutMs).unref());
    await Promise.race([this.exited, timeout]);
  }

  async restart(): Promise<void> {
    await this.kill();
    this.spawn();
    await this.waitHealthy();
  }
}

/** A free loopback port: bind port 0, read the port, release it. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}
