// `npm run bench:partition [-- --profile quick|full] [--rows N] [--cpu-prof-phase NAME]`: the
// partition layer alone on the real stream layer in one process (bench/partition/stamp.ts):
// point writes and reads (ops/s, p50/p99), a listing of every row in pages of 5,000 with
// continuation after a checkpoint, and resident memory, through the engine (`Partition`) and
// through the front end's path (`PartitionClient` → LocalNetwork → `PartitionServer`). Issue 3
// goals: ≥ 200,000 rows/s listed, point read p99 < 2 ms, RSS bounded by configured sizes.
// Saves bench/results/partition-<profile>-<date>T<time>.json. Never run by the test suite.
//
// --block-cache-mib N shrinks every partition's block cache (default blockCacheBytesMax, 32 MiB):
// at 1,000,000 rows the default holds ~10 % of the table, so --rows 100000 --block-cache-mib 3
// reproduces a listing that reads every block from the stream layer at a tenth of the load time;
// add --read-cache-mib 3 (each extent node's read cache of verified blocks, default 32 MiB) so
// those reads miss the node's cache too, as they do at 1M rows.
// --list-only runs the load and the listings alone (A/B runs of the listing path).
// --cpu-prof-phase NAME writes a V8 CPU profile (the profiler --cpu-prof uses, through
// node:inspector) of that phase only to /tmp/kura-partition-NAME.cpuprofile.
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { headerUsage, parseBenchArgs } from './lib/cli-args.ts';
import { extentReadCacheBytes } from '../src/constants.ts';
import { defaultPartitionLimits } from '../src/partition/partition.ts';
import type { Partition } from '../src/partition/partition.ts';
import type { PartitionEntry } from '../src/partition/partition-map.ts';
import { SeededRandom } from '../src/util/random.ts';
import type { ThroughputResult } from './lib/stats.ts';
import { BenchStamp, stampDescription } from './partition/stamp.ts';
import { typicalRowBytes } from './partition/rows.ts';
import { MemorySampler, listAll, loadRows, measureGets, measurePuts } from './partition/workloads.ts';
import type { ListResult, PartitionFront } from './partition/workloads.ts';

const profiles = {
  quick: { rows: 200_000, durationMs: 2_000, operationsMax: 20_000, coldReadsMax: 3_000 },
  full: { rows: 1_000_000, durationMs: 8_000, operationsMax: 200_000, coldReadsMax: 20_000 },
} as const;
type ProfileName = keyof typeof profiles;
type Settings = { -readonly [K in keyof (typeof profiles)['quick']]: number } & {
  profile: ProfileName;
  cpuProfPhase: string | null;
  /** Block cache of every partition, bytes (null = the default, blockCacheBytesMax). */
  blockCacheBytes: number | null;
  /** Read cache of each extent node, bytes (null = the default, extentReadCacheBytes). */
  readCacheBytes: number | null;
  /** Only the load and the listings (no point writes or reads): quick A/B runs of the listing path. */
  listOnly: boolean;
};

const pageRows = 5_000;
/** Server listings a --list-only run makes. */
const listOnlyRepeats = 4;
/** Warm reads cycle over this many rows: half the row cache, so every read after the first pass is a hit. */
const hotRows = 5_000;

interface PhaseMemory {
  readonly phase: string;
  readonly seconds: number;
  /** Process CPU time (user + system, every thread) over the phase: on a shared machine, less noisy than wall time. */
  readonly cpuSeconds: number;
  readonly peakRssBytes: number;
  readonly peakHeapUsedBytes: number;
  readonly peakExternalBytes: number;
  readonly endRssBytes: number;
}

class Run {
  readonly settings: Settings;
  readonly memory = new MemorySampler();
  readonly phases: PhaseMemory[] = [];
  readonly figures: Record<string, unknown> = {};

  constructor(settings: Settings) {
    this.settings = settings;
  }

  /** Runs one named phase: progress on stderr, memory peaks, and a CPU profile if asked for. */
  async phase<T>(name: string, body: () => Promise<T>): Promise<T> {
    process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${name} …\n`);
    this.memory.reset();
    const profiling = this.settings.cpuProfPhase === name ? await startProfiler() : null;
    const startMs = performance.now();
    const cpuBefore = process.cpuUsage();
    const result = await body();
    const cpu = process.cpuUsage(cpuBefore);
    const seconds = (performance.now() - startMs) / 1000;
    if (profiling !== null) await stopProfiler(profiling, name);
    this.memory.sample();
    this.phases.push({ phase: name, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, peakRssBytes: this.memory.peakRssBytes, peakHeapUsedBytes: this.memory.peakHeapUsedBytes, peakExternalBytes: this.memory.peakExternalBytes, endRssBytes: process.memoryUsage().rss });
    this.figures[name] = result;
    return result;
  }
}

async function startProfiler(): Promise<Session> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
  return session;
}

async function stopProfiler(session: Session, name: string): Promise<void> {
  const { profile } = await session.post('Profiler.stop');
  const path = `/tmp/kura-partition-${name}.cpuprofile`;
  await writeFile(path, JSON.stringify(profile));
  session.disconnect();
  process.stderr.write(`  cpu profile: ${path}\n`);
}

function parseSettings(): Settings {
  const values = parseBenchArgs(headerUsage(import.meta.url), {
    profile: { type: 'string', default: 'quick' }, rows: { type: 'string' }, 'cpu-prof-phase': { type: 'string' }, 'block-cache-mib': { type: 'string' }, 'read-cache-mib': { type: 'string' }, 'list-only': { type: 'boolean', default: false },
  });
  const profile = values.profile;
  if (profile !== 'quick' && profile !== 'full') throw new Error(`--profile must be quick or full, got ${profile}`);
  const rows = values.rows === undefined ? profiles[profile].rows : Number(values.rows);
  if (!Number.isSafeInteger(rows) || rows < pageRows || rows > 5_000_000) throw new Error(`--rows must be ${pageRows}..5000000`);
  return {
    ...profiles[profile], rows, profile, cpuProfPhase: values['cpu-prof-phase'] ?? null, listOnly: values['list-only'],
    blockCacheBytes: mibFlag(values['block-cache-mib'], '--block-cache-mib', 1), readCacheBytes: mibFlag(values['read-cache-mib'], '--read-cache-mib', 0),
  };
}

/** A flag given in MiB, as bytes (null when absent). */
function mibFlag(value: string | undefined, name: string, low: number): number | null {
  if (value === undefined) return null;
  const mib = Number(value);
  if (!Number.isSafeInteger(mib) || mib < low || mib > 1024) throw new Error(`${name} must be ${low}..1024`);
  return mib * 1024 * 1024;
}

/** Random row indexes over the whole table, seeded so runs repeat. */
function uniformPick(rows: number, seed: number): (sequence: number) => number {
  const random = new SeededRandom(seed);
  return () => random.int(rows);
}

/** Point writes at 1 and 16 writers into fresh containers. */
async function writePhases(run: Run, front: PartitionFront, label: string): Promise<void> {
  const rowBytes = typicalRowBytes();
  const { durationMs, operationsMax } = run.settings;
  for (const concurrency of [1, 16]) {
    await run.phase(`${label}-put-c${concurrency}`, () => measurePuts(front, { container: `${label}-w${concurrency}`, concurrency, rowBytes, durationMs, operationsMax }));
  }
}

/** Cold (right after a load: empty caches) random reads over the whole table at 1 and 16 readers. */
async function coldReadPhase(run: Run, front: PartitionFront, label: string, concurrency: number): Promise<ThroughputResult> {
  const { rows, durationMs, coldReadsMax } = run.settings;
  return run.phase(`${label}-get-cold-c${concurrency}`, () => measureGets(front, { container: 'list', concurrency, pick: uniformPick(rows, 11 + concurrency), durationMs, operationsMax: coldReadsMax }));
}

/** Warm reads: a hot set within the row cache, touched once first, then read in a closed loop. */
async function warmReadPhases(run: Run, front: PartitionFront, label: string): Promise<void> {
  const { rows, durationMs, operationsMax } = run.settings;
  const stride = Math.floor(rows / hotRows);
  await measureGets(front, { container: 'list', concurrency: 1, pick: (sequence) => (sequence % hotRows) * stride, durationMs: 60_000, operationsMax: hotRows });
  for (const concurrency of [1, 16]) {
    const random = new SeededRandom(21 + concurrency);
    await run.phase(`${label}-get-warm-c${concurrency}`, () => measureGets(front, { container: 'list', concurrency, pick: () => random.int(hotRows) * stride, durationMs, operationsMax }));
  }
}

/** A listing of every row; `-columns` also reads every column of every row (as ListBlobs does). */
function listPhase(run: Run, front: PartitionFront, label: string, readColumns: boolean, suffix = ''): Promise<ListResult> {
  const { rows } = run.settings;
  const name = `${label}-list${readColumns ? '-columns' : ''}${suffix}`;
  return run.phase(name, () => listAll(front, { container: 'list', pageRows, expectedRows: rows, pagesMax: 2 * Math.ceil(rows / pageRows) + 2, readColumns, onPage: () => run.memory.sample() }));
}

/** The engine alone: writes, a bulk load, checkpoint + compaction, then reads and the listing on fresh opens. */
async function enginePhases(run: Run, stamp: BenchStamp, entry: PartitionEntry): Promise<void> {
  let engine: Partition = await stamp.openEngine(entry);
  if (!run.settings.listOnly) await writePhases(run, engine, 'engine');
  const loaded = engine;
  await run.phase('load', () => loadRows(loaded, { container: 'list', count: run.settings.rows, batchRows: 250, inFlight: 8 }));
  await run.phase('checkpoint-compact', async () => {
    await loaded.checkpoint();
    await loaded.compact();
    return loaded.stats();
  });
  await engine.close();
  for (const concurrency of run.settings.listOnly ? [] : [1, 16]) {
    engine = await stamp.openEngine(entry);
    await coldReadPhase(run, engine, 'engine', concurrency);
    await engine.close();
  }
  engine = await stamp.openEngine(entry);
  await listPhase(run, engine, 'engine', false);
  if (!run.settings.listOnly) await warmReadPhases(run, engine, 'engine');
  run.figures['engine-stats'] = engine.stats();
  await engine.close();
}

/** The front end's path: the server loads the partition, then the same workloads through the client. */
async function serverPhases(run: Run, stamp: BenchStamp): Promise<void> {
  const { client } = await run.phase('server-load', async () => {
    const started = await stamp.startServer();
    return { client: started.client, loadMs: started.loadMs };
  });
  if (!run.settings.listOnly) await coldReadPhase(run, client, 'server', 1);
  await listPhase(run, client, 'server', false);
  await listPhase(run, client, 'server', true);
  if (run.settings.listOnly) {
    // Repeats (phases server-list#2, …): the least CPU of several is the steadier A/B figure on a shared machine.
    for (let repeat = 2; repeat <= listOnlyRepeats; repeat++) await listPhase(run, client, 'server', false, `#${repeat}`);
    return;
  }
  await warmReadPhases(run, client, 'server');
  await writePhases(run, client, 'server');
}

function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

function mib(bytes: number): string {
  return (bytes / (1024 * 1024)).toFixed(0);
}

function printTable(run: Run): void {
  const rows = run.phases.map((phase) => {
    const figure = run.figures[phase.phase];
    const row: Record<string, string | number> = { phase: phase.phase, seconds: phase.seconds.toFixed(1), 'cpu s': phase.cpuSeconds.toFixed(1) };
    if (isThroughput(figure)) Object.assign(row, { 'ops/s': Math.round(figure.opsPerSecond), 'p50 ms': figure.latency.p50Ms.toFixed(3), 'p99 ms': figure.latency.p99Ms.toFixed(3) });
    if (isList(figure)) Object.assign(row, { 'rows/s': Math.round(figure.rowsPerSecond), 'p50 ms': figure.page.p50Ms.toFixed(1), 'p99 ms': figure.page.p99Ms.toFixed(1) });
    return { ...row, 'peak RSS MiB': mib(phase.peakRssBytes), 'peak heap MiB': mib(phase.peakHeapUsedBytes), 'peak external MiB': mib(phase.peakExternalBytes) };
  });
  console.table(rows);
}

function isThroughput(value: unknown): value is ThroughputResult {
  return typeof value === 'object' && value !== null && 'opsPerSecond' in value;
}

function isList(value: unknown): value is ListResult {
  return typeof value === 'object' && value !== null && 'rowsPerSecond' in value && 'pages' in value;
}

function memoryBound(settings: Settings): Record<string, number | string> {
  const limits = defaultPartitionLimits;
  return {
    memtableBytesMax: limits.memtableBytesMax,
    memtablesHeldMax: 2,
    rowCacheEntriesMax: limits.rowCacheEntriesMax,
    blockCacheBytesMax: settings.blockCacheBytes ?? limits.blockCacheBytesMax,
    scanBlockCacheBytesMax: limits.scanBlockCacheBytesMax,
    extentReadCacheBytes: settings.readCacheBytes ?? extentReadCacheBytes,
    note: 'per partition: active + frozen memtable (encoded bytes, each ≤ memtableBytesMax), row cache (entries), block cache and scan block cache (encoded bytes); plus per run an index entry per block and a bloom filter of 10 bits per key (the only parts that grow with the table); the process also holds 3 extent nodes, the stream manager and the metastore',
  };
}

async function main(): Promise<void> {
  const settings = parseSettings();
  const run = new Run(settings);
  const stamp = await BenchStamp.start({
    limits: settings.blockCacheBytes === null ? {} : { blockCacheBytesMax: settings.blockCacheBytes },
    ...(settings.readCacheBytes === null ? {} : { readCacheBytes: settings.readCacheBytes }),
  });
  run.memory.start();
  try {
    const entry = await stamp.bootstrapMap();
    await enginePhases(run, stamp, entry);
    await serverPhases(run, stamp);
  } finally {
    run.memory.stop();
    await stamp.close();
  }
  printTable(run);
  const report = {
    benchmark: 'partition', profile: settings.profile, commit: gitCommit(), date: new Date().toISOString(),
    machine: { cores: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', memoryBytes: totalmem(), kernel: release(), node: process.version, loadAverage: loadavg() },
    setup: { stamp: stampDescription, rows: settings.rows, listOnly: settings.listOnly, rowBytes: typicalRowBytes(), pageRows, hotRows, durationMs: settings.durationMs, operationsMax: settings.operationsMax, coldReadsMax: settings.coldReadsMax },
    memoryBound: memoryBound(settings), phases: run.phases, figures: run.figures, endRssBytes: process.memoryUsage().rss,
  };
  await mkdir('bench/results', { recursive: true });
  const path = `bench/results/partition-${settings.listOnly ? 'list' : settings.profile}-${report.date.slice(0, 19).replaceAll(':', '-')}.json`;
  await writeFile(path, JSON.stringify(report, null, 2) + '\n');
  console.log(`saved ${path}`);
}

await main();
