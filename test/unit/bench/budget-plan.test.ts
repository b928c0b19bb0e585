// The blob run's budget planner (bench/blob/budget-plan.ts): durations in, plan out. Goal cells of
// every peer are reserved before anything else, the rest fills in priority order, a workload
// that does not fit is never planned and says why, and the estimates follow the profile's bounds.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { estimateWorkloadMs, planBudget, planWorkloads, priorCosts, workloadPriority, correctionFactor, type PlanPeer } from '../../../bench/blob/budget-plan.ts';
import { blobProfiles } from '../../../bench/blob/profiles.ts';
import { specLabel, workloadSpecs } from '../../../bench/blob/workloads.ts';
import { clusterWorkloads } from '../../../bench/blob/cluster-peer.ts';

const w = (peer: string, label: string, priority: number, estimateMs: number, excluded?: string) => ({ peer, label, priority, estimateMs, ...(excluded === undefined ? {} : { excluded }) });

describe('budget planner', () => {
  it('reserves every peer\'s goal cells before any other workload, then fills in priority order', () => {
    const peers: PlanPeer[] = [
      { name: 'a', startMs: 1_000, workloads: [w('a', 'goal', 0, 10_000), w('a', 'list', 2, 60_000), w('a', 'matrix', 1, 5_000)] },
      { name: 'b', startMs: 1_000, workloads: [w('b', 'goal', 0, 10_000), w('b', 'matrix', 1, 5_000)] },
    ];
    const plan = planBudget(peers, 33_000);
    const runs = Object.fromEntries(plan.decisions.map((d) => [`${d.peer}/${d.label}`, d.run]));
    // 2 starts + 2 goals = 22 s; then priority 1: a/matrix, b/matrix = 32 s; a/list does not fit.
    assert.deepEqual(runs, { 'a/goal': true, 'a/list': false, 'a/matrix': true, 'b/goal': true, 'b/matrix': true });
    assert.equal(plan.plannedMs, 32_000);
    assert.match(plan.decisions[1]?.reason ?? '', /needs ~60 s, 1 s left/);
    // Decisions come back in run order.
    assert.deepEqual(plan.decisions.map((d) => `${d.peer}/${d.label}`), ['a/goal', 'a/list', 'a/matrix', 'b/goal', 'b/matrix']);
  });

  it('keeps a later peer\'s goal cells even when an earlier peer\'s long workload would fill the budget', () => {
    const peers: PlanPeer[] = [
      { name: 'first', startMs: 0, workloads: [w('first', 'goal', 0, 5_000), w('first', 'list', 2, 100_000)] },
      { name: 'last', startMs: 0, workloads: [w('last', 'goal', 0, 5_000)] },
    ];
    const plan = planBudget(peers, 100_000);
    assert.deepEqual(plan.decisions.map((d) => d.run), [true, false, true]);
  });

  it('never plans more than the budget, charges a peer\'s start once and only if something of it runs', () => {
    const peers: PlanPeer[] = [{ name: 'slow', startMs: 20_000, workloads: [w('slow', 'goal', 0, 5_000), w('slow', 'goal2', 0, 5_000)] }];
    assert.deepEqual(planBudget(peers, 24_999).decisions.map((d) => d.run), [false, false]);
    const two = planBudget(peers, 30_000);
    assert.deepEqual(two.decisions.map((d) => d.run), [true, true]);
    assert.equal(two.plannedMs, 30_000);
    // A smaller, lower-priority workload may still fit after a larger one did not.
    const fill = planBudget([{ name: 'p', startMs: 0, workloads: [w('p', 'big', 1, 50_000), w('p', 'small', 2, 5_000)] }], 10_000);
    assert.deepEqual(fill.decisions.map((d) => d.run), [false, true]);
  });

  it('reports a workload left out by policy with its reason, whatever the budget', () => {
    const plan = planBudget([{ name: 'p', startMs: 0, workloads: [w('p', 'list', 2, 1, 'not listed by policy')] }], 1e9);
    assert.deepEqual(plan.decisions.map((d) => [d.run, d.reason]), [[false, 'not listed by policy']]);
  });

  it('estimates from the profile\'s bounds: a write pays its restart and read-back, a listing its population', () => {
    const full = blobProfiles.full;
    const kura = priorCosts('kura-1disk', true);
    const memory = priorCosts('azurite-memory', false);
    const put = { kind: 'put', client: 'sdk', sizeBytes: 64 * 1024, concurrency: 16 } as const;
    const putMatrix = { ...put, concurrency: 1 } as const;
    // Goal cells run the full loop, the rest of the matrix the shorter one.
    assert.ok(estimateWorkloadMs(put, full, kura) - estimateWorkloadMs(putMatrix, full, kura) > (full.durationMs - full.matrixDurationMs));
    // A durable peer's write pays its kill -9 restart; a volatile one's does not.
    assert.ok(estimateWorkloadMs(put, full, kura) >= full.durationMs + kura.restartMs);
    assert.ok(estimateWorkloadMs(put, full, memory) < full.durationMs + 1_000);
    // 100,000 blobs at 1,000 Put Blobs/s: at least 100 s of population before the listing.
    const list = estimateWorkloadMs({ kind: 'list' }, full, kura);
    assert.ok(list >= 100_000 + kura.restartMs + (full.listBlobCount / kura.listBlobsPerSecond) * 1000, `list ${list}`);
    assert.ok(estimateWorkloadMs({ kind: 'list' }, full, { ...kura, smallPutsPerSecond: 2_000 }) < list);
    // The population is bounded by listPopulateMs.
    assert.ok(estimateWorkloadMs({ kind: 'list' }, full, { ...kura, smallPutsPerSecond: 1 }) <= full.listPopulateMs + 200_000);
  });

  it('orders each peer\'s workloads goal cells first and lists only on the peers the profile names', () => {
    const full = blobProfiles.full;
    const specs = workloadSpecs(full);
    const planned = planWorkloads('azurite-memory', specs, full, priorCosts('azurite-memory', false), (spec) => specLabel(spec, full));
    assert.equal(planned.length, specs.length);
    const priorities = planned.map((entry) => entry.workload.priority);
    assert.deepEqual(priorities, [...priorities].sort((a, b) => a - b));
    assert.equal(planned.filter((entry) => entry.workload.priority === 0).length, 8);
    assert.match(planned.find((entry) => entry.spec.kind === 'list')?.workload.excluded ?? '', /policy/);
    const kura = planWorkloads('kura-1disk', specs, full, priorCosts('kura-1disk', true), (spec) => specLabel(spec, full));
    assert.equal(kura.find((entry) => entry.spec.kind === 'list')?.workload.excluded, undefined);
    // On a durable peer the first Get after a write waits for a restarted server's warm-up; the next Gets do not.
    const gets = kura.filter((entry) => entry.spec.kind === 'get');
    assert.equal(gets[0]?.afterRestart, true);
    assert.equal(gets[1]?.afterRestart, false);
    assert.ok((gets[0]?.workload.estimateMs ?? 0) - (gets[1]?.workload.estimateMs ?? 0) >= full.getWarmUpAfterRestartMs);
    assert.ok(planned.every((entry) => !entry.afterRestart));
    assert.equal(workloadPriority('kura-cluster-1fe', { kind: 'put', client: 'sdk', sizeBytes: 65536, concurrency: 16 }), 0);
    assert.ok(workloadPriority('azurite-disk', { kind: 'list' }) > workloadPriority('kura-3disk', { kind: 'mixed' }));
  });

  it('the full profile\'s planned time from its priors fits its budget with every goal cell of all seven peers', () => {
    const full = blobProfiles.full;
    const names = ['kura-1disk', 'azurite-disk', 'null-server', 'kura-3disk', 'kura-cluster-1fe', 'kura-cluster-2fe', 'azurite-memory'];
    const peers: PlanPeer[] = names.map((name) => {
      const costs = priorCosts(name, !name.startsWith('azurite-memory') && name !== 'null-server');
      const specs = name.startsWith('kura-cluster') ? workloadSpecs(full).filter(clusterWorkloads) : workloadSpecs(full);
      return { name, startMs: costs.startMs, workloads: planWorkloads(name, specs, full, costs, (spec) => specLabel(spec, full)).map((entry) => entry.workload) };
    });
    const plan = planBudget(peers, full.runBudgetMs);
    assert.ok(plan.plannedMs <= full.runBudgetMs);
    assert.ok(plan.decisions.filter((d) => d.priority === 0).every((d) => d.run));
    assert.ok(plan.decisions.some((d) => d.peer === 'null-server' && d.label === 'list 100000 blobs' && d.run));
  });

  it('corrects later estimates by how a peer\'s earlier ones compared, within [0.5, 3]', () => {
    assert.equal(correctionFactor(0, 0), 1);
    assert.equal(correctionFactor(15_000, 10_000), 1.5);
    assert.equal(correctionFactor(100_000, 10_000), 3);
    assert.equal(correctionFactor(1_000, 10_000), 0.5);
  });
});
