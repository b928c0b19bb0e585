// Real `kura <role>` processes for cluster integration tests: spawned with Node 24 on
// src/main/kura.ts, their JSON log lines (stdout) collected, ready once a given log message
// appears (bounded wait). Every process started here is killed by killAllRoles() (call it from an
// after() hook) so a failing test never leaves one behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after } from 'node:test';
import { startEtcd, type EtcdCluster } from './etcd.ts';
import { commandIn } from './netns.ts';

const repoRoot = join(import.meta.dirname, '..', '..');
const nodeBinary = join(repoRoot, 'node_modules', '.bin', 'node');
const kuraEntry = join(repoRoot, 'src', 'main', 'kura.ts');
const readyTimeoutMsDefault = 60_000;
const stopTimeoutMs = 30_000;
const running = new Set<RoleProcess>();

export interface LaunchOptions {
  readonly name: string;
  /** Arguments after the script: `kura` subcommand and flags by default. */
  readonly args: readonly string[];
  /** Log message (`"msg"` of a JSON line) that says the process is ready. */
  readonly ready: string;
  readonly timeoutMs?: number;
  /** Run inside this network namespace (`ip netns exec`, test/helpers/netns.ts). */
  readonly namespace?: string;
  /** Script to run with Node 24 instead of src/main/kura.ts. */
  readonly script?: string;
  /** Added to the test's environment (KURA_FAILPOINTS, KURA_FAILPOINTS_AFTER_READY). */
  readonly env?: Readonly<Record<string, string>>;
}

export class RoleProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  /** Every stdout line so far (pino JSON). */
  readonly lines: string[] = [];
  stderr = '';
  private readonly waiters = new Set<() => void>();

  private constructor(name: string, argv: readonly string[], env: Readonly<Record<string, string>> | undefined) {
    this.name = name;
    const [command, ...rest] = argv;
    this.child = spawn(command ?? nodeBinary, rest, { stdio: ['ignore', 'pipe', 'pipe'], env: env === undefined ? process.env : { ...process.env, ...env } });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => {
      running.delete(this);
      this.wake();
      resolve(code);
    }));
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { this.stderr = (this.stderr + chunk).slice(-16 * 1024); });
    createInterface({ input: this.child.stdout ?? process.stdin }).on('line', (line) => {
      this.lines.push(line);
      this.wake();
    });
    running.add(this);
  }

  /** Spawns `kura <args>`; resolves once a log line has `"msg":"<ready>"`. */
  static async start(name: string, args: readonly string[], ready: string, timeoutMs = readyTimeoutMsDefault): Promise<RoleProcess> {
    return RoleProcess.launch({ name, args, ready, timeoutMs });
  }

  /** Spawns a Node script (kura by default), in a network namespace if given; resolves once ready. */
  static async launch(options: LaunchOptions): Promise<RoleProcess> {
    const argv = [nodeBinary, options.script ?? kuraEntry, ...options.args];
    const role = new RoleProcess(options.name, options.namespace === undefined ? argv : commandIn(options.namespace, argv), options.env);
    try {
      await role.waitFor(options.ready, options.timeoutMs ?? readyTimeoutMsDefault);
    } catch (error) {
      role.child.kill('SIGKILL');
      throw error;
    }
    return role;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The first log line (from index `from`) whose msg is `message`, parsed; waits for it (bounded). */
  async waitFor(message: string, timeoutMs: number, from = 0): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.find(message, from);
      if (found !== null) return found;
      if (!this.alive) throw new Error(`${this.name} exited (${this.child.exitCode ?? this.child.signalCode}) before logging "${message}": ${this.stderr.slice(-3000)}`);
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0) throw new Error(`${this.name} logged no "${message}" within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(remainingMs, 500));
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.add(done);
      });
    }
  }

  /** The first log line (from index `from`) whose msg is `message`, parsed, or null. */
  find(message: string, from = 0): Record<string, unknown> | null {
    for (const line of this.lines.slice(from)) {
      if (!line.includes(`"msg":"${message}"`)) continue;
      return JSON.parse(line) as Record<string, unknown>;
    }
    return null;
  }

  /** The `address` field of the first `message` line. */
  addressOf(message: string): string {
    const address = this.find(message)?.['address'];
    if (typeof address !== 'string') throw new Error(`${this.name} logged no "${message}" with an address`);
    return address;
  }

  /** kill -9: no shutdown code runs. */
  async kill9(): Promise<void> {
    if (this.alive) this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM, then the exit code (SIGKILL and an error after 30 s). */
  async stop(): Promise<number | null> {
    if (this.alive) this.child.kill('SIGTERM');
    const code = await Promise.race([this.exited, new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), stopTimeoutMs).unref())]);
    if (code !== 'timeout') return code;
    await this.kill9();
    throw new Error(`${this.name} did not stop within ${stopTimeoutMs} ms of SIGTERM`);
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
    this.waiters.clear();
  }
}

/** Polls `probe` until it returns a value other than null (bounded: throws naming `what`). */
export async function until<T>(what: string, probe: () => T | null | Promise<T | null>, timeoutMs: number, pollMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null) return value;
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}

/** kill -9 every role process still running (after() hooks). */
export async function killAllRoles(): Promise<void> {
  const roles = [...running];
  for (const role of roles) role.child.kill('SIGKILL');
  await Promise.all(roles.map((role) => role.exited));
}

/** GET an admin endpoint; status and parsed JSON body (or text). */
export async function adminGet(address: string, path: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`http://${address}${path}`, { signal: AbortSignal.timeout(5_000) });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON (/healthz, /metrics): the text.
  }
  return { status: response.status, body };
}

export interface ClusterBase {
  /** A fresh temporary directory for the roles' disks. */
  readonly root: string;
  readonly etcd: EtcdCluster;
  /** etcd's client URLs, comma-separated (the --etcd flag). */
  readonly endpoints: string;
}

/** Call inside describe(): registers the after() hook that kills every role, stops etcd and removes
 * the directory; the returned function starts etcd and makes the directory. */
export function useClusterBase(label: string): () => Promise<ClusterBase> {
  let etcd: EtcdCluster | null = null;
  let root = '';
  after(async () => {
    await killAllRoles();
    await etcd?.stop();
    if (root !== '') await rm(root, { recursive: true, force: true });
  });
  return async () => {
    root = await mkdtemp(join(tmpdir(), `kura-${label}-`));
    etcd = await startEtcd();
    return { root, etcd, endpoints: etcd.endpoints.join(',') };
  };
}
