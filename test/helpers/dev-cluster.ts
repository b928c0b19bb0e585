// A real `kura dev-cluster` for integration tests and the fault script: a fresh temp data
// directory, the balancer on a free port (--listen 127.0.0.1:0), ready once the connection string
// is printed (bounded). The stamp's processes are read from DIR/cluster.json, so a test can kill
// one by pid. killAllDevClusters() (from an after() hook) SIGKILLs every dev-cluster started here
// and every child its cluster.json names, so a failing test never leaves a stamp running.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readClusterState, type ProcessRecord } from '../../src/cluster/cluster-state.ts';
import { kuraBin } from './kura-serve.ts';

const connectionPattern = /^DefaultEndpointsProtocol=.*;$/m;
const stopTimeoutMs = 60_000;
const started = new Set<DevClusterProcess>();
const tempRoots: string[] = [];

export async function tempClusterDirectory(label: string): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), `kura-dc-${label}-`));
  tempRoots.push(root);
  return join(root, 'cluster');
}

export class DevClusterProcess {
  readonly directory: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  stdout = '';
  stderr = '';

  private constructor(directory: string, child: ChildProcess) {
    this.directory = directory;
    this.child = child;
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => { this.stdout += chunk; });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { this.stderr = (this.stderr + chunk).slice(-64 * 1024); });
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  /** Spawns `kura dev-cluster --data DIR --listen 127.0.0.1:0 ...args` (env added to this process's);
   * resolves once it printed the connection string. */
  static async start(options: { readonly directory: string; readonly args: readonly string[]; readonly readyTimeoutMs: number; readonly env?: Readonly<Record<string, string>> }): Promise<DevClusterProcess> {
    const env = options.env === undefined ? process.env : { ...process.env, ...options.env };
    const child = spawn(kuraBin, ['dev-cluster', '--data', options.directory, '--listen', '127.0.0.1:0', ...options.args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    const cluster = new DevClusterProcess(options.directory, child);
    started.add(cluster);
    const deadline = Date.now() + options.readyTimeoutMs;
    while (!connectionPattern.test(cluster.stdout)) {
      if (child.exitCode !== null) throw new Error(`kura dev-cluster exited ${child.exitCode} before it was ready:\n${cluster.stdout}\n${cluster.stderr.slice(-4000)}`);
      if (Date.now() > deadline) throw new Error(`kura dev-cluster not ready within ${options.readyTimeoutMs} ms:\n${cluster.stdout}\n${cluster.stderr.slice(-4000)}`);
      await delay(50);
    }
    return cluster;
  }

  get connectionString(): string {
    const match = connectionPattern.exec(this.stdout);
    if (match === null) throw new Error('no connection string printed');
    return match[0];
  }

  /** The "Stamp ready in N s" figure it printed. */
  get readySeconds(): number {
    return Number(/Stamp ready in ([\d.]+) s/.exec(this.stdout)?.[1] ?? 'NaN');
  }

  async processes(): Promise<ProcessRecord[]> {
    const state = await readClusterState(this.directory);
    if (state === null) throw new Error(`no cluster.json in ${this.directory}`);
    return state.processes;
  }

  async process(name: string): Promise<ProcessRecord> {
    const record = (await this.processes()).find((entry) => entry.name === name);
    if (record === undefined) throw new Error(`no process ${name} in cluster.json`);
    return record;
  }

  /** kill -9 of one process of the stamp (by its pid in cluster.json); resolves once it is gone. */
  async kill9(name: string): Promise<void> {
    const { pid } = await this.process(name);
    if (pid === null) throw new Error(`${name} has no pid`);
    process.kill(pid, 'SIGKILL');
    const deadline = Date.now() + 10_000;
    while (isAlive(pid)) {
      if (Date.now() > deadline) throw new Error(`${name} (pid ${pid}) still alive 10 s after SIGKILL`);
      await delay(20);
    }
  }

  /** SIGTERM to dev-cluster; its exit code (bounded: SIGKILL of everything after stopTimeoutMs). */
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), stopTimeoutMs); });
    const code = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    if (code !== 'timeout') return code;
    await this.killAll();
    throw new Error(`kura dev-cluster did not stop within ${stopTimeoutMs} ms of SIGTERM:\n${this.stdout}`);
  }

  /** SIGKILL of dev-cluster and of every process its cluster.json names. */
  async killAll(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
    const processes = await this.processes().catch(() => []);
    for (const { pid } of processes) {
      if (pid !== null && pid !== this.child.pid && isAlive(pid)) process.kill(pid, 'SIGKILL');
    }
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function killAllDevClusters(): Promise<void> {
  for (const cluster of started) await cluster.killAll();
  started.clear();
  for (const root of tempRoots.splice(0)) await rm(root, { recursive: true, force: true });
}

/** One SDK call (its retries included) through a dev cluster's balancer. */
export const sdkCallLimitMs = 90_000;

/** Options bounding one SDK call by sdkCallLimitMs: @azure/storage-blob has no client-side timeout
 * (its tryTimeoutInMs only sets the server's ?timeout), so a connection nobody answers would hold
 * the call, and the test, forever; aborted, the call fails naming what it did. */
export function boundedCall(): { abortSignal: AbortSignal } {
  return { abortSignal: AbortSignal.timeout(sdkCallLimitMs) };
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
