// One server child process for a benchmark peer: spawned directly (no shell, so the pid is the
// server's own), ready when its loopback port accepts a TCP connection (and, when a readyLine is
// given, once its stdout printed a line matching it: `kura serve` prints its connection string
// after it listens), unavailable when it exits before that (its last stderr lines say why). Every live child is tracked so the runner
// can kill all of them on failure or interruption; none outlives the benchmark.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { PeerUnavailableError } from './peer.ts';

const outputTailBytes = 4096;
const readyPollMs = 50;
const stopGraceMs = 5_000;

const liveChildren = new Set<ChildProcess>();

/** SIGKILL of every child still running: for the runner's failure and exit paths. */
export function killAllChildren(): void {
  for (const child of liveChildren) child.kill('SIGKILL');
  liveChildren.clear();
}

/** Kills every child on exit, SIGINT and SIGTERM (a benchmark's entry point calls it once). */
export function installChildCleanup(): void {
  process.once('exit', killAllChildren);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      killAllChildren();
      process.exit(130);
    });
  }
}

export interface ChildServerOptions {
  readonly command: string;
  readonly args: readonly string[];
  readonly port: number;
  /** Working directory of the server: the peer's temporary data directory. */
  readonly cwd: string;
  readonly readyTimeoutMs: number;
  /** A stdout line the server prints once it serves; its first capture group is kept (printedValue). */
  readonly readyLine?: RegExp;
  /** A file that gets the server's whole stdout and stderr (e.g. a V8 --trace-gc log), appended. */
  readonly outputFile?: string;
}

export class ChildServer {
  private readonly options: ChildServerOptions;
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private outputTail = '';
  /** The last stdout line not yet ended by a newline (bounded), while no readyLine was seen. */
  private stdoutLine = '';
  private printed: string | null = null;

  constructor(options: ChildServerOptions) {
    this.options = options;
  }

  get pid(): number {
    const pid = this.child?.pid;
    if (pid === undefined) throw new Error('child server is not running');
    return pid;
  }

  /** Spawns the server and waits until its port accepts connections. */
  async start(): Promise<number> {
    if (this.child !== null) throw new Error('child server already running');
    const child = spawn(this.options.command, [...this.options.args], { cwd: this.options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    liveChildren.add(child);
    this.outputTail = '';
    this.stdoutLine = '';
    this.printed = null;
    const output = this.options.outputFile === undefined ? null : createWriteStream(this.options.outputFile, { flags: 'a' });
    const keepTail = (chunk: Buffer): void => {
      this.outputTail = (this.outputTail + chunk.toString('utf8')).slice(-outputTailBytes);
      output?.write(chunk);
    };
    child.stdout?.on('data', (chunk: Buffer) => {
      keepTail(chunk);
      this.watchStdout(chunk);
    });
    child.stderr?.on('data', keepTail);
    child.once('close', () => output?.end());
    let exitCode: number | null | undefined;
    this.exited = new Promise((resolve) => {
      child.once('exit', (code) => {
        exitCode = code;
        liveChildren.delete(child);
        resolve();
      });
      child.once('error', () => resolve());
    });
    await this.waitReady(() => exitCode !== undefined);
    if (exitCode !== undefined || child.pid === undefined) {
      this.child = null;
      throw new PeerUnavailableError(`exited with code ${String(exitCode)}: ${lastLine(this.outputTail)}`);
    }
    return child.pid;
  }

  /** The readyLine's first capture group as the server printed it; null without a readyLine. */
  get printedValue(): string | null {
    return this.printed;
  }

  async kill9(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    child.kill('SIGKILL');
    await this.exited;
    this.child = null;
  }

  /** SIGTERM, then SIGKILL if the server has not exited within the grace period. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child === null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), stopGraceMs);
    await this.exited;
    clearTimeout(timer);
    this.child = null;
  }

  private async waitReady(hasExited: () => boolean): Promise<void> {
    const deadline = performance.now() + this.options.readyTimeoutMs;
    while (!hasExited()) {
      if (this.printedReady() && (await portAccepts(this.options.port))) return;
      if (performance.now() > deadline) {
        await this.kill9();
        throw new PeerUnavailableError(`not ready on 127.0.0.1:${this.options.port} after ${this.options.readyTimeoutMs} ms: ${lastLine(this.outputTail)}`);
      }
      await sleep(readyPollMs);
    }
    await this.exited;
  }

  private printedReady(): boolean {
    return this.options.readyLine === undefined || this.printed !== null;
  }

  /** Looks for the readyLine in each stdout line (bounded: a line's last outputTailBytes are kept). */
  private watchStdout(chunk: Buffer): void {
    const pattern = this.options.readyLine;
    if (pattern === undefined || this.printed !== null) return;
    const lines = (this.stdoutLine + chunk.toString('utf8')).split('\n');
    this.stdoutLine = (lines.pop() ?? '').slice(-outputTailBytes);
    for (const line of lines) {
      const match = pattern.exec(line);
      if (match !== null) {
        this.printed = match[1] ?? match[0];
        return;
      }
    }
  }
}

function portAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function lastLine(text: string): string {
  const lines = text.trim().split('\n');
  return lines[lines.length - 1]?.trim() ?? '';
}
