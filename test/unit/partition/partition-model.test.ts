// Model test of the partition engine (issue 3): seeded random sequences of puts, deletes,
// conditional writes, transactions, gets, scans with continuation (prefix, delimiter, bounds),
// checkpoints, compactions, crashes (the owner dies, a new one loads from the streams), crashes
// in the middle of a write, partition moves (clean close, new owner with a higher epoch), log
// append failures with unknown outcome and duplicated appends, checked against an in-memory
// sorted map after every operation. A divergence fails with its seed and operation index.
// Tiny block, run and memtable limits make every path (many blocks, many runs, automatic
// checkpoints and compactions, early scan continuations) run within a few hundred operations.
// Runs on in-memory streams (many seeds) and on the real stream layer (fewer seeds, since every
// call goes through simulated replicas on a virtual clock).
//   KURA_SEED=<n> pins the first seed; KURA_PARTITION_MODEL_SEEDS=<n> changes the seed count.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Partition } from '../../../src/partition/partition.ts';
import type { LiveRow, PartitionOp } from '../../../src/partition/partition.ts';
import type { PartitionStreamIds } from '../../../src/partition/partition-streams.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import { SeededRandom } from '../../../src/util/random.ts';
import type { Column } from '../../../src/wire/partition-row.ts';
import { MemoryBackend, StampBackend } from '../../helpers/partition-stamp.ts';
import type { OwnerSession, PartitionBackend } from '../../helpers/partition-stamp.ts';

const rootSeed = Number(process.env['KURA_SEED'] ?? '20121228');
const limits = { memtableBytesMax: 3000, blockBytesTarget: 400, runBytesMax: 3000, runsCompactionTrigger: 4, rowCacheEntriesMax: 32, blockCacheBytesMax: 4096, scanExaminedMax: 12 };

interface ModelRow {
  readonly columns: readonly Column[];
  readonly etag: string;
}

interface Figures {
  operations: number;
  byKind: Map<string, number>;
  indeterminate: number;
  indeterminateApplied: number;
  conditionFailuresExpected: number;
  /** Check ops (a row relied on, not written) put into batches. */
  checks: number;
  scanPages: number;
}

/** One seed's run: the partition under test, its owner session, and the model. */
class ModelRun {
  readonly model = new Map<string, ModelRow>();
  readonly random: SeededRandom;
  readonly backend: PartitionBackend;
  readonly figures: Figures;
  ids!: PartitionStreamIds;
  session!: OwnerSession;
  partition!: Partition;
  epoch = 1;
  step = 0;

  constructor(backend: PartitionBackend, seed: number, figures: Figures) {
    this.backend = backend;
    this.random = new SeededRandom(seed);
    this.figures = figures;
  }

  async start(): Promise<void> {
    this.ids = await this.backend.createPartitionStreams();
    await this.openOwner();
  }

  async openOwner(): Promise<void> {
    this.session = this.backend.session();
    this.partition = await this.backend.drive(Partition.open({
      partitionId: 42, streams: this.session.streams, streamIds: this.ids, clock: this.backend.clock, ownerEpoch: this.epoch, limits,
    }));
  }

  /** The owner dies: nothing it has in flight will be acknowledged; a new owner loads. */
  async crash(): Promise<void> {
    this.session.revoke();
    await this.backend.drive(this.session.settle());
    await this.openOwner();
  }

  key(): Buffer {
    const alphabet = ['a', 'b', '/', 'c', '\u00ff'];
    const depth = 1 + this.random.int(4);
    let text = '';
    for (let i = 0; i < depth; i++) text += alphabet[this.random.int(alphabet.length)];
    return Buffer.from(text, 'latin1');
  }

  columns(): Column[] {
    const columns: Column[] = [{ name: 'n', value: { kind: 'int64', value: BigInt(this.random.int(1_000_000)) - 500_000n } }];
    if (this.random.int(3) === 0) columns.push({ name: 's', value: { kind: 'string', value: `v${this.random.int(1000)}\u00e9` } });
    if (this.random.int(8) === 0) columns.push({ name: 'b', value: { kind: 'bytes', value: this.random.bytes(this.random.int(3) === 0 ? 700 : 16) } });
    if (this.random.int(10) === 0) columns.push({ name: 'f', value: { kind: 'float64', value: this.random.next() } });
    return columns;
  }

  /** A random condition: none, If-None-Match *, If-Match * / the right ETag / a wrong one. */
  condition(key: Buffer, allowNoneMatch: boolean): { ifMatch?: string; ifNoneMatch?: '*' } {
    const roll = this.random.int(8);
    const current = this.model.get(key.toString('latin1'));
    if (roll === 0 && allowNoneMatch) return { ifNoneMatch: '*' };
    if (roll === 1) return { ifMatch: '*' };
    if (roll === 2) return { ifMatch: current?.etag ?? '0x1' };
    if (roll === 3) return { ifMatch: '0xDEAD' };
    return {};
  }
}

// ---- expected outcomes from the model -------------------------------------------------------------

type Expected = { ok: true } | { ok: false; code: 'partition.exists' | 'partition.row_not_found' | 'partition.condition_failed' };

function expectBatch(model: ReadonlyMap<string, ModelRow>, ops: readonly PartitionOp[]): Expected {
  for (const op of ops) {
    const current = model.get(op.key.toString('latin1'));
    if (op.kind === 'put' && op.ifNoneMatch === '*' && current !== undefined) return { ok: false, code: 'partition.exists' };
    if (op.ifMatch === undefined) continue;
    if (current === undefined) return { ok: false, code: 'partition.row_not_found' };
    if (op.ifMatch !== '*' && op.ifMatch !== current.etag) return { ok: false, code: 'partition.condition_failed' };
  }
  return { ok: true };
}

function applyBatch(model: Map<string, ModelRow>, ops: readonly PartitionOp[], etags: readonly (string | null)[]): void {
  ops.forEach((op, index) => {
    const key = op.key.toString('latin1');
    const etag = etags[index];
    if (op.kind === 'delete') model.delete(key);
    else if (op.kind === 'check') return;
    else model.set(key, { columns: op.columns, etag: etag ?? assert.fail('a put returns an etag') });
  });
}

function expectScan(model: ReadonlyMap<string, ModelRow>, shape: ScanShape): string[] {
  const out: string[] = [];
  const keys = [...model.keys()].sort();
  for (const key of keys) {
    if (shape.start !== undefined && key < shape.start) continue;
    if (shape.end !== undefined && key >= shape.end) continue;
    if (shape.prefix !== undefined && !key.startsWith(shape.prefix)) continue;
    const at = shape.delimiter === undefined ? -1 : key.indexOf(shape.delimiter, shape.prefix?.length ?? 0);
    const item = at === -1 ? `row:${key}` : `prefix:${key.slice(0, at + 1)}`;
    if (out.at(-1) !== item) out.push(item);
  }
  return out;
}

interface ScanShape {
  start?: string;
  end?: string;
  prefix?: string;
  delimiter?: string;
}

// ---- operations -----------------------------------------------------------------------------

async function writeBatch(run: ModelRun, ops: PartitionOp[]): Promise<void> {
  const expected = expectBatch(run.model, ops);
  let outcome: unknown;
  try {
    outcome = await run.backend.drive(run.partition.transact(ops));
  } catch (error) {
    outcome = error;
  }
  if (expected.ok) {
    assert.ok(!(outcome instanceof Error), `step ${run.step}: batch should commit, got ${String(outcome)}`);
    applyBatch(run.model, ops, (outcome as { etags: readonly (string | null)[] }).etags);
  } else {
    run.figures.conditionFailuresExpected += 1;
    assert.ok(isStorageError(outcome, expected.code), `step ${run.step}: expected ${expected.code}, got ${String(outcome)}`);
  }
}

function randomBatch(run: ModelRun, size: number, conditional: boolean): PartitionOp[] {
  const ops: PartitionOp[] = [];
  const used = new Set<string>();
  while (ops.length < size) {
    const key = run.key();
    if (used.has(key.toString('latin1'))) continue;
    used.add(key.toString('latin1'));
    const condition = conditional ? run.condition(key, true) : {};
    if (run.random.int(4) === 0) {
      const ifMatch = condition.ifMatch;
      ops.push(ifMatch === undefined ? { kind: 'delete', key } : { kind: 'delete', key, ifMatch });
    } else {
      ops.push({ kind: 'put', key, columns: run.columns(), ...condition });
    }
  }
  // Sometimes a check beside the writes: a row the batch relies on without writing it.
  const checked = run.key();
  const ifMatch = conditional && run.random.int(3) === 0 && !used.has(checked.toString('latin1')) ? run.condition(checked, true).ifMatch : undefined;
  if (ifMatch !== undefined) {
    ops.splice(run.random.int(ops.length + 1), 0, { kind: 'check', key: checked, ifMatch });
    run.figures.checks += 1;
  }
  return ops;
}

/**
 * Batches submitted together (and optionally beside a checkpoint): the partition commits them in
 * submission order, each judged against the state the earlier ones left, so the model applies
 * them one by one. Then every key they touched is read back.
 */
async function concurrentBurst(run: ModelRun, withCheckpoint: boolean): Promise<void> {
  const batches = Array.from({ length: 2 + run.random.int(5) }, () => randomBatch(run, 1 + run.random.int(3), true));
  const checkpoint = withCheckpoint ? run.partition.checkpoint() : Promise.resolve();
  // Reads racing the writes: their answers may be old or new, but they must not leave a stale
  // row cached (checked by the reads after the burst).
  const racingReads = batches.flat().map((op) => run.partition.get(op.key));
  const outcomes = await run.backend.drive(Promise.allSettled(batches.map((ops) => run.partition.transact(ops))));
  await run.backend.drive(Promise.allSettled(racingReads));
  for (const [index, ops] of batches.entries()) {
    const expected = expectBatch(run.model, ops);
    const outcome = outcomes[index];
    assert.ok(outcome !== undefined);
    if (expected.ok) {
      assert.ok(outcome.status === 'fulfilled', `step ${run.step}: burst batch ${index} should commit, got ${outcome.status === 'rejected' ? String(outcome.reason) : ''}`);
      applyBatch(run.model, ops, outcome.value.etags);
    } else {
      run.figures.conditionFailuresExpected += 1;
      assert.ok(outcome.status === 'rejected' && isStorageError(outcome.reason, expected.code), `step ${run.step}: burst batch ${index} should fail ${expected.code}`);
    }
  }
  await run.backend.drive(checkpoint);
  // Half the time move everything to runs first, so the reads below go past the memtable.
  if (run.random.int(2) === 0) await run.backend.drive(run.partition.checkpoint());
  for (const ops of batches) for (const op of ops) await checkGet(run, op.key);
}

async function checkGet(run: ModelRun, key: Buffer): Promise<void> {
  const row = await run.backend.drive(run.partition.get(key));
  const expected = run.model.get(key.toString('latin1'));
  if (expected === undefined) {
    assert.equal(row, null, `step ${run.step}: ${key.toString('latin1')} should be absent`);
    return;
  }
  assert.ok(row !== null, `step ${run.step}: ${key.toString('latin1')} should exist`);
  assert.equal(row.etag, expected.etag, `step ${run.step}: etag of ${key.toString('latin1')}`);
  assert.deepEqual(row.columns, expected.columns, `step ${run.step}: columns of ${key.toString('latin1')}`);
}

async function checkScan(run: ModelRun): Promise<void> {
  const shape: ScanShape = {};
  if (run.random.int(3) === 0) shape.prefix = run.key().toString('latin1').slice(0, 1 + run.random.int(2));
  if (run.random.int(3) === 0) shape.delimiter = '/';
  if (run.random.int(4) === 0) shape.start = run.key().toString('latin1');
  if (run.random.int(4) === 0) shape.end = run.key().toString('latin1');
  const toBuffer = (value: string | undefined): Buffer | undefined => (value === undefined ? undefined : Buffer.from(value, 'latin1'));
  const base = { start: toBuffer(shape.start), end: toBuffer(shape.end), prefix: toBuffer(shape.prefix), delimiter: toBuffer(shape.delimiter) };
  const options = Object.fromEntries(Object.entries(base).filter(([, value]) => value !== undefined)) as { start?: Buffer; end?: Buffer; prefix?: Buffer; delimiter?: Buffer };
  const limit = 1 + run.random.int(6);
  const got: string[] = [];
  let continuation: string | null = null;
  for (let pages = 0; pages < 1000; pages++) {
    const page: Awaited<ReturnType<Partition['scan']>> = await run.backend.drive(run.partition.scan(continuation === null ? { ...options, limit } : { ...options, limit, continuation }));
    run.figures.scanPages += 1;
    assert.ok(page.items.length <= limit);
    for (const item of page.items) got.push(item.kind === 'row' ? `row:${item.row.key.toString('latin1')}` : `prefix:${item.prefix.toString('latin1')}`);
    continuation = page.continuation;
    if (continuation === null) break;
  }
  assert.deepEqual(got, expectScan(run.model, shape), `step ${run.step}: scan ${JSON.stringify(shape)} limit ${limit}`);
}

/** A write whose outcome the client never learns; after a reload it is all there or not at all. */
async function indeterminateWrite(run: ModelRun, inject: (() => void) | null): Promise<void> {
  const ops = randomBatch(run, 1 + run.random.int(3), false);
  inject?.();
  const pending = run.partition.transact(ops);
  pending.catch(() => undefined);
  if (inject === null) {
    await run.backend.step(run.random.int(6));
    run.session.revoke();
  }
  let acknowledged: { etags: readonly (string | null)[] } | null = null;
  try {
    acknowledged = await run.backend.drive(pending);
  } catch {
    // unknown outcome
  }
  run.backend.memory?.clearFaults();
  await run.crash();
  if (acknowledged !== null) {
    applyBatch(run.model, ops, acknowledged.etags);
    return;
  }
  run.figures.indeterminate += 1;
  const rows = await Promise.all(ops.map((op) => run.backend.drive(run.partition.get(op.key))));
  const changed = rows.map((row, index) => !sameAsModel(row, run.model.get(ops[index]?.key.toString('latin1') ?? '')));
  if (!changed.some(Boolean)) return;
  run.figures.indeterminateApplied += 1;
  ops.forEach((op, index) => {
    const row = rows[index] ?? null;
    if (op.kind === 'check') return;
    if (op.kind === 'delete') assert.equal(row, null, `step ${run.step}: half-applied batch (delete)`);
    else assert.deepEqual(row?.columns, op.columns, `step ${run.step}: half-applied batch (put)`);
  });
  applyBatch(run.model, ops, rows.map((row) => row?.etag ?? null));
}

function sameAsModel(row: LiveRow | null, model: ModelRow | undefined): boolean {
  return row === null ? model === undefined : model !== undefined && row.etag === model.etag;
}

async function oneOperation(run: ModelRun): Promise<string> {
  const roll = run.random.int(100);
  const memory = run.backend.memory;
  if (roll < 35) {
    const key = run.key();
    await writeBatch(run, [{ kind: 'put', key, columns: run.columns(), ...run.condition(key, true) }]);
    return 'put';
  }
  if (roll < 45) {
    const key = run.key();
    const { ifMatch } = run.condition(key, false);
    await writeBatch(run, [ifMatch === undefined ? { kind: 'delete', key } : { kind: 'delete', key, ifMatch }]);
    return 'delete';
  }
  if (roll < 55) {
    await writeBatch(run, randomBatch(run, 2 + run.random.int(4), run.random.int(2) === 0));
    return 'transaction';
  }
  if (roll < 66) {
    await checkGet(run, run.key());
    return 'get';
  }
  if (roll < 70) {
    const withCheckpoint = run.random.int(2) === 0;
    await concurrentBurst(run, withCheckpoint);
    return withCheckpoint ? 'burst beside a checkpoint' : 'concurrent burst';
  }
  if (roll < 78) {
    await checkScan(run);
    return 'scan';
  }
  if (roll < 82) {
    await run.backend.drive(run.partition.checkpoint());
    return 'checkpoint';
  }
  if (roll < 84) {
    await run.backend.drive(run.partition.compact());
    return 'compaction';
  }
  if (roll < 87) {
    await run.crash();
    return 'crash';
  }
  if (roll < 89) {
    await run.backend.drive(run.partition.close());
    run.epoch += 1;
    await run.crash();
    return 'move';
  }
  if (roll < 93) {
    await indeterminateWrite(run, null);
    return 'crash mid-write';
  }
  if (roll < 97 && memory !== null) {
    const outcome = run.random.int(2) === 0 ? 'lost' : 'landed';
    await indeterminateWrite(run, () => memory.failNextAppend(run.ids.log, outcome));
    return `append ${outcome}`;
  }
  if (memory !== null) {
    memory.duplicateNextAppend(run.ids.log);
    const key = run.key();
    await writeBatch(run, [{ kind: 'put', key, columns: run.columns() }]);
    return 'duplicated append';
  }
  await checkGet(run, run.key());
  return 'get';
}

async function runSeeds(backend: (seed: number) => Promise<PartitionBackend>, seeds: number, operations: number): Promise<{ figures: Figures; divergences: string[]; backendName: string }> {
  const figures: Figures = { operations: 0, byKind: new Map(), indeterminate: 0, indeterminateApplied: 0, conditionFailuresExpected: 0, checks: 0, scanPages: 0 };
  const divergences: string[] = [];
  let backendName = '';
  for (let index = 0; index < seeds; index++) {
    const seed = rootSeed + index;
    const instance = await backend(seed);
    backendName = instance.name;
    const run = new ModelRun(instance, seed, figures);
    try {
      await run.start();
      for (run.step = 0; run.step < operations; run.step++) {
        const kind = await oneOperation(run);
        figures.operations += 1;
        figures.byKind.set(kind, (figures.byKind.get(kind) ?? 0) + 1);
      }
      run.session.revoke();
      await run.crash();
      for (const key of run.model.keys()) await checkGet(run, Buffer.from(key, 'latin1'));
    } catch (error) {
      divergences.push(`seed ${seed}, step ${run.step}: ${(error instanceof Error ? error.stack ?? error.message : String(error)).slice(0, 2000)}`);
    } finally {
      await instance.close();
    }
  }
  return { figures, divergences, backendName };
}

function report(t: { diagnostic(message: string): void }, result: Awaited<ReturnType<typeof runSeeds>>, seeds: number): void {
  const { figures, divergences } = result;
  t.diagnostic(`backend: ${result.backendName}; root seed ${rootSeed}`);
  t.diagnostic(`${figures.operations} operations, ${seeds} seeds, ${divergences.length} divergences`);
  t.diagnostic(`by kind: ${[...figures.byKind.entries()].sort().map(([kind, count]) => `${kind} ${count}`).join(', ')}`);
  t.diagnostic(`writes of unknown outcome: ${figures.indeterminate} (${figures.indeterminateApplied} found applied, all whole); expected condition failures: ${figures.conditionFailuresExpected}; check ops: ${figures.checks}; scan pages: ${figures.scanPages}`);
  assert.equal(divergences.length, 0, divergences.slice(0, 2).join('\n'));
}

describe('Partition model test', () => {
  it('matches a sorted-map model on in-memory streams with crashes, moves and append faults', async (t) => {
    const seeds = Number(process.env['KURA_PARTITION_MODEL_SEEDS'] ?? '40');
    const result = await runSeeds(() => Promise.resolve(new MemoryBackend()), seeds, 400);
    report(t, result, seeds);
  });

  it('matches the model on the real stream layer (ExtentNodes, SimDisk, SimNetwork)', async (t) => {
    const seeds = Number(process.env['KURA_PARTITION_MODEL_STAMP_SEEDS'] ?? '8');
    const result = await runSeeds((seed) => StampBackend.start(seed), seeds, 300);
    report(t, result, seeds);
  });
});
