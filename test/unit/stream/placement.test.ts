// Placement rules (docs/stream-protocol.md, "Placement") as properties over random clusters:
// distinct fault and upgrade domains, the largest possible count, least loaded first, the
// shortfall reported, and the same seed giving the same answer.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { maximumPlacement, placeReplicas, type PlacementCandidate } from '../../../src/stream/placement.ts';
import { SeededRandom } from '../../../src/util/random.ts';

const runs = 300;

const clusterArbitrary = fc
  .array(
    fc.record({
      faultDomain: fc.integer({ min: 0, max: 4 }).map((n) => `fd${n}`),
      upgradeDomain: fc.integer({ min: 0, max: 4 }).map((n) => `ud${n}`),
      load: fc.integer({ min: 0, max: 6 }),
    }),
    { minLength: 0, maxLength: 9 },
  )
  .map((rows) => rows.map((row, index): PlacementCandidate => ({ nodeId: `n${index}`, ...row })));

const requestArbitrary = fc.record({
  candidates: clusterArbitrary,
  replicaCount: fc.integer({ min: 1, max: 5 }),
  seed: fc.integer({ min: 0, max: 2 ** 31 }),
  takenFaultDomains: fc.subarray(['fd0', 'fd1', 'fd2', 'fd3', 'fd4'], { maxLength: 2 }),
  takenUpgradeDomains: fc.subarray(['ud0', 'ud1', 'ud2', 'ud3', 'ud4'], { maxLength: 2 }),
});

function isValid(set: readonly PlacementCandidate[], taken: { fault: readonly string[]; upgrade: readonly string[] }): boolean {
  const faults = new Set(taken.fault);
  const upgrades = new Set(taken.upgrade);
  for (const c of set) {
    if (faults.has(c.faultDomain) || upgrades.has(c.upgradeDomain)) return false;
    faults.add(c.faultDomain);
    upgrades.add(c.upgradeDomain);
  }
  return true;
}

/** Largest valid subset by brute force (n <= 9, so at most 512 subsets). */
function bruteForceMaximum(candidates: readonly PlacementCandidate[], taken: { fault: readonly string[]; upgrade: readonly string[] }, cap: number): number {
  let best = 0;
  for (let mask = 0; mask < 1 << candidates.length; mask++) {
    const subset = candidates.filter((_, index) => (mask & (1 << index)) !== 0);
    if (subset.length > best && subset.length <= cap && isValid(subset, taken)) best = subset.length;
  }
  return best;
}

describe('placeReplicas', () => {
  it('never puts two replicas in one fault domain or one upgrade domain, nor in a taken one', () => {
    fc.assert(
      fc.property(requestArbitrary, (r) => {
        const result = placeReplicas(r, new SeededRandom(r.seed));
        const chosen = result.nodeIds.map((id) => r.candidates.find((c) => c.nodeId === id)!);
        assert.ok(isValid(chosen, { fault: r.takenFaultDomains, upgrade: r.takenUpgradeDomains }));
        assert.equal(new Set(result.nodeIds).size, result.nodeIds.length);
      }),
      { numRuns: runs },
    );
  });

  it('places as many as the domains allow and reports the shortfall', () => {
    fc.assert(
      fc.property(requestArbitrary, (r) => {
        const result = placeReplicas(r, new SeededRandom(r.seed));
        const taken = { fault: r.takenFaultDomains, upgrade: r.takenUpgradeDomains };
        const best = bruteForceMaximum(r.candidates, taken, r.replicaCount);
        assert.equal(result.nodeIds.length, best);
        assert.equal(result.shortfall, r.replicaCount - best);
      }),
      { numRuns: runs },
    );
  });

  it('prefers the least loaded: no chosen node can be swapped for a less loaded unchosen one', () => {
    fc.assert(
      fc.property(requestArbitrary, (r) => {
        const result = placeReplicas(r, new SeededRandom(r.seed));
        const taken = { fault: r.takenFaultDomains, upgrade: r.takenUpgradeDomains };
        const chosen = r.candidates.filter((c) => result.nodeIds.includes(c.nodeId));
        const unchosen = r.candidates.filter((c) => !result.nodeIds.includes(c.nodeId));
        for (const inside of chosen) {
          for (const outside of unchosen) {
            if (outside.load >= inside.load) continue;
            const swapped = [...chosen.filter((c) => c !== inside), outside];
            assert.ok(!isValid(swapped, taken), `${outside.nodeId} (load ${outside.load}) could replace ${inside.nodeId} (load ${inside.load})`);
          }
        }
      }),
      { numRuns: runs },
    );
  });

  it('gives the same placement for the same seed', () => {
    fc.assert(
      fc.property(requestArbitrary, (r) => {
        assert.deepEqual(placeReplicas(r, new SeededRandom(r.seed)), placeReplicas(r, new SeededRandom(r.seed)));
      }),
      { numRuns: 100 },
    );
  });

  it('does not take a greedy pick that strands a domain pair', () => {
    // a is least loaded but uses fd1 and ud1, which b and c each need: {b, c} is the only pair.
    const candidates: PlacementCandidate[] = [
      { nodeId: 'a', faultDomain: 'fd1', upgradeDomain: 'ud1', load: 0 },
      { nodeId: 'b', faultDomain: 'fd1', upgradeDomain: 'ud2', load: 5 },
      { nodeId: 'c', faultDomain: 'fd2', upgradeDomain: 'ud1', load: 5 },
    ];
    const result = placeReplicas({ candidates, replicaCount: 2 }, new SeededRandom(1));
    assert.deepEqual([...result.nodeIds].sort(), ['b', 'c']);
    assert.equal(result.shortfall, 0);
  });

  it('reports a single-domain stamp as a shortfall and an empty cluster as zero placed', (t) => {
    const single = [
      { nodeId: 'a', faultDomain: 'fd', upgradeDomain: 'ud', load: 1 },
      { nodeId: 'b', faultDomain: 'fd', upgradeDomain: 'ud', load: 0 },
    ];
    assert.deepEqual(placeReplicas({ candidates: single, replicaCount: 3 }, new SeededRandom(1)), { nodeIds: ['b'], shortfall: 2 });
    assert.deepEqual(placeReplicas({ candidates: [], replicaCount: 3 }, new SeededRandom(1)), { nodeIds: [], shortfall: 3 });
    assert.equal(maximumPlacement(single), 1);
    t.diagnostic(`property runs: ${runs} per property, clusters of up to 9 nodes in 5 fault x 5 upgrade domains`);
  });

  it('spreads ties across nodes by the injected random', (t) => {
    const candidates = Array.from({ length: 6 }, (_, i) => ({ nodeId: `n${i}`, faultDomain: `fd${i}`, upgradeDomain: `ud${i}`, load: 0 }));
    const counts = new Map<string, number>();
    const random = new SeededRandom(99);
    const trials = 600;
    for (let i = 0; i < trials; i++) {
      for (const id of placeReplicas({ candidates, replicaCount: 3 }, random).nodeIds) counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    for (const c of candidates) assert.ok((counts.get(c.nodeId) ?? 0) > trials / 4, `node ${c.nodeId} chosen ${counts.get(c.nodeId)} times`);
    t.diagnostic(`tie spread over ${trials} placements: ${[...counts.values()].join(', ')}`);
  });
});
