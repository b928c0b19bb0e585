// The workload (docs/simulation.md, "Workload"): writers and readers in the front end's place,
// speaking to the partition layer through a PartitionClient (routing by key over the map, which it
// re-reads when a server answers "not owner"); every write unique and self-checking
// (sim/payload.ts) and recorded in the ledger (sim/ledger.ts), every read judged on the spot.
// Writers run their operations one at a time, so each key's history is a line of rounds; a burst
// of page writes is one round of concurrent writes.
//
// Outcomes: a write is acknowledged when a partition server answered it; failed when nothing can
// have been applied (a condition failed, no server owned the key on any attempt, its data never
// reached the data stream); indeterminate otherwise (an error from the stream layer, a lost
// answer, a timeout).
//
// Invariants: bounded (opsMax operations, opDeadlineMs per call); all randomness from
// stamp.random('workload'); a violation is recorded with the key and never stops the run.
import type { PartitionClient, ClientScanOptions } from '../src/partition/partition-client.ts';
import type { LiveRow } from '../src/partition/partition.ts';
import { isStorageError } from '../src/util/errors.ts';
import type { Random } from '../src/util/random.ts';
import type { Column, DataRef } from '../src/wire/partition-row.ts';
import { describe } from './faults.ts';
import type { Ledger, Version } from './ledger.ts';
import { generatePayload, payloadKey, verifyPayload } from './payload.ts';
import type { PayloadId } from './payload.ts';
import type { SimProcess } from './process.ts';
import type { SimStamp } from './stamp.ts';

export interface WorkloadOptions {
  readonly writers: number;
  readonly readers: number;
  /** Writer operations in the whole run. */
  readonly opsMax: number;
  readonly keysPerWriter: number;
  readonly thinkMsMax: number;
  readonly opDeadlineMs: number;
}

export const defaultWorkloadOptions: WorkloadOptions = { writers: 3, readers: 2, opsMax: 240, keysPerWriter: 10, thinkMsMax: 400, opDeadlineMs: 30_000 };

const pageBytes = 512;
const pagesPerBlob = 32;
const definiteFailureCodes = new Set([
  'partition.condition_failed', 'partition.exists', 'partition.row_not_found', 'partition.busy', 'partition.closed', 'partition.too_large', 'config.invalid', 'partition.not_owner',
]);
/** Codes after which PartitionClient retries a write: nothing was applied. When every attempt of a
 * write ended so, it gives up with partition.unavailable whose cause is the last of them. */
const notAppliedCodes = new Set(['partition.not_owner', 'partition.busy', 'rpc.overloaded']);

export type Attempt<T> =
  | { readonly kind: 'ok'; readonly value: T }
  | { readonly kind: 'failed'; readonly code: string; readonly message: string }
  | { readonly kind: 'indeterminate'; readonly code: string; readonly message: string };

export interface WorkloadFigures {
  readonly opsByKind: Record<string, number>;
  readsChecked: number;
  bytesVerified: number;
  readsUnavailable: number;
  listingsChecked: number;
  burstsChecked: number;
  notOwnerRetries: number;
}

/** The row columns of a payload stored at `ref`. */
export function payloadColumns(id: PayloadId, ref: DataRef): Column[] {
  return [
    { name: 'd', value: { kind: 'dataRefs', value: [ref] } },
    { name: 'p', value: { kind: 'int64', value: BigInt(id.part) } },
    { name: 'q', value: { kind: 'int64', value: BigInt(id.sequence) } },
    { name: 'w', value: { kind: 'int64', value: BigInt(id.writer) } },
  ];
}

/** The payload identity and data ref a row names, or null if its columns are not ours. */
export function rowPayload(row: { readonly columns: readonly Column[] }): { id: PayloadId; ref: DataRef } | null {
  const int = (name: string): number | null => {
    const value = row.columns.find((column) => column.name === name)?.value;
    return value?.kind === 'int64' ? Number(value.value) : null;
  };
  const refs = row.columns.find((column) => column.name === 'd')?.value;
  const writer = int('w');
  const sequence = int('q');
  const part = int('p');
  if (refs?.kind !== 'dataRefs' || refs.value.length !== 1 || refs.value[0] === undefined || writer === null || sequence === null || part === null) return null;
  return { id: { writer, sequence, part }, ref: refs.value[0] };
}

export type FinalRead =
  | { readonly kind: 'unavailable'; readonly why: string }
  | { readonly kind: 'absent' }
  | { readonly kind: 'corrupt'; readonly why: string }
  | { readonly kind: 'row'; readonly payload: PayloadId; readonly sequence: number };

export class Workload {
  readonly violations: string[] = [];
  readonly figures: WorkloadFigures = { opsByKind: {}, readsChecked: 0, bytesVerified: 0, readsUnavailable: 0, listingsChecked: 0, burstsChecked: 0, notOwnerRetries: 0 };
  private readonly stamp: SimStamp;
  private readonly process: SimProcess;
  private readonly tables: PartitionClient;
  private readonly ledger: Ledger;
  private readonly options: WorkloadOptions;
  private readonly random: Random;
  private opsDone = 0;
  private writersDone = 0;
  private readonly sequences: number[] = [];
  private readonly rounds: number[] = [];

  constructor(stamp: SimStamp, options: { process: SimProcess; tables: PartitionClient; ledger: Ledger; workload: WorkloadOptions }) {
    this.stamp = stamp;
    this.process = options.process;
    this.tables = options.tables;
    this.ledger = options.ledger;
    this.options = options.workload;
    this.random = stamp.random('workload');
  }

  async run(): Promise<void> {
    const writers = Array.from({ length: this.options.writers }, (_, writer) => this.writer(writer));
    const readers = Array.from({ length: this.options.readers }, (_, reader) => this.reader(reader));
    await Promise.all([...writers, ...readers]);
  }

  /** One call through the front end's PartitionClient, bounded, with its outcome classified. */
  async attempt<T>(work: (tables: PartitionClient) => Promise<T>): Promise<Attempt<T>> {
    let timer: { cancel(): void } | null = null;
    const timeout = new Promise<'timeout'>((resolve) => {
      timer = this.stamp.clock.setTimer(this.options.opDeadlineMs, () => resolve('timeout'));
    });
    const retriesBefore = this.tables.stats().notOwnerAnswers;
    try {
      const value = await Promise.race([this.process.run(() => work(this.tables)), timeout]);
      if (value === 'timeout') return { kind: 'indeterminate', code: 'client.timeout', message: `no answer within ${this.options.opDeadlineMs} ms` };
      return { kind: 'ok', value };
    } catch (error) {
      const message = describe(error);
      if (!isStorageError(error)) return { kind: 'indeterminate', code: 'internal', message };
      const cause = error.cause;
      const neverApplied = error.code === 'partition.unavailable' && isStorageError(cause) && notAppliedCodes.has(cause.code);
      if (definiteFailureCodes.has(error.code) || neverApplied) return { kind: 'failed', code: error.code, message };
      return { kind: 'indeterminate', code: error.code, message };
    } finally {
      (timer as { cancel(): void } | null)?.cancel();
      this.figures.notOwnerRetries += this.tables.stats().notOwnerAnswers - retriesBefore;
    }
  }

  // ---- writers ----------------------------------------------------------------------------------

  private async writer(writer: number): Promise<void> {
    this.sequences[writer] = 0;
    this.rounds[writer] = 0;
    try {
      while (this.opsDone < this.options.opsMax) {
        this.opsDone += 1;
        await this.writerStep(writer);
        await this.stamp.clock.sleep(this.random.int(this.options.thinkMsMax + 1));
      }
    } finally {
      this.writersDone += 1;
    }
  }

  private async writerStep(writer: number): Promise<void> {
    const roll = this.random.int(100);
    const key = `w${writer}/o${this.random.int(this.options.keysPerWriter)}`;
    if (roll < 25) return this.count('put', this.put(writer, key, {}));
    if (roll < 33) return this.count('put-if-match', this.put(writer, key, { ifMatch: this.knownEtag(key) }));
    if (roll < 37) return this.count('put-if-match-wrong', this.put(writer, key, { ifMatch: '0xDEAD' }));
    if (roll < 44) return this.count('put-if-none-match', this.put(writer, key, { ifNoneMatch: '*' }));
    if (roll < 54) return this.count('delete', this.remove(writer, key));
    if (roll < 61) return this.count('snapshot', this.snapshot(writer, key));
    if (roll < 68) return this.count('batch', this.batch(writer));
    if (roll < 76) return this.count('list', this.list(writer));
    if (roll < 88) return this.count('read', this.readKey(key).then(() => undefined));
    return this.count('page-burst', this.burst(writer));
  }

  private async count(kind: string, work: Promise<void>): Promise<void> {
    this.figures.opsByKind[kind] = (this.figures.opsByKind[kind] ?? 0) + 1;
    await work;
  }

  private knownEtag(key: string): string {
    const state = this.ledger.certainState(key);
    return state?.kind === 'live' ? state.etag : '*';
  }

  private nextSequence(writer: number): number {
    const next = (this.sequences[writer] ?? 0) + 1;
    this.sequences[writer] = next;
    return next;
  }

  private nextRound(writer: number): number {
    const next = (this.rounds[writer] ?? 0) + 1;
    this.rounds[writer] = next;
    return next;
  }

  private payloadLength(): number {
    const roll = this.random.int(100);
    if (roll < 70) return 40 + this.random.int(2000);
    if (roll < 95) return 8192 + this.random.int(56 * 1024);
    return 270 * 1024 + this.random.int(30 * 1024);
  }

  /** Appends a payload to the data stream; null if that failed (then no row points at it). */
  private async storePayload(key: string, id: PayloadId, length: number): Promise<DataRef | null> {
    const stored = await this.attempt((tables) => tables.appendData(Buffer.from(key, 'latin1'), generatePayload(id, length)));
    return stored.kind === 'ok' ? stored.value : null;
  }

  private async put(writer: number, key: string, conditions: { ifMatch?: string; ifNoneMatch?: '*' }): Promise<void> {
    const id = { writer, sequence: this.nextSequence(writer), part: 0 };
    const ref = await this.storePayload(key, id, this.payloadLength());
    if (ref === null) return;
    const expected = this.ledger.certainState(key);
    const version = this.ledger.begin({ key, kind: 'put', payload: id, round: this.nextRound(writer) });
    const result = await this.attempt((tables) => tables.put(Buffer.from(key, 'latin1'), payloadColumns(id, ref), conditions));
    this.settle([version], result, (value) => ({ sequence: value.sequence, etags: [value.etag] }));
    this.checkCondition(key, conditions, expected, result);
  }

  private async remove(writer: number, key: string): Promise<void> {
    const version = this.ledger.begin({ key, kind: 'delete', payload: null, round: this.nextRound(writer) });
    const result = await this.attempt((tables) => tables.delete(Buffer.from(key, 'latin1')));
    this.settle([version], result, (value) => ({ sequence: value.sequence, etags: [null] }));
  }

  private async snapshot(writer: number, key: string): Promise<void> {
    const row = await this.readKey(key);
    if (row === null) return;
    const found = rowPayload(row);
    if (found === null) return;
    const snapshotKey = `${key}@s${this.nextSequence(writer)}`;
    const version = this.ledger.begin({ key: snapshotKey, kind: 'put', payload: found.id, round: this.nextRound(writer) });
    const result = await this.attempt((tables) => tables.put(Buffer.from(snapshotKey, 'latin1'), row.columns, { ifNoneMatch: '*' }));
    this.settle([version], result, (value) => ({ sequence: value.sequence, etags: [value.etag] }));
    if (result.kind === 'failed' && result.code === 'partition.exists') this.violations.push(`${snapshotKey}: a new snapshot name already existed`);
  }

  private async batch(writer: number): Promise<void> {
    const sequence = this.nextSequence(writer);
    const id = { writer, sequence, part: 0 };
    const size = 2 + this.random.int(3);
    const keys = Array.from({ length: size }, (_, index) => `w${writer}/b${sequence}/${index}`);
    const ref = await this.storePayload(keys[0] ?? '', id, 40 + this.random.int(600));
    if (ref === null) return;
    const round = this.nextRound(writer);
    const versions = keys.map((key) => this.ledger.begin({ key, kind: 'put', payload: id, round, group: `${writer}.${sequence}` }));
    const result = await this.attempt((tables) => tables.transact(keys.map((key) => ({ kind: 'put' as const, key: Buffer.from(key, 'latin1'), columns: payloadColumns(id, ref) }))));
    this.settle(versions, result, (value) => ({ sequence: value.sequence, etags: value.etags }));
  }

  private settle<T>(versions: readonly Version[], result: Attempt<T>, acked: (value: T) => { sequence: number; etags: readonly (string | null)[] }): void {
    const outcome = result.kind === 'ok' ? `acked@${acked(result.value).sequence}` : `${result.kind}:${result.code}`;
    this.stamp.trace(`write ${versions.map((v) => `${v.kind} ${v.key}`).join(',')} ${outcome}`);
    for (const [index, version] of versions.entries()) {
      if (result.kind === 'ok') {
        const { sequence, etags } = acked(result.value);
        this.ledger.settle(version, { status: 'acked', commitSequence: sequence, etag: etags[index] ?? null });
      } else {
        this.ledger.settle(version, { status: result.kind });
      }
    }
  }

  private checkCondition<T>(key: string, conditions: { ifMatch?: string; ifNoneMatch?: '*' }, expected: ReturnType<Ledger['certainState']>, result: Attempt<T>): void {
    if (expected === null || result.kind === 'indeterminate' || (conditions.ifMatch === undefined && conditions.ifNoneMatch === undefined)) return;
    if (result.kind === 'failed' && !result.code.startsWith('partition.')) return;
    if (result.kind === 'failed' && ['partition.busy', 'partition.closed', 'partition.unavailable'].includes(result.code)) return;
    const live = expected.kind === 'live' ? expected : null;
    const shouldPass = conditions.ifNoneMatch === '*' ? live === null : live !== null && (conditions.ifMatch === '*' || conditions.ifMatch === live.etag);
    if (shouldPass !== (result.kind === 'ok')) {
      this.violations.push(`${key}: conditional write ${JSON.stringify(conditions)} on ${JSON.stringify(expected)} ${result.kind === 'ok' ? 'succeeded' : `failed (${result.code})`}`);
    }
  }

  // ---- reads ------------------------------------------------------------------------------------

  /** Reads a key, checks the row and its bytes against the ledger; the row, or null. */
  async readKey(key: string): Promise<LiveRow | null> {
    const startTick = this.ledger.tick();
    const got = await this.attempt((tables) => tables.get(Buffer.from(key, 'latin1')));
    if (got.kind !== 'ok') {
      this.figures.readsUnavailable += 1;
      return null;
    }
    return this.judgeRow(key, startTick, got.value);
  }

  /** A key's row and the identity of the bytes it points at, for the final checks. */
  async readForCheck(key: string): Promise<FinalRead> {
    const got = await this.attempt((tables) => tables.get(Buffer.from(key, 'latin1')));
    if (got.kind !== 'ok') return { kind: 'unavailable', why: got.message };
    if (got.value === null) return { kind: 'absent' };
    const found = rowPayload(got.value);
    if (found === null) return { kind: 'corrupt', why: 'row with columns the workload never writes' };
    const bytes = await this.attempt((tables) => tables.readData(Buffer.from(key, 'latin1'), found.ref));
    if (bytes.kind !== 'ok') return { kind: 'unavailable', why: `${JSON.stringify(found.ref)}: ${bytes.message}` };
    const verdict = verifyPayload(bytes.value);
    if (!verdict.ok) return { kind: 'corrupt', why: verdict.why };
    if (payloadKey(verdict.id) !== payloadKey(found.id)) return { kind: 'corrupt', why: `row names ${payloadKey(found.id)}, bytes are ${payloadKey(verdict.id)}` };
    this.figures.bytesVerified += bytes.value.length;
    return { kind: 'row', payload: found.id, sequence: got.value.sequence };
  }

  private async judgeRow(key: string, startTick: number, row: LiveRow | null): Promise<LiveRow | null> {
    if (row === null) {
      this.figures.readsChecked += 1;
      this.note(this.ledger.checkRead(key, startTick, null));
      return null;
    }
    const found = rowPayload(row);
    if (found === null) {
      this.violations.push(`${key}: row with columns the workload never writes`);
      return null;
    }
    const bytes = await this.attempt((tables) => tables.readData(Buffer.from(key, 'latin1'), found.ref));
    if (bytes.kind !== 'ok') {
      this.figures.readsUnavailable += 1;
      return row;
    }
    const verdict = verifyPayload(bytes.value);
    if (!verdict.ok) {
      this.violations.push(`${key}: corrupt bytes returned for ${payloadKey(found.id)}: ${verdict.why}`);
      return row;
    }
    if (payloadKey(verdict.id) !== payloadKey(found.id)) this.violations.push(`${key}: row names ${payloadKey(found.id)} but its data ref holds ${payloadKey(verdict.id)}`);
    this.figures.readsChecked += 1;
    this.figures.bytesVerified += bytes.value.length;
    this.stamp.trace(`read ${key} ${payloadKey(found.id)}@${row.sequence}`);
    this.note(this.ledger.checkRead(key, startTick, { sequence: row.sequence, payload: found.id }));
    return row;
  }

  private note(violation: string | null): void {
    if (violation !== null) this.violations.push(violation);
  }

  private async reader(reader: number): Promise<void> {
    const random = this.stamp.random(`reader:${reader}`);
    while (this.writersDone < this.options.writers) {
      const keys = this.ledger.allKeys();
      const key = keys.length === 0 ? undefined : keys[random.int(keys.length)];
      if (key !== undefined) await this.count('reader-read', this.readKey(key).then(() => undefined));
      await this.stamp.clock.sleep(50 + random.int(this.options.thinkMsMax + 1));
    }
  }

  // ---- listings ---------------------------------------------------------------------------------

  /** Lists the writer's keys (all settled: the writer is serial) and compares with the ledger. */
  private async list(writer: number): Promise<void> {
    const prefix = `w${writer}/`;
    const delimiter = this.random.int(2) === 0 ? '/' : null;
    const seen = await this.scanAll({ prefix: Buffer.from(prefix, 'latin1'), limit: 1 + this.random.int(12), ...(delimiter === null ? {} : { delimiter: Buffer.from(delimiter, 'latin1') }) });
    if (seen === null) return;
    this.figures.listingsChecked += 1;
    for (const key of this.ledger.allKeys().filter((candidate) => candidate.startsWith(prefix))) {
      const rest = key.slice(prefix.length);
      const cut = delimiter === null ? -1 : rest.indexOf(delimiter);
      const item = cut === -1 ? key : `prefix:${prefix}${rest.slice(0, cut + 1)}`;
      const state = this.ledger.certainState(key);
      if (state?.kind === 'live' && !seen.has(item)) this.violations.push(`listing of ${prefix} misses ${item} (${key} exists, acknowledged)`);
      if (cut === -1 && state?.kind === 'absent' && seen.has(key)) this.violations.push(`listing of ${prefix} shows ${key}, which certainly does not exist`);
    }
  }

  /** Every item of a scan (rows by key, prefixes as "prefix:..."), or null if unavailable. */
  private async scanAll(options: ClientScanOptions): Promise<Set<string> | null> {
    const seen = new Set<string>();
    let continuation: string | undefined;
    for (let page = 0; page < 200; page++) {
      const result = await this.attempt((tables) => tables.scan({ ...options, ...(continuation === undefined ? {} : { continuation }) }));
      if (result.kind !== 'ok') return null;
      for (const item of result.value.items) seen.add(item.kind === 'row' ? item.row.key.toString('latin1') : `prefix:${item.prefix.toString('latin1')}`);
      if (result.value.continuation === null) return seen;
      continuation = result.value.continuation;
    }
    this.violations.push(`scan ${JSON.stringify(options.prefix?.toString('latin1'))} did not end within 200 pages`);
    return seen;
  }

  // ---- page bursts ------------------------------------------------------------------------------

  /** 3-8 concurrent, non-contiguous, overlapping page-range writes, then a full read-back. */
  private async burst(writer: number): Promise<void> {
    const round = this.nextRound(writer);
    const writes = 3 + this.random.int(6);
    const ranges = Array.from({ length: writes }, () => {
      const count = 1 + this.random.int(6);
      return { start: this.random.int(pagesPerBlob - count + 1), count, sequence: this.nextSequence(writer) };
    });
    await Promise.all(ranges.map((range) => this.pageWrite(writer, round, range)));
    await this.readPageBlob(writer);
  }

  private async pageWrite(writer: number, round: number, range: { start: number; count: number; sequence: number }): Promise<void> {
    const ids = Array.from({ length: range.count }, (_, index) => ({ writer, sequence: range.sequence, part: range.start + index }));
    const data = Buffer.concat(ids.map((id) => generatePayload(id, pageBytes)));
    const keys = ids.map((id) => pageKey(writer, id.part));
    const stored = await this.attempt((tables) => tables.appendData(Buffer.from(keys[0] ?? '', 'latin1'), data));
    if (stored.kind !== 'ok') return;
    const ref = stored.value;
    const versions = ids.map((id, index) => this.ledger.begin({ key: keys[index] ?? '', kind: 'put', payload: id, round, group: `${writer}.${range.sequence}` }));
    const ops = ids.map((id, index) => ({
      kind: 'put' as const, key: Buffer.from(keys[index] ?? '', 'latin1'),
      columns: payloadColumns(id, { extentId: ref.extentId, offset: ref.offset + index * pageBytes, length: pageBytes }),
    }));
    const result = await this.attempt((tables) => tables.transact(ops));
    this.settle(versions, result, (value) => ({ sequence: value.sequence, etags: value.etags }));
  }

  /** Reads every page of the blob and judges each against the ledger (the flat page model). */
  private async readPageBlob(writer: number): Promise<void> {
    const startTick = this.ledger.tick();
    const prefix = `w${writer}/pb/`;
    const rows = new Map<string, LiveRow>();
    let continuation: string | undefined;
    for (let page = 0; page < 20; page++) {
      const result = await this.attempt((tables) => tables.scan({ prefix: Buffer.from(prefix, 'latin1'), limit: pagesPerBlob, ...(continuation === undefined ? {} : { continuation }) }));
      if (result.kind !== 'ok') return;
      for (const item of result.value.items) if (item.kind === 'row') rows.set(item.row.key.toString('latin1'), item.row);
      if (result.value.continuation === null) break;
      continuation = result.value.continuation;
    }
    for (let page = 0; page < pagesPerBlob; page++) {
      const key = pageKey(writer, page);
      if (this.ledger.versions(key).length === 0) continue;
      await this.judgeRow(key, startTick, rows.get(key) ?? null);
    }
    this.figures.burstsChecked += 1;
  }
}

export function pageKey(writer: number, page: number): string {
  return `w${writer}/pb/p${page.toString().padStart(2, '0')}`;
}
