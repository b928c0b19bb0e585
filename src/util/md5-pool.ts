// Md5Pool: the MD5 of large request bodies computed on worker threads, so the main thread (HTTP,
// partition, stream, disk) and the hashing share the machine's cores instead of queueing on one.
// MD5 is ~3 ms of CPU per MiB here, most of a large Put Blob's server CPU on the main thread.
//
// A session is one body's running MD5: update() sends a copy of the bytes to the session's
// worker (postMessage clones them, so the caller keeps ownership and the bytes may go on to be
// appended while they are hashed) and resolves when the worker has hashed them; digest() gives
// the MD5 and ends the session; drop() ends it unused (a failed body).
//
// Invariants: a session lives on one worker and a worker answers its messages in order, so the
// bytes are hashed in the order given; the pool's workers are at most md5WorkersMax, started on
// first use and unref'd (they never keep a process alive); a caller keeps at most one update in
// flight per session (data.ts awaits each), so a worker holds at most one chunk
// (appendBytesMax) per live session.
// Fault model: a worker that dies (it should not: it only hashes) fails the sessions it held with
// an Error (500 InternalError at the front end) and is replaced for later sessions.
import { Worker } from 'node:worker_threads';
import { md5WorkersMax } from '../constants.ts';
import { assert } from './assert.ts';
import type { Md5Answer, Md5Request } from './md5-worker.ts';

interface Waiter {
  readonly resolve: (answer: Md5Answer) => void;
  readonly reject: (error: Error) => void;
}

class HashWorker {
  readonly #worker: Worker;
  /** Per session, the callers waiting for its answers, in the order the requests were sent. */
  readonly #waiting = new Map<number, Waiter[]>();
  /** Requests not answered yet: the worker keeps the process alive only while this is above 0. */
  #outstanding = 0;
  dead = false;

  constructor() {
    this.#worker = new Worker(new URL('./md5-worker.ts', import.meta.url));
    this.#worker.on('message', (answer: Md5Answer) => this.#answer(answer));
    this.#worker.on('error', (error: unknown) => this.#fail(error instanceof Error ? error : new Error(String(error))));
    this.#worker.on('exit', (code) => this.#fail(new Error(`md5 worker exited with code ${code}`)));
    this.#worker.unref(); // after the listeners (adding a 'message' listener refs it); ref'd while asked
  }

  request(request: Md5Request): Promise<Md5Answer> {
    if (this.dead) return Promise.reject(new Error('md5 worker is gone'));
    return new Promise((resolve, reject) => {
      const queue = this.#waiting.get(request.session) ?? [];
      queue.push({ resolve, reject });
      this.#waiting.set(request.session, queue);
      if (this.#outstanding === 0) this.#worker.ref();
      this.#outstanding += 1;
      this.#worker.postMessage(request);
    });
  }

  /** Forgets the session's hash; updates already sent are still answered (nobody may be waiting). */
  drop(session: number): void {
    if (!this.dead) this.#worker.postMessage({ kind: 'drop', session } satisfies Md5Request);
  }

  #answer(answer: Md5Answer): void {
    const queue = this.#waiting.get(answer.session);
    const waiter = queue?.shift();
    assert(queue !== undefined && waiter !== undefined, 'an md5 worker answers only what was asked');
    if (queue.length === 0) this.#waiting.delete(answer.session);
    this.#settled(1);
    waiter.resolve(answer);
  }

  #settled(count: number): void {
    this.#outstanding -= count;
    assert(this.#outstanding >= 0, 'md5 worker answers balance its requests');
    if (this.#outstanding === 0 && !this.dead) this.#worker.unref();
  }

  #fail(error: Error): void {
    this.dead = true;
    this.#outstanding = 0;
    for (const queue of this.#waiting.values()) for (const waiter of queue) waiter.reject(error);
    this.#waiting.clear();
  }
}

export class Md5Session {
  readonly #worker: HashWorker;
  readonly #id: number;
  #ended = false;

  constructor(worker: HashWorker, id: number) {
    this.#worker = worker;
    this.#id = id;
  }

  async update(bytes: Uint8Array): Promise<void> {
    assert(!this.#ended, 'update of an ended md5 session');
    await this.#worker.request({ kind: 'update', session: this.#id, bytes });
  }

  async digest(): Promise<Buffer> {
    assert(!this.#ended, 'digest of an ended md5 session');
    this.#ended = true;
    const answer = await this.#worker.request({ kind: 'digest', session: this.#id });
    assert(answer.kind === 'digest', 'a digest request is answered with a digest');
    return Buffer.from(answer.digest);
  }

  /** Ends a session whose digest is not wanted (the body failed); idempotent. */
  drop(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#worker.drop(this.#id);
  }
}

export class Md5Pool {
  readonly #workers: (HashWorker | null)[];
  #next = 0;
  #sessions = 0;

  constructor(workerCount: number = md5WorkersMax) {
    assert(Number.isSafeInteger(workerCount) && workerCount >= 1, 'an md5 pool has at least one worker');
    this.#workers = Array.from({ length: workerCount }, () => null);
  }

  /** A new session on the next worker (round robin); a dead worker is replaced. */
  session(): Md5Session {
    const slot = this.#next;
    this.#next = (this.#next + 1) % this.#workers.length;
    let worker = this.#workers[slot] ?? null;
    if (worker === null || worker.dead) {
      worker = new HashWorker();
      this.#workers[slot] = worker;
    }
    this.#sessions += 1;
    return new Md5Session(worker, this.#sessions);
  }
}

let shared: Md5Pool | null = null;

/** The process's pool (started on first use). */
export function sharedMd5Pool(): Md5Pool {
  shared ??= new Md5Pool();
  return shared;
}
