// The Blob workload (docs/simulation.md, "Workload"): in part of the runs, writers speak Azure
// Blob operations to the front end's logic, PartitionBlobBackend (src/frontend/blob-service), over
// the same PartitionClient, so the blob schema (blob rows, staging and uncommitted blocks, block
// lists, snapshots), its data GC and splits at blob boundaries all run under the fault model.
//
// Every blob's content is a run of self-checking payloads (sim/payload.ts) that share one
// (writer, sequence): Put Blob writes one, Put Block + Put Block List writes one per block, so a
// read is checked on its own (every part whole, in order, one identity) and then against the
// ledger as the version (writer, sequence, part 0). Each blob has one writer, whose operations are
// serial, so a blob's history is a line; the ledger's order is the writer's round (the blob service
// does not expose partition sequence numbers). Snapshots are ledger keys of their own: created by
// Snapshot Blob when the blob's state is certain, removed by Delete Blob (snapshots included).
//
// Outcomes: a FrontendError with a 4xx meaning (a condition, BlobNotFound, …) is failed, nothing
// applied; InternalError / ServerBusy / OperationTimedOut and every StorageError are indeterminate
// (an operation is several partition calls; which one failed is not visible from here).
// Invariants: bounded (opsMax, opDeadlineMs per call); randomness from stamp.random('blob-workload').
import type { PartitionBlobBackend } from '../src/frontend/blob-service/partition-blob-backend.ts';
import type { PartitionClient } from '../src/partition/partition-client.ts';
import type { CallContext, RequestBody } from '../src/frontend/blob-backend.ts';
import { blobScanRowsPerCall } from '../src/constants.ts';
import { deadRows, dropRows } from '../src/frontend/blob-service/blob-sweep.ts';
import { ContainerSweeper } from '../src/frontend/blob-service/container-sweep.ts';
import type { BlobServiceContext } from '../src/frontend/blob-service/context.ts';
import { blobKey, blobPrefix, containerKey, sweepIntentPrefix } from '../src/frontend/blob-service/keys.ts';
import { decodeContainer } from '../src/frontend/blob-service/records.ts';
import { isFrontendError } from '../src/frontend/errors.ts';
import type { AccountName, BlobName, BlockId, ContainerName, SnapshotId } from '../src/frontend/model.ts';
import type { Conditions } from '../src/frontend/operation.ts';
import type { Random } from '../src/util/random.ts';
import { describe } from './faults.ts';
import { FrontendConnectionLost, FrontendRefused } from './frontend-role.ts';
import type { FrontendRole } from './frontend-role.ts';
import type { Ledger } from './ledger.ts';
import { generatePayload, payloadHeaderBytes, payloadKey, verifyPayload } from './payload.ts';
import type { PayloadId } from './payload.ts';
import type { SimStamp } from './stamp.ts';
import type { Attempt, FinalRead } from './workload.ts';

export interface BlobWorkloadOptions {
  readonly writers: number;
  readonly opsMax: number;
  readonly blobsPerWriter: number;
  readonly thinkMsMax: number;
  readonly opDeadlineMs: number;
}

export const defaultBlobWorkloadOptions: BlobWorkloadOptions = { writers: 2, opsMax: 120, blobsPerWriter: 5, thinkMsMax: 400, opDeadlineMs: 60_000 };

export interface BlobWorkloadFigures {
  readonly opsByKind: Record<string, number>;
  readsChecked: number;
  bytesVerified: number;
  listingsChecked: number;
  /** Rows nothing refers to found after the run (checkDeadRows), before its sweep. */
  deadRowsFound: number;
  /** Blobs whose range the final check swept. */
  blobsSwept: number;
  /** Requests in flight when their front end died (answered as a lost connection). */
  requestsLost: number;
  /** Put Block Lists of bigListBlocksMin.. blocks (more uncommitted rows than one transaction deletes). */
  bigLists: number;
  /** Sweep intents the final check found (left by writers that died; checkDeadRows resolves them first). */
  intentsFound: number;
  /** Sweep intents fe0 wrote during the run, and those its own background sweep resolved (over all its lives). */
  intentsWritten: number;
  intentsResolvedLive: number;
}

const account = 'simaccount' as AccountName;
const container = 'simcontainer' as ContainerName;
/** Writer ids of blob payloads start here, apart from the partition workload's writers. */
const writerBase = 100;
const indeterminateCodes = new Set(['InternalError', 'ServerBusy', 'OperationTimedOut']);
const noConditions: Conditions = {};
/** A big Put Block List's block count: more than one transaction deletes (~254) up to a paged list (~340+). */
const bigListBlocksMin = 255;
const bigListBlocksMax = 400;
/** Sweeper ticks the final check gives the intents left (each tick resolves all it finds unless a call fails). */
const intentTicksMax = 5;

export function callContext(): CallContext {
  return { requestId: 'sim', principal: { kind: 'sharedKey' }, createOnly: false, signal: new AbortController().signal };
}

export function requestBody(bytes: Buffer): RequestBody {
  return {
    length: bytes.length,
    async *[Symbol.asyncIterator]() {
      for (let offset = 0; offset < bytes.length; offset += 64 * 1024) yield bytes.subarray(offset, offset + 64 * 1024);
      await Promise.resolve();
    },
  };
}

async function collect(body: AsyncIterable<Uint8Array> | Uint8Array): Promise<Buffer> {
  if (body instanceof Uint8Array) return Buffer.from(body);
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** Splits a blob's content into its payloads: the identity of part 0 and the part count, or why not. */
export function verifyBlobContent(bytes: Buffer): { ok: true; id: PayloadId; parts: number } | { ok: false; why: string } {
  let offset = 0;
  let first: PayloadId | null = null;
  let parts = 0;
  while (offset < bytes.length) {
    if (bytes.length - offset < payloadHeaderBytes) return { ok: false, why: `${bytes.length - offset} stray bytes at ${offset}` };
    const length = bytes.readUInt32BE(offset + 16);
    if (length < payloadHeaderBytes || offset + length > bytes.length) return { ok: false, why: `part ${parts} at ${offset} claims ${length} bytes` };
    const verdict = verifyPayload(bytes.subarray(offset, offset + length));
    if (!verdict.ok) return { ok: false, why: `part ${parts} at ${offset}: ${verdict.why}` };
    if (verdict.id.part !== parts || (first !== null && (verdict.id.writer !== first.writer || verdict.id.sequence !== first.sequence))) {
      return { ok: false, why: `part ${parts} at ${offset} is ${payloadKey(verdict.id)}` };
    }
    first ??= verdict.id;
    parts += 1;
    offset += length;
  }
  if (first === null) return { ok: false, why: 'empty content' };
  return { ok: true, id: first, parts };
}

export class BlobWorkload {
  readonly violations: string[] = [];
  readonly figures: BlobWorkloadFigures = { opsByKind: {}, readsChecked: 0, bytesVerified: 0, listingsChecked: 0, deadRowsFound: 0, blobsSwept: 0, requestsLost: 0, bigLists: 0, intentsFound: 0, intentsWritten: 0, intentsResolvedLive: 0 };
  private readonly stamp: SimStamp;
  private readonly frontend: FrontendRole;
  private readonly ledger: Ledger;
  private readonly options: BlobWorkloadOptions;
  private readonly random: Random;
  /** Its own stream (other draws stay as before): whether and when a Put Block List stages hundreds of blocks. */
  private readonly bigListRandom: Random;
  /** This run's chance (percent) that a Put Block List is a big one: 0 in half the runs. */
  private readonly bigListPercent: number;
  /** Parts written per version (payloadKey of part 0). */
  private readonly partsOf = new Map<string, number>();
  /** Snapshot ledger keys per blob. */
  private readonly snapshotsOf = new Map<string, string[]>();
  private readonly rounds: number[] = [];
  private opsDone = 0;

  constructor(stamp: SimStamp, options: { frontend: FrontendRole; ledger: Ledger; workload: BlobWorkloadOptions }) {
    this.stamp = stamp;
    this.frontend = options.frontend;
    this.ledger = options.ledger;
    this.options = options.workload;
    this.random = stamp.random('blob-workload');
    this.bigListRandom = stamp.random('blob-big-lists');
    this.bigListPercent = this.bigListRandom.int(2) === 0 ? 0 : 15;
  }

  async run(): Promise<void> {
    await this.createContainer();
    await Promise.all(Array.from({ length: this.options.writers }, (_, writer) => this.writer(writer)));
  }

  /**
   * One request to the front end, bounded, with its outcome classified. A front end that is down
   * is waited for (a client retrying a refused connection) until the deadline, then the request is
   * failed: it was never sent. One that dies mid-request answers a lost connection: indeterminate.
   */
  private async attempt<T>(work: (backend: PartitionBlobBackend, tables: PartitionClient) => Promise<T>): Promise<Attempt<T>> {
    const deadlineMs = this.stamp.clock.monotonicMs() + this.options.opDeadlineMs;
    while (!this.frontend.up) {
      if (this.stamp.clock.monotonicMs() >= deadlineMs) return { kind: 'failed', code: 'connection.refused', message: `${this.frontend.name} down for ${this.options.opDeadlineMs} ms` };
      await this.stamp.clock.sleep(100);
    }
    let timer: { cancel(): void } | null = null;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = this.stamp.clock.setTimer(Math.max(1, deadlineMs - this.stamp.clock.monotonicMs()), () => resolve('timeout'));
    });
    try {
      const value = await Promise.race([this.frontend.request(work), timeout]);
      if (value === 'timeout') return { kind: 'indeterminate', code: 'client.timeout', message: `no answer within ${this.options.opDeadlineMs} ms` };
      return { kind: 'ok', value };
    } catch (error) {
      if (error instanceof FrontendRefused) return { kind: 'failed', code: 'connection.refused', message: error.message };
      if (error instanceof FrontendConnectionLost) {
        this.figures.requestsLost += 1;
        return { kind: 'indeterminate', code: 'connection.lost', message: error.message };
      }
      if (isFrontendError(error) && !indeterminateCodes.has(error.code)) return { kind: 'failed', code: error.code, message: error.message };
      return { kind: 'indeterminate', code: isFrontendError(error) ? error.code : 'storage', message: describe(error) };
    } finally {
      (timer as { cancel(): void } | null)?.cancel();
    }
  }

  private async createContainer(): Promise<void> {
    for (let attempt = 0; attempt < 60; attempt++) {
      const result = await this.attempt((backend) => backend.container.createContainer({ kind: 'CreateContainer', account, container, metadata: new Map(), publicAccess: null }, callContext()));
      if (result.kind === 'ok' || (result.kind === 'failed' && result.code === 'ContainerAlreadyExists')) return;
      await this.stamp.clock.sleep(2_000);
    }
    this.violations.push('blob workload: the container could not be created in 60 attempts');
  }

  private async writer(writer: number): Promise<void> {
    this.rounds[writer] = 0;
    while (this.opsDone < this.options.opsMax) {
      this.opsDone += 1;
      const name = `bw${writer}/blob${this.random.int(this.options.blobsPerWriter)}`;
      const roll = this.random.int(100);
      if (roll < 25) await this.count('put-blob', this.putBlob(writer, name));
      else if (roll < 45) await this.count('put-block-list', this.putBlockList(writer, name));
      else if (roll < 70) await this.count('get-blob', this.readBlob(name).then(() => undefined));
      else if (roll < 80) await this.count('delete-blob', this.deleteBlob(writer, name));
      else if (roll < 90) await this.count('snapshot-blob', this.snapshotBlob(writer, name));
      else await this.count('list-blobs', this.listBlobs(writer));
      await this.stamp.clock.sleep(this.random.int(this.options.thinkMsMax + 1));
    }
  }

  private async count(kind: string, work: Promise<void>): Promise<void> {
    this.figures.opsByKind[kind] = (this.figures.opsByKind[kind] ?? 0) + 1;
    await work;
  }

  private nextRound(writer: number): number {
    const next = (this.rounds[writer] ?? 0) + 1;
    this.rounds[writer] = next;
    return next;
  }

  private blobRef(name: string): { account: AccountName; container: ContainerName; blob: BlobName; conditions: Conditions } {
    return { account, container, blob: name as BlobName, conditions: noConditions };
  }

  /** A version's parts: (writer, round) with parts 0..count-1, sizes from the seed. */
  private parts(writer: number, round: number, count: number, sizeMax: number, random = this.random): Buffer[] {
    const id = { writer: writerBase + writer, sequence: round, part: 0 };
    this.partsOf.set(payloadKey(id), count);
    return Array.from({ length: count }, (_, part) => generatePayload({ ...id, part }, payloadHeaderBytes + random.int(sizeMax)));
  }

  /** Put Block List's blocks: 1-4 of up to 32 KiB, or (bigListPercent of them) 255-400 small ones:
   * more uncommitted rows than its transaction deletes (a sweep intent), a paged list past ~340. */
  private listParts(writer: number, round: number): Buffer[] {
    if (this.bigListRandom.int(100) >= this.bigListPercent) return this.parts(writer, round, 1 + this.random.int(4), 32 * 1024);
    this.figures.bigLists += 1;
    return this.parts(writer, round, bigListBlocksMin + this.bigListRandom.int(bigListBlocksMax - bigListBlocksMin + 1), 64, this.bigListRandom);
  }

  /** Records an outcome; an acknowledged put carries its ETag (the ledger's "certainly live"). */
  private settle(key: string, version: ReturnType<Ledger['begin']>, result: Attempt<{ readonly etag?: string } | null>): void {
    this.stamp.trace(`blob ${version.kind} ${key} ${result.kind === 'ok' ? `acked@${version.round}` : `${result.kind}:${result.code}`}`);
    if (result.kind === 'ok') this.ledger.settle(version, { status: 'acked', commitSequence: version.round, etag: version.kind === 'put' ? result.value?.etag ?? 'acked' : null });
    else this.ledger.settle(version, { status: result.kind });
  }

  private async putBlob(writer: number, name: string): Promise<void> {
    const round = this.nextRound(writer);
    const [content] = this.parts(writer, round, 1, this.random.int(10) === 0 ? 600 * 1024 : 48 * 1024);
    if (content === undefined) return;
    const version = this.ledger.begin({ key: name, kind: 'put', payload: { writer: writerBase + writer, sequence: round, part: 0 }, round });
    const result = await this.attempt((backend) => backend.blockBlob.putBlob({
      kind: 'PutBlob', ...this.blobRef(name), contentLength: content.length, httpHeaders: {}, metadata: new Map(), tags: [],
    }, requestBody(content), callContext()));
    this.settle(name, version, result);
  }

  /** Stages 1-4 blocks, or hundreds (listParts), then commits them in order (Put Block List, Latest). */
  private async putBlockList(writer: number, name: string): Promise<void> {
    const round = this.nextRound(writer);
    const blocks = this.listParts(writer, round);
    const ids = blocks.map((_, index) => Buffer.from(`r${round.toString().padStart(6, '0')}b${index.toString().padStart(3, '0')}`, 'latin1').toString('base64') as BlockId);
    // A Put Block is idempotent (same id, same bytes): a big list retries one as an SDK would, so
    // that hundreds of them under faults still reach their Put Block List.
    const triesMax = blocks.length > 4 ? 3 : 1;
    for (const [index, block] of blocks.entries()) {
      const id = ids[index] ?? ('' as BlockId);
      let staged: Attempt<unknown> | null = null;
      for (let tries = 0; tries < triesMax && staged?.kind !== 'ok'; tries++) {
        staged = await this.attempt((backend) => backend.blockBlob.putBlock({ kind: 'PutBlock', ...this.blobRef(name), blockId: id, contentLength: block.length, computeMd5: false }, requestBody(block), callContext()));
      }
      if (staged?.kind !== 'ok') return; // nothing committed: the blob is unchanged
    }
    const version = this.ledger.begin({ key: name, kind: 'put', payload: { writer: writerBase + writer, sequence: round, part: 0 }, round });
    const list = ids.map((id) => ({ kind: 'Latest' as const, id }));
    const result = await this.attempt((backend) => backend.blockBlob.putBlockList({
      kind: 'PutBlockList', ...this.blobRef(name), contentLength: 0, httpHeaders: {}, metadata: new Map(), tags: [],
    }, list, callContext()));
    this.settle(name, version, result);
  }

  private async deleteBlob(writer: number, name: string): Promise<void> {
    const round = this.nextRound(writer);
    const keys = [name, ...(this.snapshotsOf.get(name) ?? [])];
    const versions = keys.map((key) => this.ledger.begin({ key, kind: 'delete', payload: null, round }));
    const result = await this.attempt((backend) => backend.blob.deleteBlob({ kind: 'DeleteBlob', ...this.blobRef(name), deleteSnapshots: 'include' }, callContext()).then(() => null));
    if (result.kind === 'ok') this.snapshotsOf.delete(name);
    // BlobNotFound: nothing was there to delete, which is the state the delete wanted.
    const settled: Attempt<null> = result.kind === 'failed' && result.code === 'BlobNotFound' ? { kind: 'ok', value: null } : result;
    for (const [index, version] of versions.entries()) this.settle(keys[index] ?? name, version, settled);
  }

  /** Snapshot Blob while the blob's state is certain: the snapshot must hold that version forever. */
  private async snapshotBlob(writer: number, name: string): Promise<void> {
    if (this.ledger.certainState(name)?.kind !== 'live') return;
    const acked = this.ledger.versions(name).filter((v) => v.status === 'acked');
    const latest = acked.reduce<(typeof acked)[number] | null>((best, v) => (best === null || (v.commitSequence ?? 0) > (best.commitSequence ?? 0) ? v : best), null);
    if (latest === null || latest.payload === null) return;
    const round = this.nextRound(writer);
    const result = await this.attempt((backend) => backend.blob.snapshotBlob({ kind: 'SnapshotBlob', ...this.blobRef(name), metadata: new Map() }, callContext()));
    if (result.kind !== 'ok') return;
    const key = `${name}?snapshot=${result.value.snapshot}`;
    const version = this.ledger.begin({ key, kind: 'put', payload: latest.payload, round });
    this.settle(key, version, result);
    this.snapshotsOf.set(name, [...(this.snapshotsOf.get(name) ?? []), key]);
    await this.readBlob(key);
  }

  /** Lists the writer's blobs and compares with the ledger (the writer is serial: all settled). */
  private async listBlobs(writer: number): Promise<void> {
    const prefix = `bw${writer}/`;
    const seen = new Set<string>();
    let marker: string | undefined;
    for (let page = 0; page < 50; page++) {
      const result = await this.attempt((backend) => backend.container.listBlobs({
        kind: 'ListBlobs', account, container, prefix, maxResults: 1 + this.random.int(4), include: new Set(), ...(marker === undefined ? {} : { marker }),
      }, callContext()));
      if (result.kind !== 'ok') return;
      for (const blob of result.value.blobs) seen.add(blob.name);
      if (result.value.nextMarker === null) break;
      marker = result.value.nextMarker;
    }
    this.figures.listingsChecked += 1;
    for (const key of this.ledger.allKeys().filter((candidate) => candidate.startsWith(prefix) && !candidate.includes('?'))) {
      const state = this.ledger.certainState(key);
      if (state !== null && state.kind === 'live' && !seen.has(key)) this.violations.push(`List Blobs ${prefix} misses ${key} (acknowledged)`);
      if (state?.kind === 'absent' && seen.has(key)) this.violations.push(`List Blobs ${prefix} shows ${key}, which certainly does not exist`);
    }
  }

  // ---- reads ------------------------------------------------------------------------------------

  private async getContent(key: string): Promise<Attempt<Buffer | null>> {
    const [name = key, snapshot] = key.split('?snapshot=');
    return this.attempt(async (backend) => {
      try {
        const content = await backend.blob.getBlob({
          kind: 'GetBlob', ...this.blobRef(name), rangeGetContentMd5: false, ...(snapshot === undefined ? {} : { snapshot: snapshot as SnapshotId }),
        }, callContext());
        return await collect(content.body);
      } catch (error) {
        if (isFrontendError(error, 'BlobNotFound')) return null;
        throw error;
      }
    });
  }

  /** Reads a blob (or snapshot) and judges it on its own and against the ledger. */
  private async readBlob(key: string): Promise<void> {
    const startTick = this.ledger.tick();
    const got = await this.getContent(key);
    if (got.kind !== 'ok') return;
    const judged = this.judge(key, got.value);
    if (judged.kind === 'corrupt') {
      this.violations.push(`${key}: corrupt content served: ${judged.why}`);
      return;
    }
    if (judged.kind !== 'row' && judged.kind !== 'absent') return;
    this.figures.readsChecked += 1;
    const violation = this.ledger.checkRead(key, startTick, judged.kind === 'absent' ? null : { sequence: judged.sequence, payload: judged.payload });
    if (violation !== null) this.violations.push(violation);
  }

  private judge(key: string, bytes: Buffer | null): FinalRead {
    if (bytes === null) return { kind: 'absent' };
    const verdict = verifyBlobContent(bytes);
    if (!verdict.ok) return { kind: 'corrupt', why: verdict.why };
    const expected = this.partsOf.get(payloadKey(verdict.id));
    if (expected !== verdict.parts) return { kind: 'corrupt', why: `${payloadKey(verdict.id)} has ${verdict.parts} parts, ${expected ?? 'none'} were written` };
    this.figures.bytesVerified += bytes.length;
    // The ledger orders a blob's versions by the writer's round (= the payload's sequence).
    const version = this.ledger.versions(key).find((v) => v.payload !== null && payloadKey(v.payload) === payloadKey(verdict.id));
    return { kind: 'row', payload: verdict.id, sequence: version?.round ?? 0 };
  }

  /**
   * After the run (healed): the dead rows of every blob's range (docs/blob-schema.md, "Rows nothing
   * refers to": rows of replaced lists and discarded staging generations, which keep their data
   * alive) are counted and swept once. Each is a violation: the workload's commits that discard rows
   * (Put Block List, Delete Blob of small blobs) delete them in their own transaction, so no crash
   * or failure can leave one; and a row the sweep leaves behind is a leak no sweep removes.
   */
  async checkDeadRows(): Promise<string[]> {
    const names = Array.from({ length: this.options.writers }, (_, writer) => Array.from({ length: this.options.blobsPerWriter }, (_, index) => `bw${writer}/blob${index}`)).flat();
    const result = await this.attempt(async (_backend, tables) => {
      const ctx: BlobServiceContext = { tables, clock: this.stamp.clock, stats: { raceRetries: 0, raceExhausted: 0 } };
      const row = await tables.get(containerKey(account, container));
      if (row === null) return ['the container row is gone'];
      const prefix = blobPrefix(account, container, decodeContainer(row).inc);
      this.figures.intentsWritten = this.frontend.intents.written;
      this.figures.intentsResolvedLive = this.frontend.intents.resolved;
      const left = await this.resolveIntents(ctx);
      for (const name of names) {
        const blob = blobKey(prefix, name);
        const dead = await deadRows(ctx, blob);
        if (dead.length > 0) left.push(`${name}: ${dead.length} dead row(s) after the run (rows a commit discarded and did not delete)`);
        this.figures.deadRowsFound += dead.length;
        await dropRows(ctx, dead);
        this.figures.blobsSwept += 1;
        const after = await deadRows(ctx, blob);
        if (after.length > 0) left.push(`${name}: ${after.length} dead row(s) left after a sweep`);
      }
      return left;
    });
    if (result.kind !== 'ok') return [`dead rows: the final sweep did not finish (${result.kind}: ${result.code} ${result.message})`];
    return result.value;
  }

  /** Sweep intents left by writers that died are the background sweep's to resolve (the workload
   * is over, so none is a live writer's: no grace); resolved, their dead rows are gone. One left
   * after intentTicksMax ticks is a violation. The intents left are counted by a scan of their
   * own, across every partition, not by the sweeper's: a sweeper blind to some of them (its scan
   * stopping at a partition boundary, as one did) must fail here, not look finished. */
  private async resolveIntents(ctx: BlobServiceContext): Promise<string[]> {
    const sweeper = new ContainerSweeper(ctx, { graceMs: 0 });
    this.figures.intentsFound = await countIntents(ctx);
    for (let ticks = 0; ticks < intentTicksMax; ticks++) {
      await sweeper.tick();
      if (await countIntents(ctx) === 0) return [];
    }
    return [`sweep intents: ${await countIntents(ctx)} left after ${intentTicksMax} ticks of the sweeper`];
  }

  /** The final check's read of one blob or snapshot. */
  async readForCheck(key: string): Promise<FinalRead> {
    const got = await this.getContent(key);
    if (got.kind !== 'ok') return { kind: 'unavailable', why: got.message };
    return this.judge(key, got.value);
  }
}

/** The sweep intent rows under `S`, counted page by page through every partition. */
async function countIntents(ctx: BlobServiceContext): Promise<number> {
  let count = 0;
  let continuation: string | null = null;
  do {
    const page = await ctx.tables.scan({ prefix: sweepIntentPrefix, limit: blobScanRowsPerCall, ...(continuation === null ? {} : { continuation }) });
    count += page.items.filter((item) => item.kind === 'row').length;
    continuation = page.continuation;
  } while (continuation !== null);
  return count;
}
