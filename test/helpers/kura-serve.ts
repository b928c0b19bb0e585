// A real `kura serve` process for integration tests: temp data directories, a free loopback port,
// started through bin/kura and ready once it printed its connection string (bounded wait). Every
// process started here is killed by killAllServes() (call it from an after() hook) so a failing
// test never leaves a server behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const repositoryRoot = join(import.meta.dirname, '..', '..');
export const kuraBin = join(repositoryRoot, 'bin', 'kura');
const readyTimeoutMs = 60_000;
/** SIGTERM to exit; kura serve's own bound is stampStopTimeoutMs plus its watchdog's slack. */
const stopTimeoutMs = 30_000;
const running = new Set<ChildProcess>();
const tempRoots: string[] = [];

/** A port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** `count` data directories under a fresh temp root (removed by cleanupServes). */
export async function tempDisks(count: number, label = 'serve'): Promise<string[]> {
  const root = await mkdtemp(join(tmpdir(), `kura-${label}-`));
  tempRoots.push(root);
  return Array.from({ length: count }, (_, index) => join(root, `disk${index}`));
}

export interface ServeOptions {
  readonly disks: readonly string[];
  readonly port?: number;
  readonly extraArgs?: readonly string[];
  /** Added to the test's environment (KURA_FAILPOINTS, KURA_FAILPOINTS_AFTER_READY). */
  readonly env?: Readonly<Record<string, string>>;
}

export class KuraServe {
  readonly child: ChildProcess;
  readonly port: number;
  readonly disks: readonly string[];
  stdout = '';
  stderr = '';
  private readonly exited: Promise<number | null>;

  private constructor(child: ChildProcess, port: number, disks: readonly string[]) {
    this.child = child;
    this.port = port;
    this.disks = disks;
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => { this.stdout += chunk; });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { this.stderr = (this.stderr + chunk).slice(-64 * 1024); });
    this.exited = new Promise((resolve) => child.once('exit', (code) => {
      running.delete(child);
      resolve(code);
    }));
  }

  /** The start-up time `kura serve` printed ("Ready in N ms"), or NaN before it did. */
  get readyMs(): number {
    return Number(/Ready in (\d+) ms/.exec(this.stdout)?.[1] ?? Number.NaN);
  }

  private static async spawn(options: ServeOptions): Promise<KuraServe> {
    const port = options.port ?? (await freePort());
    const args = ['serve', ...options.disks.flatMap((disk) => ['--disk', disk]), '--blob-port', String(port), ...(options.extraArgs ?? [])];
    const env = options.env === undefined ? process.env : { ...process.env, ...options.env };
    const child = spawn(kuraBin, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    running.add(child);
    return new KuraServe(child, port, options.disks);
  }

  /** Spawns `kura serve`; resolves once the connection string is printed. */
  static async start(options: ServeOptions): Promise<KuraServe> {
    const serve = await KuraServe.spawn(options);
    await serve.waitForOutput(/^DefaultEndpointsProtocol=.*;$/m, readyTimeoutMs);
    return serve;
  }

  /** Spawns `kura serve` expecting it to fail; resolves with its exit code and output. */
  static async startFailing(options: ServeOptions): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; stdout: string }> {
    const serve = await KuraServe.spawn(options);
    const code = await serve.exitWithin(readyTimeoutMs);
    return { code, signal: serve.child.signalCode, stderr: serve.stderr, stdout: serve.stdout };
  }

  /** Waits (bounded) for the process to exit on its own; its exit code (null: a signal, child.signalCode). */
  async exitWithin(timeoutMs: number): Promise<number | null> {
    const code = await exitWithin(this.exited, timeoutMs);
    if (code === 'timeout') throw new Error(`kura serve did not exit within ${timeoutMs} ms; stdout: ${this.stdout}`);
    return code;
  }

  get connectionString(): string {
    const match = /^DefaultEndpointsProtocol=.*;$/m.exec(this.stdout);
    if (match === null) throw new Error('no connection string printed');
    return match[0];
  }

  get blobEndpoint(): string {
    return `http://127.0.0.1:${this.port}/devstoreaccount1`;
  }

  async waitForOutput(pattern: RegExp, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pattern.test(this.stdout)) {
      if (this.child.exitCode !== null) throw new Error(`kura serve exited ${this.child.exitCode} before ${pattern}: ${this.stderr.slice(-4000)}`);
      if (Date.now() > deadline) throw new Error(`kura serve printed no ${pattern} within ${timeoutMs} ms: ${this.stderr.slice(-4000)}`);
      await delay(20);
    }
  }

  /** kill -9: no shutdown code runs. */
  async kill9(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM, then the exit code (bounded; SIGKILL after stopTimeoutMs). */
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    const code = await exitWithin(this.exited, stopTimeoutMs);
    if (code !== 'timeout') return code;
    await this.kill9();
    throw new Error(`kura serve did not stop within ${stopTimeoutMs} ms of SIGTERM`);
  }
}

/** Runs `kura <args>` to completion (bounded). */
export async function runKura(args: readonly string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runCommand(kuraBin, args, { timeoutMs });
}

/** Runs a command to completion with a bound; never through a shell. */
export async function runCommand(command: string, args: readonly string[], options: { readonly timeoutMs: number; readonly env?: NodeJS.ProcessEnv; readonly cwd?: string }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env, ...(options.cwd === undefined ? {} : { cwd: options.cwd }) });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk; });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
  const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)));
  clearTimeout(timer);
  running.delete(child);
  return { code, stdout, stderr };
}

/** Kills every process started here and removes the temp directories. */
export async function cleanupServes(): Promise<void> {
  const exits = [...running].filter((child) => child.exitCode === null && child.signalCode === null).map((child) => new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  }));
  await Promise.all(exits);
  running.clear();
  for (const root of tempRoots.splice(0)) await rm(root, { recursive: true, force: true });
}

/** The exit code, or 'timeout' after timeoutMs. The timer is cleared on exit: a pending one keeps
 * the test file's process alive until it fires (30-60 s after the last stop, every file). */
async function exitWithin(exited: Promise<number | null>, timeoutMs: number): Promise<number | null | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), timeoutMs); });
  try {
    return await Promise.race([exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
