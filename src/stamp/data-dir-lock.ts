// DataDirLock: one process at a time owns a stamp's data directories (every --disk). `kura serve`
// holds the lock while it runs; `kura account` takes it for the few seconds it works on the data
// and refuses, naming the holder, while a server runs (docs/accounts.md).
//
// The lock is a file `kura.lock` in each directory, created exclusively (O_CREAT|O_EXCL) and
// holding {pid, role, startedAt}. A lock whose process is gone (kill -9, power loss) is stale:
// it is taken over, which is what makes restart after kill -9 need no manual step. "Gone" means
// no process with that pid exists, or (on Linux) the process with that pid is not a node
// process: a recycled pid of another program does not hold a stamp.
//
// Invariants: a directory is locked by at most one live process; locks are released in reverse
// order; a process never removes a lock file it did not write (it checks the pid first).
// Fault model: the holder may die at any point (stale lock, taken over); two starters may race
// (exclusive create decides; the loser sees the winner's live pid and refuses).
import { readFileSync } from 'node:fs';
import { mkdir, open, readFile, rm, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { dataDirLockWriteGraceMs } from '../constants.ts';
import { StorageError } from '../util/errors.ts';

export const lockFileName = 'kura.lock';

interface LockContent {
  readonly pid: number;
  readonly role: string;
  readonly startedAt: string;
}

export class DataDirLock {
  private readonly paths: readonly string[];

  private constructor(paths: readonly string[]) {
    this.paths = paths;
  }

  /** Locks every directory (created if absent), or throws config.invalid naming the holder. */
  static async acquire(directories: readonly string[], role: string): Promise<DataDirLock> {
    const taken: string[] = [];
    try {
      for (const directory of directories) {
        await mkdir(directory, { recursive: true });
        const path = resolve(directory, lockFileName);
        await lockOne(path, role);
        taken.push(path);
      }
    } catch (error) {
      await new DataDirLock(taken).release();
      throw error;
    }
    return new DataDirLock(taken);
  }

  async release(): Promise<void> {
    for (const path of [...this.paths].reverse()) {
      const content = await readLock(path);
      if (content?.pid === process.pid) await rm(path, { force: true });
      heldHere.delete(path);
    }
  }
}

/** Lock files this process holds (a pid check cannot tell two holders in one process apart). */
const heldHere = new Set<string>();

async function lockOne(path: string, role: string): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const file = await open(path, 'wx');
      heldHere.add(path);
      try {
        const content: LockContent = { pid: process.pid, role, startedAt: new Date().toISOString() };
        await file.writeFile(`${JSON.stringify(content)}\n`);
        await file.sync();
      } finally {
        await file.close();
      }
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = await readLock(path);
    if (holder !== null && (heldHere.has(path) || (holder.pid !== process.pid && processAlive(holder.pid)))) {
      throw new StorageError('config.invalid', `${path} is held by a running kura ${holder.role} (pid ${holder.pid}, since ${holder.startedAt}); stop it first`, { context: { pid: holder.pid } });
    }
    // An unreadable lock younger than a few seconds may be a racing starter's, not yet written.
    if (holder === null && (await ageMs(path)) < dataDirLockWriteGraceMs) {
      throw new StorageError('config.invalid', `${path} is being taken by another process starting now`);
    }
    await rm(path, { force: true }); // stale: its process is gone
  }
  throw new StorageError('config.invalid', `${path}: could not take the lock (another process is starting at the same time?)`);
}

async function ageMs(path: string): Promise<number> {
  try {
    return Date.now() - (await stat(path)).mtimeMs;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

async function readLock(path: string): Promise<LockContent | null> {
  try {
    const parsed: unknown = JSON.parse(await readFile(path, 'utf8'));
    if (typeof parsed !== 'object' || parsed === null) return null;
    const { pid, role, startedAt } = parsed as Record<string, unknown>;
    if (typeof pid !== 'number' || !Number.isSafeInteger(pid) || pid < 1) return null;
    return { pid, role: typeof role === 'string' ? role : 'process', startedAt: typeof startedAt === 'string' ? startedAt : 'unknown' };
  } catch {
    return null; // absent, torn or not ours: treated as no holder
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('node');
  } catch {
    return true; // no /proc: trust kill(0)
  }
}
