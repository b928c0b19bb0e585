// `npm run sim`: runs the stamp simulator (docs/simulation.md) for one seed, N seeds, or as many
// as fit in M minutes, shows progress, prints the figures, and for every failing seed the
// command that replays it.
//
//   npm run sim -- --seed 1234           one run (verbose: its violations and trace tail)
//   npm run sim -- --seeds 50 [--root R] 50 runs, seeds derived from a root seed (printed first)
//   npm run sim -- --minutes 10          runs until 10 real minutes have passed
//   options: --ops N (writer operations per run), --intensity X (0: no faults), --stamp-power-loss P
//   (chance per phase of a whole-stamp power loss; canary runs raise it), --json
import { Command } from 'commander';
import { failpointNames, failpointsTotal } from '../src/util/failpoints.ts';
import { deriveSeed } from './stamp.ts';
import { defaultSimOptions, runSimulation } from './simulation.ts';
import type { SimOptions, SimResult } from './simulation.ts';

interface CliOptions {
  readonly seed?: string;
  readonly seeds?: string;
  readonly minutes?: string;
  readonly root?: string;
  readonly ops?: string;
  readonly intensity?: string;
  readonly stampPowerLoss?: string;
  readonly json?: boolean;
}

export interface SimTotals {
  runs: number;
  failedSeeds: bigint[];
  realMs: number;
  virtualMs: number;
  acknowledged: number;
  acknowledgedChecked: number;
  indeterminate: number;
  readsChecked: number;
  violations: number;
  faults: Record<string, number>;
  diskFaults: Record<string, number>;
  networkFaults: Record<string, number>;
  failpointHits: Record<string, number>;
  sealedExtentsCompared: number;
  ownership: Record<string, number>;
  blobRuns: number;
  blobOps: Record<string, number>;
  /** Front-end figures of the blob runs: requests lost to a crash, dead rows found and swept at the end. */
  frontend: Record<string, number>;
}

export function emptyTotals(): SimTotals {
  return {
    runs: 0, failedSeeds: [], realMs: 0, virtualMs: 0, acknowledged: 0, acknowledgedChecked: 0, indeterminate: 0, readsChecked: 0, violations: 0, faults: {}, diskFaults: {},
    networkFaults: {}, failpointHits: {}, sealedExtentsCompared: 0, ownership: {}, blobRuns: 0, blobOps: {}, frontend: {},
  };
}

function add(into: Record<string, number>, from: Readonly<Record<string, number>>): void {
  for (const [key, value] of Object.entries(from)) into[key] = (into[key] ?? 0) + value;
}

export function accumulate(totals: SimTotals, result: SimResult): void {
  totals.runs += 1;
  if (!result.ok) totals.failedSeeds.push(result.seed);
  totals.realMs += result.realMs;
  totals.virtualMs += result.virtualMs;
  totals.acknowledged += result.acknowledged;
  totals.acknowledgedChecked += result.checks.acknowledgedWritesChecked;
  totals.indeterminate += result.indeterminate;
  totals.readsChecked += (result.workload?.readsChecked ?? 0) + (result.blobWorkload?.readsChecked ?? 0);
  if (result.blobWorkload !== null) totals.blobRuns += 1;
  add(totals.blobOps, result.blobWorkload?.opsByKind ?? {});
  const blob = result.blobWorkload;
  if (blob !== null) add(totals.frontend, { requestsLost: blob.requestsLost, deadRowsFound: blob.deadRowsFound, blobsSwept: blob.blobsSwept, bigLists: blob.bigLists, intentsWritten: blob.intentsWritten, intentsFoundAtEnd: blob.intentsFound, intentsResolvedLive: blob.intentsResolvedLive });
  totals.violations += result.violations.length;
  totals.sealedExtentsCompared += result.checks.sealedExtentsCompared;
  add(totals.faults, result.faults);
  add(totals.diskFaults, { ...result.diskFaults, misdirectedWrites: result.misdirectedWrites });
  add(totals.networkFaults, result.networkFaults);
  add(totals.failpointHits, result.failpointHits);
  add(totals.ownership, { ...result.ownership });
}

export function replayCommand(seed: bigint): string {
  return `npm run sim -- --seed ${seed}`;
}

export function formatFigures(totals: SimTotals): string {
  const minutes = totals.realMs / 60_000;
  const hit = failpointNames.filter((name) => (totals.failpointHits[name] ?? 0) > 0);
  const nonZero = (record: Record<string, number>): string => {
    const text = Object.entries(record).filter(([, v]) => v > 0).map(([k, v]) => `${k}=${v}`).join(' ');
    return text === '' ? 'none' : text;
  };
  const missed = failpointNames.filter((name) => !hit.includes(name)).join(', ');
  return [
    `runs: ${totals.runs} (${totals.failedSeeds.length} failed), ${(totals.runs / Math.max(minutes, 1e-9)).toFixed(1)} simulated runs per minute`,
    `simulated time: ${(totals.virtualMs / 3_600_000).toFixed(2)} h in ${(totals.realMs / 1000).toFixed(1)} s real = ${(totals.virtualMs / Math.max(totals.realMs, 1)).toFixed(0)} simulated hours per real hour`,
    `writes: ${totals.acknowledged} acknowledged, ${totals.acknowledgedChecked} acknowledged writes checked, ${totals.indeterminate} indeterminate; ${totals.readsChecked} reads checked; ${totals.sealedExtentsCompared} sealed extents compared replica by replica`,
    `partition layer: ${nonZero(totals.ownership)}`,
    `blob operations (PartitionBlobBackend, ${totals.blobRuns} runs): ${nonZero(totals.blobOps)}`,
    `front end (blob runs): ${nonZero(totals.frontend)}`,
    `faults injected: ${nonZero(totals.faults)}`,
    `disk faults (SimDisk + misdirected): ${nonZero(totals.diskFaults)}`,
    `network faults (messages): ${nonZero(totals.networkFaults)}`,
    `failpoints hit / total: ${hit.length} / ${failpointsTotal()} (${missed === '' ? 'all hit' : `not hit: ${missed}`})`,
    `violations found: ${totals.violations}`,
  ].join('\n');
}

/** The run's work (timers fired, its bound's unit) and where its real time went, per stage. */
export function workFigures(result: SimResult): string {
  const stages = Object.entries(result.stageRealMs).map(([stage, ms]) => `${stage} ${(ms / 1000).toFixed(1)} s`).join(', ');
  return `${result.timersFired.toLocaleString('en')} timers fired (${(result.realMs / Math.max(1, result.timersFired / 1000)).toFixed(2)} ms real per 1,000); ${stages}`;
}

function printRun(result: SimResult, verbose: boolean): void {
  const status = result.ok ? 'ok  ' : 'FAIL';
  process.stderr.write(`${status} seed ${result.seed}: ${result.acknowledged} acked, ${result.indeterminate} indeterminate, ${result.phases} phases, ${(result.virtualMs / 1000).toFixed(0)} s simulated in ${(result.realMs / 1000).toFixed(1)} s; ${workFigures(result)}\n`);
  if (result.ok) return;
  for (const violation of result.violations.slice(0, verbose ? 50 : 5)) process.stderr.write(`     ${violation}\n`);
  if (verbose) process.stderr.write(`     trace tail:\n${result.recentTrace.slice(-60).map((line) => `       ${line}`).join('\n')}\n`);
  process.stderr.write(`     replay: ${replayCommand(result.seed)}\n`);
}

function simOptions(cli: CliOptions): SimOptions {
  const ops = cli.ops === undefined ? defaultSimOptions.workload.opsMax : Number(cli.ops);
  const intensity = cli.intensity === undefined ? defaultSimOptions.intensity : Number(cli.intensity);
  const stampPowerLossRate = cli.stampPowerLoss === undefined ? defaultSimOptions.stampPowerLossRate : Number(cli.stampPowerLoss);
  if (!Number.isSafeInteger(ops) || ops < 1 || !(intensity >= 0 && intensity <= 1) || !(stampPowerLossRate >= 0 && stampPowerLossRate <= 1)) {
    throw new Error('--ops must be a positive integer, --intensity and --stamp-power-loss in [0, 1]');
  }
  return { ...defaultSimOptions, intensity, stampPowerLossRate, workload: { ...defaultSimOptions.workload, opsMax: ops } };
}

async function main(): Promise<void> {
  const cli = new Command('sim').option('--seed <seed>').option('--seeds <count>').option('--minutes <minutes>').option('--root <seed>').option('--ops <count>')
    .option('--intensity <x>').option('--stamp-power-loss <p>').option('--json').parse().opts<CliOptions>();
  const options = simOptions(cli);
  const root = BigInt(cli.root ?? cli.seed ?? String(Date.now()));
  process.stderr.write(`root seed ${root}\n`);
  const single = cli.seed !== undefined;
  const count = single ? 1 : cli.seeds === undefined ? Number.MAX_SAFE_INTEGER : Number(cli.seeds);
  const deadlineMs = cli.minutes === undefined ? Number.POSITIVE_INFINITY : performance.now() + Number(cli.minutes) * 60_000;
  if (cli.seeds === undefined && cli.minutes === undefined && !single) throw new Error('give --seed, --seeds or --minutes');
  const totals = emptyTotals();
  const started = performance.now();
  for (let index = 0; index < count && performance.now() < deadlineMs; index++) {
    const seed = single ? root : deriveSeed(root, `run:${index}`) % 1_000_000_000_000n;
    if (!single) process.stderr.write(`[${index + 1}${Number.isFinite(count) && count !== Number.MAX_SAFE_INTEGER ? `/${count}` : ''}] `);
    const result = await runSimulation(seed, options);
    accumulate(totals, result);
    printRun(result, single);
  }
  totals.realMs = performance.now() - started;
  process.stdout.write(`${cli.json === true ? JSON.stringify(totals, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) : formatFigures(totals)}\n`);
  if (totals.failedSeeds.length > 0) {
    process.stdout.write(`failing seeds (root ${root}):\n${totals.failedSeeds.map((seed) => `  ${replayCommand(seed)}`).join('\n')}\n`);
    process.exitCode = 1;
  }
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) await main();
