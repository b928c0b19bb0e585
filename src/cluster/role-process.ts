// RoleProcess: one child process of a dev cluster (an etcd member or a `kura <role>`), its log
// file, its readiness and its bounded stop. `kura dev-cluster` owns one per process of the stamp.
//
//   start:  open <logs>/<name>.log for append → spawn (own process group, stdout and stderr
//           straight into the log file, SIGTERM when the parent dies) → wait until ready: a JSON
//           log line with the given message (its `address` field is the bound address) or a probe
//           that answers true.
//   stop:   SIGTERM → wait up to stopTimeoutMs → SIGKILL → wait for the exit (bounded).
//
// Why the child writes its log file itself (not through a pipe to the parent): if the parent dies
// (kill -9 of dev-cluster), a child writing to a broken pipe would die of EPIPE mid-shutdown;
// with a file it logs its own stop to the end.
// Children die with their parent: each is spawned through util-linux's `setpriv --pdeathsig TERM`
// (prctl PR_SET_PDEATHSIG, which Node does not expose; it survives the exec, so the pid is the
// role's own), so a dev-cluster killed -9 leaves no process running, not even one it was
// restarting (not yet in cluster.json, so the next start could not find it by pid: seen as an
// orphan holding its ports). The kernel sends SIGTERM: the role stops gracefully, as on Ctrl-C.
// Without setpriv (not Linux), children outlive a killed parent and the next start on the same
// data stops the ones cluster.json names.
// Why its own process group: Ctrl-C in a terminal signals the whole foreground group; dev-cluster
// must stop the stamp in reverse order itself, not have every child stop at once.
//
// Connection hand-off (front ends only, `ipc`): the child also gets a Node IPC channel, over which
// the dev cluster's balancer passes each accepted client connection (the socket's descriptor,
// SCM_RIGHTS) with the message connectionHandOffMessage, so the front end serves it itself and no
// byte of it passes through dev-cluster; the child says connectionDrainingMessage when it starts
// draining. A child whose parent died keeps running (the channel is unref'd on its side).
// A hand-off is bounded: Node sends one descriptor at a time and queues the next until the child
// acknowledges the last; a child killed before it acknowledged never answers, and Node then never
// calls back for the queued ones nor closes its copy of the one in flight, so the client connection
// stayed open and unanswered forever (the dev-cluster test's hang: an SDK upload with no client-side
// timeout). So the parent keeps its copy (keepOpen) and closes it itself once the message is written
// (the descriptor in flight holds the connection; if the child dies before reading it, the kernel
// closes it and the client sees a close, then retries); a hand-off still queued when the child exits
// is refused (the socket goes to another front end: the queue is never flushed to a dead child);
// one not written within handOffTimeoutMs is closed (a flush after that sends no descriptor).
//
// Invariants: readiness is judged only on log lines written after this start (the file's length
// before the spawn); every wait is bounded; stop() is idempotent and never leaves the child
// running (SIGKILL after the grace period).
// Fault model: the child may exit before it is ready (the error carries the tail of its log, also
// as context.logTail), never become ready (timeout, the child is killed), or be killed from outside
// at any time (`exited` resolves; the owner decides what to report).
import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process';
import { open, stat } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { StorageError } from '../util/errors.ts';

/** How a role says it is ready. */
export type ReadyCheck =
  | { readonly kind: 'log'; readonly message: string }
  | { readonly kind: 'probe'; readonly probe: () => Promise<boolean> };

export interface RoleProcessOptions {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly logPath: string;
  readonly ready: ReadyCheck;
  readonly readyTimeoutMs: number;
  readonly stopTimeoutMs: number;
  readonly pollMs: number;
  /** Aborted: stop waiting for readiness (the child is killed, start rejects). */
  readonly abort?: AbortSignal | undefined;
  /** Give the child an IPC channel for connection hand-off; its messages go to onMessage. */
  readonly ipc?: { readonly onMessage: (message: unknown) => void } | undefined;
}

/** Parent → front end: the socket that comes with this message is a client connection to serve. */
export const connectionHandOffMessage = 'kura.connection';
/** Front end → parent: draining, hand no more connections over. */
export const connectionDrainingMessage = 'kura.draining';

/** How a hand-off ended. handed: the child has the connection (or it is in flight to it); refused:
 * not sent, the socket is still the caller's; closed: not written within handOffTimeoutMs, the
 * socket was closed (the client sees a close and retries). */
export type HandOffResult = 'handed' | 'refused' | 'closed';

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** Bytes of a log kept in an error message. */
const logTailBytes = 3000;
/** Bytes read per poll of a log while waiting for the ready line. */
const logReadBytesMax = 1024 * 1024;
/** A hand-off not written to the child's channel by then is given up: the child has not
 * acknowledged the previous descriptor for that long (stalled, or dead and not yet reaped). */
const handOffTimeoutMs = 5_000;

export class RoleProcess {
  readonly name: string;
  readonly pid: number;
  /** The `address` field of every log line up to the ready one, by message ("admin server
   * listening", "extent node listening", ...); empty for probe readiness. */
  readonly addresses: ReadonlyMap<string, string>;
  /** Resolves when the child exits, however that happens. */
  readonly exited: Promise<ExitStatus>;
  private readonly child: ChildProcess;
  private readonly options: RoleProcessOptions;
  private exitStatus: ExitStatus | null = null;
  private stopping: Promise<ExitStatus> | null = null;
  /** Hand-offs not settled yet, each refused when the child exits. */
  private readonly handOffsPending = new Set<(result: HandOffResult) => void>();

  private constructor(init: { child: ChildProcess; exited: Promise<ExitStatus>; addresses: ReadonlyMap<string, string>; options: RoleProcessOptions }) {
    this.name = init.options.name;
    this.child = init.child;
    this.pid = init.child.pid ?? 0;
    this.exited = init.exited;
    this.addresses = init.addresses;
    this.options = init.options;
    void init.exited.then((status) => {
      this.exitStatus = status;
      for (const settle of [...this.handOffsPending]) settle('refused');
    });
  }

  /** Spawns the child and resolves once it is ready; on failure the child is killed first. */
  static async start(options: RoleProcessOptions): Promise<RoleProcess> {
    const logStartBytes = await fileLength(options.logPath);
    const log = await open(options.logPath, 'a');
    let child: ChildProcess;
    try {
      const stdio: StdioOptions = options.ipc === undefined ? ['ignore', log.fd, log.fd] : ['ignore', log.fd, log.fd, 'ipc'];
      const [command, args] = withParentDeathSignal(options.command, options.args);
      child = spawn(command, args, { stdio, detached: true });
    } finally {
      await log.close();
    }
    const ipc = options.ipc;
    if (ipc !== undefined) {
      child.on('message', (message) => ipc.onMessage(message));
      // The channel must not keep dev-cluster alive, nor fail it when the child dies mid-send.
      child.on('error', () => undefined);
      child.channel?.unref();
    }
    const exited = new Promise<ExitStatus>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', () => resolve({ code: null, signal: null }));
    });
    try {
      const addresses = await waitReady(options, exited, logStartBytes);
      return new RoleProcess({ child, exited, addresses, options });
    } catch (error) {
      child.kill('SIGKILL');
      await within(exited, options.stopTimeoutMs);
      throw error;
    }
  }

  /** Null while the child runs. */
  get exit(): ExitStatus | null {
    return this.exitStatus;
  }

  /** SIGTERM, then SIGKILL after the grace period; resolves with how the child ended. */
  stop(): Promise<ExitStatus> {
    this.stopping ??= this.stopOnce();
    return this.stopping;
  }

  /** Passes a client connection to the child (ipc); bounded by handOffTimeoutMs and by the
   * child's exit (see the file's header). */
  handOff(socket: Socket): Promise<HandOffResult> {
    const child = this.child;
    if (this.exitStatus !== null || !child.connected) return Promise.resolve('refused');
    return new Promise((resolve) => {
      const settle = (result: HandOffResult): void => {
        if (!this.handOffsPending.delete(settle)) return;
        clearTimeout(timer);
        // Written (handed) or given up (closed): the parent's copy is closed either way.
        if (result !== 'refused') socket.destroy();
        resolve(result);
      };
      const timer = setTimeout(() => settle('closed'), handOffTimeoutMs);
      this.handOffsPending.add(settle);
      try {
        child.send(connectionHandOffMessage, socket, { keepOpen: true }, (error) => settle(error === null ? 'handed' : 'refused'));
      } catch {
        settle('refused');
      }
    });
  }

  /** kill -9 (the fault tests' and a failed start's way). */
  kill(): void {
    if (this.exitStatus === null) this.child.kill('SIGKILL');
  }

  private async stopOnce(): Promise<ExitStatus> {
    if (this.exitStatus !== null) return this.exitStatus;
    this.child.kill('SIGTERM');
    const graceful = await within(this.exited, this.options.stopTimeoutMs);
    if (graceful !== null) return graceful;
    this.child.kill('SIGKILL');
    return (await within(this.exited, this.options.stopTimeoutMs)) ?? { code: null, signal: 'SIGKILL' };
  }
}

let setprivAvailable: boolean | null = null;

/** The command line that runs `command` so that it gets SIGTERM when this process dies (see the
 * header); the command itself where setpriv is missing. */
function withParentDeathSignal(command: string, args: readonly string[]): [string, readonly string[]] {
  setprivAvailable ??= spawnSync('setpriv', ['--version'], { stdio: 'ignore' }).status === 0;
  return setprivAvailable ? ['setpriv', ['--pdeathsig', 'TERM', '--', command, ...args]] : [command, args];
}

async function waitReady(options: RoleProcessOptions, exited: Promise<ExitStatus>, logStartBytes: number): Promise<ReadonlyMap<string, string>> {
  let exit: ExitStatus | null = null;
  void exited.then((status) => { exit = status; });
  const deadlineMs = Date.now() + options.readyTimeoutMs;
  for (;;) {
    const ready = await checkReady(options, logStartBytes);
    if (ready !== null) return ready;
    const ended: ExitStatus | null = exit;
    if (ended !== null) {
      const tail = await logTail(options.logPath, logStartBytes);
      // The tail also goes in context.logTail: the owner judges why it ended (dev-cluster: a port taken).
      throw new StorageError('config.invalid', `${options.name} exited (${describeExit(ended)}) before it was ready; the end of ${options.logPath}:\n${tail}`, { context: { logTail: tail } });
    }
    if (options.abort?.aborted === true) throw new StorageError('config.invalid', `${options.name}: start interrupted by a signal`);
    if (Date.now() > deadlineMs) {
      throw new StorageError('config.invalid', `${options.name} was not ready within ${options.readyTimeoutMs} ms; the end of ${options.logPath}:\n${await logTail(options.logPath, logStartBytes)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.pollMs));
  }
}

/** The addresses logged so far once ready; null while not ready. */
async function checkReady(options: RoleProcessOptions, logStartBytes: number): Promise<ReadonlyMap<string, string> | null> {
  const check = options.ready;
  const addresses = new Map<string, string>();
  if (check.kind === 'probe') return (await check.probe()) ? addresses : null;
  const text = await readFrom(options.logPath, logStartBytes, logReadBytesMax);
  for (const line of text.split('\n')) {
    const fields = logLine(line);
    if (fields === null) continue;
    const message = fields['msg'];
    const address = fields['address'];
    if (typeof message === 'string' && typeof address === 'string') addresses.set(message, address);
    if (message === check.message) return addresses;
  }
  return null;
}

/** A pino JSON line as an object; null for anything else (etcd's or Node's own output). */
export function logLine(line: string): Record<string, unknown> | null {
  if (!line.startsWith('{')) return null;
  try {
    const parsed: unknown = JSON.parse(line);
    return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export function describeExit(status: ExitStatus): string {
  if (status.signal !== null) return `signal ${status.signal}`;
  return status.code === null ? 'could not be started' : `exit code ${status.code}`;
}

async function within<T>(promise: Promise<T>, timeoutMs: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => { timer = setTimeout(() => resolve(null), timeoutMs); });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function fileLength(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
}

async function readFrom(path: string, offset: number, bytesMax: number): Promise<string> {
  const file = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(bytesMax);
    const { bytesRead } = await file.read(buffer, 0, bytesMax, offset);
    return buffer.subarray(0, bytesRead).toString('utf8');
  } finally {
    await file.close();
  }
}

async function logTail(path: string, startBytes: number): Promise<string> {
  const length = await fileLength(path);
  return readFrom(path, Math.max(startBytes, length - logTailBytes), logTailBytes);
}
