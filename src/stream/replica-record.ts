// Re-replication's two pure decisions about where a copied replica goes in the replica map
// (docs/stream-protocol.md, "Re-replication" and "Placement"):
//
//   plannedVictim — before the copy: which recorded replica the copy will replace (the not-live
//                   one in the target's fault domain first, none if the extent is short of its
//                   target, else any not-live one);
//   recordDecision — after the copy, on the CURRENT map read in the record txn: record the copy
//                   in place of the planned victim only if that victim is still in the map and
//                   still not live (or add it if none was planned and the extent is still short),
//                   and only if the result keeps the placement rules; otherwise drop the copy.
//
// Invariants of every `record` result (P3 and placement): the copy shares no fault domain and no
// upgrade domain with any other replica of the extent, and there are never more replicas than
// the target. A replica leaves the map only when it is the planned victim and still not live
// (found by the simulator: a replaced replica came back live before the copy was recorded, and
// the copy was added as a fourth replica in its fault domain; seeds 473710148346, 91508046018).
//
// Fault model: none of its own; the caller reads the map and the node records fresh in the same
// compare txn that applies the decision, so the decision is never applied on a map it did not see.

/** The domains of a node, or undefined if the map names a node that has no record. */
export type DomainsOf = (nodeId: string) => { readonly faultDomain: string; readonly upgradeDomain: string } | undefined;

export interface VictimInput {
  readonly replicas: readonly string[];
  readonly live: ReadonlySet<string>;
  readonly domainsOf: DomainsOf;
  readonly targetId: string;
  readonly replicaTarget: number;
}

/** The replica a copy to `targetId` will replace, or null if it is to be added. */
export function plannedVictim(input: VictimInput): string | null {
  const notLive = input.replicas.filter((nodeId) => !input.live.has(nodeId));
  const targetFaultDomain = input.domainsOf(input.targetId)?.faultDomain;
  const sameDomain = notLive.find((nodeId) => targetFaultDomain !== undefined && input.domainsOf(nodeId)?.faultDomain === targetFaultDomain);
  if (sameDomain !== undefined) return sameDomain;
  if (input.replicas.length < input.replicaTarget) return null;
  return notLive[0] ?? null;
}

export interface RecordInput extends VictimInput {
  /** What plannedVictim chose before the copy (on the map as it was then). */
  readonly victim: string | null;
}

export type RecordDecision =
  | { readonly kind: 'record'; readonly replicas: readonly string[]; readonly victim: string | null }
  /** The map already names the target (an earlier record applied): nothing to do. */
  | { readonly kind: 'present' }
  /** The copy must not be recorded: remove it from the target. */
  | { readonly kind: 'drop'; readonly reason: string };

/** What to do with a finished copy, decided on the current map. */
export function recordDecision(input: RecordInput): RecordDecision {
  if (input.replicas.includes(input.targetId)) return { kind: 'present' };
  const next = nextReplicas(input);
  if (typeof next === 'string') return { kind: 'drop', reason: next };
  if (next.length > input.replicaTarget) return { kind: 'drop', reason: `${next.length} replicas would exceed the target of ${input.replicaTarget}` };
  const clash = domainClash(next, input.targetId, input.domainsOf);
  if (clash !== null) return { kind: 'drop', reason: clash };
  return { kind: 'record', replicas: next, victim: input.victim };
}

/** The replica list with the copy in it, or why there is no place for it. */
function nextReplicas(input: RecordInput): readonly string[] | string {
  const { victim, replicas, targetId } = input;
  if (victim === null) {
    return replicas.length < input.replicaTarget ? [...replicas, targetId] : `the extent already has its ${input.replicaTarget} replicas`;
  }
  const index = replicas.indexOf(victim);
  if (index === -1) return `replica ${victim} it was to replace has left the map`;
  if (input.live.has(victim)) return `replica ${victim} it was to replace is live again`;
  return replicas.map((nodeId, i) => (i === index ? targetId : nodeId));
}

/** Why the copy may not join the others (a shared or unknown domain), or null. */
function domainClash(replicas: readonly string[], targetId: string, domainsOf: DomainsOf): string | null {
  const target = domainsOf(targetId);
  if (target === undefined) return `target ${targetId} has no record: its fault domain is unknown`;
  for (const nodeId of replicas) {
    if (nodeId === targetId) continue;
    const domains = domainsOf(nodeId);
    if (domains === undefined) return `node ${nodeId} has no record: its fault domain is unknown`;
    if (domains.faultDomain === target.faultDomain) return `${nodeId} already holds a replica in fault domain ${target.faultDomain}`;
    if (domains.upgradeDomain === target.upgradeDomain) return `${nodeId} already holds a replica in upgrade domain ${target.upgradeDomain}`;
  }
  return null;
}
