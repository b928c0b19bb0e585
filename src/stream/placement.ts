// Replica placement (docs/stream-protocol.md, "Placement"): which nodes get the replicas of an
// extent. Pure: the caller passes the eligible nodes (alive, in service, not failed) with their
// load; this module only chooses.
//
// Invariants of every result:
// - no two chosen nodes share a fault domain, and no two share an upgrade domain (also not with
//   the domains the caller says are already taken by surviving replicas);
// - the count is the largest possible under those rules, up to replicaCount: choosing is a
//   bipartite matching between fault domains and upgrade domains, so a greedy pick that would
//   strand a domain pair is skipped for one that keeps the maximum reachable;
// - among all placements of that size, the least loaded nodes win, in load order: a node is
//   passed over only if taking it would make the maximum unreachable (so no chosen node can be
//   swapped for a less loaded unchosen one without breaking a rule or the count);
// - ties in load are broken by the injected Random (shuffle, then a stable sort by load), so a
//   seed reproduces a placement.
//
// Fault model: none of its own; too few domains is reported as a shortfall, not an error. The
// caller turns "nothing eligible" into stream.no_placement.
import { assert } from '../util/assert.ts';
import type { Random } from '../util/random.ts';

export interface PlacementCandidate {
  readonly nodeId: string;
  readonly faultDomain: string;
  readonly upgradeDomain: string;
  /** Extents already on the node; fewer is better. */
  readonly load: number;
}

export interface PlacementRequest {
  readonly candidates: readonly PlacementCandidate[];
  readonly replicaCount: number;
  /** Domains held by replicas that stay (re-replication); the new ones must avoid them. */
  readonly takenFaultDomains?: readonly string[];
  readonly takenUpgradeDomains?: readonly string[];
  /** Nodes that must not be chosen (e.g. they already hold a replica). */
  readonly excludedNodeIds?: readonly string[];
}

export interface PlacementResult {
  /** Chosen node ids, least loaded first. */
  readonly nodeIds: readonly string[];
  /** replicaCount − nodeIds.length: replicas that could not be placed under the rules. */
  readonly shortfall: number;
}

/** Chooses up to replicaCount nodes in distinct fault and upgrade domains, least loaded first. */
export function placeReplicas(request: PlacementRequest, random: Random): PlacementResult {
  assert(Number.isInteger(request.replicaCount) && request.replicaCount >= 1, 'replicaCount must be a positive integer');
  const takenFault = new Set(request.takenFaultDomains ?? []);
  const takenUpgrade = new Set(request.takenUpgradeDomains ?? []);
  const excluded = new Set(request.excludedNodeIds ?? []);
  const usable = request.candidates.filter(
    (c) => !excluded.has(c.nodeId) && !takenFault.has(c.faultDomain) && !takenUpgrade.has(c.upgradeDomain),
  );
  assertDistinctIds(usable);
  const ordered = orderByLoad(usable, random);
  const target = Math.min(request.replicaCount, maximumPlacement(ordered));
  const chosen: PlacementCandidate[] = [];
  for (const candidate of ordered) {
    if (chosen.length === target) break;
    if (conflicts(candidate, chosen)) continue;
    const rest = ordered.filter((other) => other !== candidate && !conflicts(other, [...chosen, candidate]));
    if (maximumPlacement(rest) >= target - chosen.length - 1) chosen.push(candidate);
  }
  assert(chosen.length === target, `placement chose ${chosen.length} of a reachable ${target}`);
  return { nodeIds: chosen.map((c) => c.nodeId), shortfall: request.replicaCount - chosen.length };
}

/** Shuffles with the injected Random, then sorts stably by load: equal loads stay shuffled. */
function orderByLoad(candidates: readonly PlacementCandidate[], random: Random): PlacementCandidate[] {
  const shuffled = [...candidates];
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = random.int(i + 1);
    const a = shuffled[i];
    const b = shuffled[j];
    assert(a !== undefined && b !== undefined, 'shuffle index in range');
    shuffled[i] = b;
    shuffled[j] = a;
  }
  return shuffled.sort((a, b) => a.load - b.load);
}

function conflicts(candidate: PlacementCandidate, chosen: readonly PlacementCandidate[]): boolean {
  return chosen.some((c) => c.faultDomain === candidate.faultDomain || c.upgradeDomain === candidate.upgradeDomain);
}

function assertDistinctIds(candidates: readonly PlacementCandidate[]): void {
  const ids = new Set(candidates.map((c) => c.nodeId));
  assert(ids.size === candidates.length, 'placement candidates must have distinct node ids');
}

/**
 * Most replicas placeable on these nodes under the domain rules: a maximum bipartite matching
 * between fault domains and upgrade domains (an edge per node), by augmenting paths (Kuhn).
 * Sizes are small (domains, not nodes), so O(V·E) is plenty.
 */
export function maximumPlacement(candidates: readonly PlacementCandidate[]): number {
  const edges = new Map<string, Set<string>>();
  for (const c of candidates) {
    const upgradeDomains = edges.get(c.faultDomain) ?? new Set<string>();
    upgradeDomains.add(c.upgradeDomain);
    edges.set(c.faultDomain, upgradeDomains);
  }
  const matchOfUpgrade = new Map<string, string>();
  let size = 0;
  for (const faultDomain of edges.keys()) {
    if (augment(faultDomain, edges, matchOfUpgrade, new Set())) size += 1;
  }
  return size;
}

function augment(
  faultDomain: string,
  edges: ReadonlyMap<string, ReadonlySet<string>>,
  matchOfUpgrade: Map<string, string>,
  visited: Set<string>,
): boolean {
  for (const upgradeDomain of edges.get(faultDomain) ?? []) {
    if (visited.has(upgradeDomain)) continue;
    visited.add(upgradeDomain);
    const holder = matchOfUpgrade.get(upgradeDomain);
    if (holder === undefined || augment(holder, edges, matchOfUpgrade, visited)) {
      matchOfUpgrade.set(upgradeDomain, faultDomain);
      return true;
    }
  }
  return false;
}
