// Failpoints (TESTING.md, "Harness"): named points in the real code where a test can make the
// process crash, exit, pause or see an I/O error, exactly there. Every point is off unless
// enabled (environment KURA_FAILPOINTS at start, or enableFailpoint() from a test or the
// simulator), and every point counts its hits whether enabled or not, so a run can report
// "failpoints hit / total" and a green run cannot be vacuous.
//
//   KURA_FAILPOINTS="metastore.commit.before-fsync=crash,partition.commit.after-log-append=sleep(200)*1"
//   action: crash | exit(CODE) | sleep(MS) | eio      optional: *COUNT (fire COUNT times), +SKIP
//   (let SKIP hits pass before firing)
//   KURA_FAILPOINTS_AFTER_READY (same syntax) is armed only once the process serves (each `kura`
//   role calls armFailpointsAfterReady when it is ready), so SKIP counts the hits of the load a
//   test drives, not those of a start-up (a fresh stamp's account, a recovery's seals), whose
//   number depends on timing.
//
// Invariants: the set of names is closed (failpointNames), so "total" is known and a typo is a
// type error; a disabled point costs a counter increment and one resolved promise; a point fires
// at most `count` times after `skip` hits; the host decides what crash/exit/sleep mean (a real
// process: SIGKILL, process.exit, setTimeout; the simulator: kill the simulated process that hit
// it, and sleep on the virtual clock).
// Fault model: this module injects faults; it has none of its own. A malformed KURA_FAILPOINTS is
// a configuration error and throws at start.
import { assert } from './assert.ts';
import { StorageError } from './errors.ts';

export const failpointNames = [
  /** EmbeddedMetaStore: a batch's records written to the log, not yet fsync'd. */
  'metastore.commit.before-fsync',
  /** EmbeddedMetaStore: a batch durable, not yet published to memory or answered. */
  'metastore.commit.after-fsync',
  /** StreamManager: a seal is durable in the MetaStore; no replica has been told. */
  'stream-manager.seal.after-record',
  /** StreamManager: a new extent exists on its nodes; the stream record does not name it yet. */
  'stream-manager.extend.after-create',
  /** Rereplicator: a verified copy exists on the target; the replica map does not record it yet. */
  'rereplication.copy.after-copy',
  /** ReplicaReconciler: a returned node was checked; it is not back in service yet. */
  'reconciler.before-return-to-service',
  /** StreamClient: an append failed and its extent was sealed; findAppend has not run yet. */
  'stream-client.append.after-seal',
  /** Partition: a group's log record is durable; memory is not updated, nobody is answered. */
  'partition.commit.after-log-append',
  /** Partition: a checkpoint's runs are written; the manifest naming them is not. */
  'partition.checkpoint.before-manifest',
  /** Partition: a compaction's runs are written; the manifest naming them is not. */
  'partition.compaction.before-manifest',
  /** Partition GC: meta/log/checkpoint garbage chosen from the manifest; nothing dropped yet. */
  'partition.gc.before-drop',
  /** Partition GC: live bytes copied forward to the data tail; the row still names the old ref. */
  'partition.gc.after-copy',
  /** Partition GC: dead data extents condemned and rechecked; not dropped yet. */
  'partition.gc.before-data-drop',
  /** ExtentStore, group commit off: a block is written to its extent file, not yet fsync'd. */
  'extent-store.append.before-fsync',
  /** ExtentStore, a direct append (group commit off, or a body of at least directAppendBytesMin): durable in the extent file, not yet published or acknowledged. */
  'extent-store.append.after-fsync',
  /** ExtentStore, group commit on: journal-durable blocks written to the extent file (not fsync'd), not yet acknowledged. */
  'extent-store.group-commit.after-extent-write',
  /** ExtentStore: dirty extent files fsync'd; the journal files they made redundant not yet retired. */
  'extent-store.sync.before-journal-retire',
  /** ExtentStore: a seal cut the file at the sealed length; the seal trailer is not written yet. */
  'extent-store.seal.before-trailer',
  /** ExtentStore: a new extent file is durable under its temporary name, not yet renamed. */
  'extent-store.create.before-rename',
  /** ExtentStore recovery: damage markers are durable; unproven open tails are not cut yet. */
  'extent-store.recovery.before-tail-cut',
  /** Journal: a group-commit batch is written, not yet fsync'd. */
  'journal.batch.before-fsync',
  /** Journal: a batch is durable; its appends are not yet told. */
  'journal.batch.after-fsync',
  /** ExtentNode (primary): an append is written locally and sent to the secondaries; not yet acknowledged. */
  'extent-node.append.before-ack',
  /** ExtentNode (secondary): a replicated append is durable here; the primary is not answered yet. */
  'extent-node.replicate.before-answer',
  /** Blob service: a write that creates rows has its bytes stored; the container is not re-read yet. */
  'blob.commit.before-recheck',
  /** Blob service: a creating write re-read its container (alive) if it had to; its commit is not sent yet. */
  'blob.commit.before-transact',
  /** Blob service: a sweep intent is durable; the commit it guards is not sent yet (the sweeper must fence that commit out). */
  'blob.sweep-intent.after-put',
  /** Blob service: the commit under a sweep intent applied; the writer's own sweep has not started (the sweeper must finish it). */
  'blob.sweep-intent.after-commit',
] as const;

export type FailpointName = (typeof failpointNames)[number];

export type FailpointAction =
  | { readonly kind: 'crash' }
  | { readonly kind: 'exit'; readonly code: number }
  | { readonly kind: 'sleep'; readonly ms: number }
  | { readonly kind: 'eio' };

export interface FailpointArming {
  readonly action: FailpointAction;
  /** Times it fires before it disarms itself; unlimited if absent. */
  readonly count?: number;
  /** Hits that pass before the first firing (0 if absent). */
  readonly skip?: number;
}

/** What crash, exit and sleep mean where the failpoint fires. */
export interface FailpointHost {
  /** Ends the process (or simulated process) that hit `name`; the returned promise never settles. */
  crash(name: FailpointName, exitCode: number | null): Promise<never>;
  sleep(ms: number): Promise<void>;
}

interface Armed {
  readonly action: FailpointAction;
  remaining: number | null;
  skip: number;
}

const processHost: FailpointHost = {
  crash(_name, exitCode) {
    if (exitCode === null) process.kill(process.pid, 'SIGKILL');
    else process.exit(exitCode);
    return new Promise<never>(() => undefined);
  },
  sleep(ms) {
    return new Promise((resolve) => {
      setTimeout(resolve, ms);
    });
  },
};

const hits = new Map<FailpointName, number>(failpointNames.map((name) => [name, 0]));
const fired = new Map<FailpointName, number>(failpointNames.map((name) => [name, 0]));
const armed = new Map<FailpointName, Armed>();
let host: FailpointHost = processHost;
const resolved = Promise.resolve();

/**
 * The failpoint `name` is reached: counts the hit and, if it is armed and due, acts. Call sites
 * `await` it; when it is off this is a resolved promise.
 */
export function failpoint(name: FailpointName): Promise<void> {
  hits.set(name, (hits.get(name) ?? 0) + 1);
  const arming = armed.get(name);
  if (arming === undefined) return resolved;
  if (arming.skip > 0) {
    arming.skip -= 1;
    return resolved;
  }
  if (arming.remaining !== null) {
    arming.remaining -= 1;
    if (arming.remaining <= 0) armed.delete(name);
  }
  fired.set(name, (fired.get(name) ?? 0) + 1);
  return act(name, arming.action);
}

function act(name: FailpointName, action: FailpointAction): Promise<void> {
  switch (action.kind) {
    case 'crash': return host.crash(name, null);
    case 'exit': return host.crash(name, action.code);
    case 'sleep': return host.sleep(action.ms);
    case 'eio': return Promise.reject(new StorageError('io.eio', `failpoint ${name}: injected EIO`, { retryable: false, context: { failpoint: name } }));
  }
}

export function isFailpointName(value: string): value is FailpointName {
  return (failpointNames as readonly string[]).includes(value);
}

export function enableFailpoint(name: FailpointName, arming: FailpointArming): void {
  const count = arming.count ?? null;
  const skip = arming.skip ?? 0;
  assert(count === null || (Number.isSafeInteger(count) && count > 0), 'failpoint count must be a positive integer');
  assert(Number.isSafeInteger(skip) && skip >= 0, 'failpoint skip must be a non-negative integer');
  if (arming.action.kind === 'sleep') assert(Number.isSafeInteger(arming.action.ms) && arming.action.ms >= 0, 'failpoint sleep must be whole milliseconds');
  armed.set(name, { action: arming.action, remaining: count, skip });
}

export function disableFailpoint(name: FailpointName): void {
  armed.delete(name);
}

/** Disarms every failpoint; the counters stay. */
export function disarmFailpoints(): void {
  armed.clear();
}

/** Disarms every failpoint and zeroes every counter (a new run starts). */
export function resetFailpoints(): void {
  armed.clear();
  for (const name of failpointNames) {
    hits.set(name, 0);
    fired.set(name, 0);
  }
}

/** Installs what crash/exit/sleep do (the simulator); returns the previous host. */
export function setFailpointHost(next: FailpointHost): FailpointHost {
  const previous = host;
  host = next;
  return previous;
}

/** Hits per failpoint (reached, whether armed or not) since the last reset. */
export function failpointHits(): ReadonlyMap<FailpointName, number> {
  return new Map(hits);
}

/** Times each failpoint acted since the last reset. */
export function failpointFirings(): ReadonlyMap<FailpointName, number> {
  return new Map(fired);
}

/** Failpoints reached at least once since the last reset. */
export function failpointsHit(): number {
  return [...hits.values()].filter((count) => count > 0).length;
}

export function failpointsTotal(): number {
  return failpointNames.length;
}

/** Parses a KURA_FAILPOINTS value; throws config.invalid on anything it does not understand. */
export function parseFailpointSpec(spec: string): Array<{ name: FailpointName; arming: FailpointArming }> {
  const out: Array<{ name: FailpointName; arming: FailpointArming }> = [];
  for (const part of spec.split(',').map((item) => item.trim()).filter((item) => item.length > 0)) {
    const match = /^([a-z0-9.-]+)=(crash|eio|exit\((\d{1,3})\)|sleep\((\d{1,9})\))(?:\*(\d{1,9}))?(?:\+(\d{1,9}))?$/.exec(part);
    const name = match?.[1];
    if (match === null || name === undefined || !isFailpointName(name)) {
      throw new StorageError('config.invalid', `KURA_FAILPOINTS: cannot parse ${JSON.stringify(part)} (known: ${failpointNames.join(', ')})`);
    }
    const action = parseAction(match[2] ?? '', match[3], match[4]);
    const count = match[5] === undefined ? undefined : Number(match[5]);
    const skip = match[6] === undefined ? undefined : Number(match[6]);
    out.push({ name, arming: { action, ...(count === undefined ? {} : { count }), ...(skip === undefined ? {} : { skip }) } });
  }
  return out;
}

function parseAction(word: string, exitCode: string | undefined, sleepMs: string | undefined): FailpointAction {
  if (word === 'crash') return { kind: 'crash' };
  if (word === 'eio') return { kind: 'eio' };
  if (exitCode !== undefined) return { kind: 'exit', code: Number(exitCode) };
  assert(sleepMs !== undefined, 'the pattern admits only these actions');
  return { kind: 'sleep', ms: Number(sleepMs) };
}

/** Arms the failpoints named in the environment variable `variable`, if set. */
function enableFromEnvironment(variable: string): void {
  const spec = process.env[variable];
  if (spec === undefined || spec.trim() === '') return;
  for (const { name, arming } of parseFailpointSpec(spec)) enableFailpoint(name, arming);
}

/** Arms the failpoints named in KURA_FAILPOINTS_AFTER_READY; a process calls it once it serves. */
export function armFailpointsAfterReady(): void {
  enableFromEnvironment('KURA_FAILPOINTS_AFTER_READY');
}

// A malformed KURA_FAILPOINTS_AFTER_READY fails the start too, not only the later arming.
parseFailpointSpec(process.env['KURA_FAILPOINTS_AFTER_READY'] ?? '');
enableFromEnvironment('KURA_FAILPOINTS');
