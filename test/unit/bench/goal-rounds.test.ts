// The goal rounds' pure parts (bench/blob/goal-rounds.ts) and the verdicts goals.ts draws from
// them: the rotated order of a round, the median and min-max of the rounds' ratios, each round's
// ratio taken within the round only, the ceiling per round, latency from the median round, "0
// lost" from the peer's own kill -9 checked row, and the planner's view of the rounds.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { allPeers, dryRunPlan } from '../../../bench/blob/blob-bench.ts';
import { evaluateGoals, goalRows, type RatedResult } from '../../../bench/blob/goals.ts';
import { idleCpuRows, rateRoundCells, roundOrder, roundsPlanPeer, roundTableRows, roundWorkloads, spread, spreadText, type RoundCell } from '../../../bench/blob/goal-rounds.ts';
import type { MachineLimits } from '../../../bench/blob/limits.ts';
import { blobProfiles } from '../../../bench/blob/profiles.ts';
import { computeRatios } from '../../../bench/blob/ratios.ts';
import type { DurabilityResult, WorkloadResult } from '../../../bench/blob/results.ts';
import { workloadSpecs } from '../../../bench/blob/workloads.ts';

const noLimits: MachineLimits = { fsyncAppend: [], sequentialRead: [] };
const put64 = 'put 64 KiB ×16';

function result(peer: string, opsPerSecond: number, options: { kind?: 'put' | 'get'; p99Ms?: number; durability?: DurabilityResult | null } = {}): WorkloadResult {
  const kind = options.kind ?? 'put';
  const p99Ms = options.p99Ms ?? 5;
  return {
    peer, workload: kind === 'put' ? put64 : 'get 64 KiB ×16', kind, client: 'sdk', sizeBytes: 65536, concurrency: 16, errors: 0, itemsPerSecond: null,
    throughput: { operations: opsPerSecond, bytes: 0, seconds: 1, opsPerSecond, mibPerSecond: opsPerSecond / 16, latency: { count: 1, minMs: 1, meanMs: 1, p50Ms: 1, p99Ms, p999Ms: p99Ms, maxMs: p99Ms } },
    server: { cpuSeconds: opsPerSecond / 1000, cpuSecondsPerOperation: 0.001, peakRssBytes: 0 },
    durability: options.durability ?? null,
  };
}

function cell(peer: string, opsPerSecond: number, round: number, position: number, options: { kind?: 'put' | 'get'; p99Ms?: number } = {}): RoundCell {
  return { ...result(peer, opsPerSecond, options), round, position, othersCpuMsPerSecond: { other: round }, loadAverage1m: { atStart: 2 + round, atEnd: 3 } };
}

function rated(rows: readonly WorkloadResult[]): RatedResult[] {
  return rows.map((row) => ({ ...row, ratios: computeRatios(row, rows, noLimits, 8 << 20) }));
}

describe('goal rounds', () => {
  it('rotates the order every round so that no peer always goes first', () => {
    const orders = [0, 1, 2, 3, 4].map((round) => roundOrder(['A', 'B', 'C'], round).join(''));
    console.log(`  orders of 5 rounds: ${orders.join(' ')}`);
    assert.deepEqual(orders, ['ABC', 'CAB', 'BCA', 'ABC', 'CAB']);
    assert.deepEqual([0, 1, 2].map((round) => roundOrder(['K', 'N'], round).join('')), ['KN', 'NK', 'KN']);
    assert.deepEqual(roundOrder([], 3), []);
  });

  it('gives the median (middle two averaged for an even count) and min-max of the rounds', () => {
    assert.deepEqual(spread([3, 1, 2]), { median: 2, min: 1, max: 3, count: 3 });
    assert.deepEqual(spread([4, 1, 3, 2]), { median: 2.5, min: 1, max: 4, count: 4 });
    assert.equal(spread([]), null);
    assert.equal(spreadText({ median: 1.8423, min: 1.6, max: 2.1, count: 5 }), '1.84 (1.60-2.10, 5 rounds)');
  });

  it('runs the goal workloads over the peers each goal needs, and none without kura-1disk', () => {
    const all = roundWorkloads(workloadSpecs(blobProfiles.quick), ['kura-1disk', 'azurite-disk', 'null-server', 'kura-3disk']);
    assert.equal(all.length, 8);
    assert.deepEqual(all.find((workload) => workload.spec.kind === 'put')?.peers, ['kura-1disk', 'azurite-disk', 'null-server']);
    assert.deepEqual(all.find((workload) => workload.spec.kind === 'get')?.peers, ['kura-1disk', 'null-server']);
    assert.deepEqual(all.find((workload) => workload.spec.kind === 'big')?.peers, ['kura-1disk', 'null-server']);
    assert.equal(roundWorkloads(workloadSpecs(blobProfiles.quick), ['azurite-disk', 'null-server']).length, 0);
    // Get and the large blob need the null server: with Kura and Azurite only, the Puts remain.
    assert.deepEqual(roundWorkloads(workloadSpecs(blobProfiles.quick), ['kura-1disk', 'azurite-disk']).map((workload) => workload.spec.kind), ['put', 'put', 'put', 'put']);
  });

  it('divides cells of the same round only, and judges the goal on the median round', () => {
    // Round 1 ran on a slow machine for everyone: its cells are a third of the others'.
    const cells = [
      cell('kura-1disk', 1000, 0, 0), cell('azurite-disk', 400, 0, 1), cell('null-server', 1500, 0, 2),
      cell('null-server', 500, 1, 0), cell('kura-1disk', 300, 1, 1), cell('azurite-disk', 100, 1, 2),
      cell('azurite-disk', 500, 2, 0), cell('null-server', 1600, 2, 1), cell('kura-1disk', 1100, 2, 2),
    ];
    const rounds = rateRoundCells(cells, noLimits, 8 << 20);
    assert.deepEqual(rounds.filter((one) => one.peer === 'kura-1disk').map((one) => one.ratios.kuraToAzurite), [2.5, 3, 2.2]);
    // The peers' own rows (one cell each, minutes apart): 1,000 ÷ 100 = 10× would be the old verdict.
    const own = rated([result('kura-1disk', 1000, { durability: { kind: 'checked', acknowledged: 10, missing: 0, different: 0, unreadable: 0, method: 'read-back', restartMs: 1 } }), result('azurite-disk', 100), result('null-server', 1500)]);
    assert.equal(evaluateGoals(own)[0]?.ratio, 10);
    const [verdict] = evaluateGoals(own, rounds);
    console.log(`  single cells 10×; rounds ${verdict?.rounds?.ratios.join(', ')} → ${verdict?.ratio}`);
    assert.equal(verdict?.ratio, 2.5);
    assert.deepEqual(verdict?.rounds?.ratio, { median: 2.5, min: 2.2, max: 3, count: 3 });
    assert.deepEqual(verdict?.rounds?.ceilingRatios, [3.75, 5, 3.2]);
    assert.equal(verdict?.ceiling?.ratio, 3.75);
    assert.deepEqual(verdict?.rounds?.loadAverages1m, [2, 3, 4]);
    assert.equal(verdict?.met, false);
    assert.equal(verdict?.reachable, false, 'the null server\'s median 3.75 misses 4× too');
    const row = goalRows([verdict])[0];
    assert.equal(row?.measured, '2.50 (2.20-3.00, 3 rounds) ops/s ÷ azurite-disk');
    assert.equal(row?.['null server (ceiling)'], '3.75 (3.20-5.00, 3 rounds)');
    assert.equal(row?.conditions, 'lost after kill -9 0/10', 'the loss figure is the peer\'s own kill -9 checked row');
  });

  it('reads the latency conditions from the round with the median p99, for Kura and for the ceiling', () => {
    const get = (peer: string, round: number, p99Ms: number): RoundCell => cell(peer, 1000, round, peer === 'kura-1disk' ? 0 : 1, { kind: 'get', p99Ms });
    const rounds = rateRoundCells([get('kura-1disk', 0, 40), get('null-server', 0, 9), get('kura-1disk', 1, 12), get('null-server', 1, 30), get('kura-1disk', 2, 14), get('null-server', 2, 10)], noLimits, 8 << 20);
    const own = rated([result('kura-1disk', 500, { kind: 'get', p99Ms: 99 }), result('null-server', 1000, { kind: 'get' })]);
    const [verdict] = evaluateGoals(own, rounds);
    assert.equal(verdict?.ratio, 1);
    assert.equal(verdict?.conditions.map((condition) => condition.text).join(), 'p99 14.0 ms ≤ 15 ms');
    assert.equal(verdict?.met, true);
    assert.equal(verdict?.ceiling?.conditions.map((condition) => condition.text).join(), 'p99 10.0 ms ≤ 15 ms');
  });

  it('prints a row per workload and round, and each idle peer\'s CPU while another ran', () => {
    const cells = [cell('kura-1disk', 1000, 0, 1), cell('azurite-disk', 400, 0, 0), cell('kura-1disk', 900, 1, 0)];
    const rows = roundTableRows(cells);
    assert.equal(rows.length, 2);
    assert.equal(rows[0]?.order, 'azurite-disk → kura-1disk');
    assert.equal(rows[0]?.['load 1m'], '2.0');
    assert.match(String(rows[0]?.['kura-1disk']), /1,?000 ops\/s, 1\.00 ms CPU\/op/);
    assert.deepEqual(idleCpuRows(cells, { 'kura-1disk': 0.4, other: 2 }), [
      { 'idle peer': 'kura-1disk', 'CPU ms/s idle before the rounds': '0.4', 'while another peer ran: median': '', max: '', cells: 0 },
      { 'idle peer': 'other', 'CPU ms/s idle before the rounds': '2.0', 'while another peer ran: median': '0.0', max: '1.0', cells: 3 },
    ]);
  });

  it('plans the rounds as priority-0 work: rounds × the peers\' cells, each peer started once', () => {
    const workloads = roundWorkloads(workloadSpecs(blobProfiles.quick), ['kura-1disk', 'azurite-disk', 'null-server']);
    const plan = roundsPlanPeer(workloads, blobProfiles.quick);
    assert.equal(plan.workloads.length, 8);
    assert.ok(plan.workloads.every((workload) => workload.priority === 0));
    assert.ok(plan.startMs > 0);
    assert.match(plan.workloads[0]?.label ?? '', /×3 rounds: kura-1disk, azurite-disk, null-server/);
    const started = roundsPlanPeer(workloads, blobProfiles.quick, { fromWorkload: 6, started: true, factor: 2 });
    assert.equal(started.startMs, 0);
    assert.equal(started.workloads.length, 2);
    assert.equal(started.workloads[0]?.estimateMs, 2 * (plan.workloads[6]?.estimateMs ?? 0));
    const total = plan.workloads.reduce((sum, workload) => sum + workload.estimateMs, plan.startMs);
    console.log(`  quick rounds planned from the priors: ${(total / 1000).toFixed(0)} s`);
  });

  it('fits the rounds in both profiles\' budgets: every goal cell and round of the full profile\'s seven peers, the quick one\'s three goal peers', () => {
    const full = dryRunPlan(blobProfiles.full, Object.keys(allPeers));
    const fullRounds = full.decisions.filter((decision) => decision.peer === 'goal rounds');
    assert.equal(fullRounds.length, 8);
    assert.ok(full.decisions.filter((decision) => decision.priority === 0).every((decision) => decision.run));
    assert.ok(full.plannedMs <= full.budgetMs);
    const quick = dryRunPlan(blobProfiles.quick, ['kura-1disk', 'azurite-disk', 'null-server']);
    assert.ok(quick.decisions.filter((decision) => decision.priority === 0).every((decision) => decision.run));
    // The rounds run right after the last goal peer's own run: here the null server's, after kura-3disk's.
    const order = dryRunPlan(blobProfiles.quick, ['kura-1disk', 'kura-3disk', 'null-server']).decisions.map((decision) => decision.peer);
    assert.deepEqual([...new Set(order)], ['kura-1disk', 'kura-3disk', 'null-server', 'goal rounds']);
    const seconds = (decisions: typeof full.decisions): number => Math.round(decisions.reduce((sum, decision) => sum + decision.estimateMs, 0) / 1000);
    console.log(`  planned: full ${Math.round(full.plannedMs / 1000)} s (rounds ${seconds(fullRounds)} s), quick with 3 goal peers ${Math.round(quick.plannedMs / 1000)} s`);
  });
});
