// The checkers that run after a run (docs/simulation.md, "Checkers"), once the stamp is healed
// and repair converged: every acknowledged write readable byte-exact, indeterminate batches all
// or nothing, sealed replicas byte-identical, no two replicas in one fault domain, and every node
// that holds replicas refused a release token (P3). Each returns violations (strings naming
// what broke) and figures; none stops at the first violation. Every partition server up is
// registered and every partition served (liveness of the partition layer).
import { createHash } from 'node:crypto';
import { readBytesMax } from '../src/constants.ts';
import { callRead } from '../src/stream/extent-node-rpc.ts';
import { readMap, serverKey, serverRecordSchema } from '../src/partition/partition-map.ts';
import { isStorageError } from '../src/util/errors.ts';
import { describe } from './faults.ts';
import type { Ledger, Version } from './ledger.ts';
import type { StampOperator } from './operator.ts';
import { payloadKey } from './payload.ts';
import type { PartitionServerRole } from './partition-roles.ts';
import type { ExtentNodeRole } from './roles.ts';
import type { SimStamp } from './stamp.ts';
import type { FinalRead } from './workload.ts';

/** What the final checks read keys through (the partition workload, or the blob workload). */
export interface FinalReader {
  readForCheck(key: string): Promise<FinalRead>;
}

export interface CheckFigures {
  acknowledgedWritesChecked: number;
  keysChecked: number;
  indeterminateApplied: number;
  indeterminateAbsent: number;
  batchesChecked: number;
  sealedExtentsCompared: number;
  replicasCompared: number;
  extentsPlacementChecked: number;
  protectedNodesChecked: number;
  partitionServersChecked: number;
  extentsDroppedDuringCheck: number;
}

export function zeroCheckFigures(): CheckFigures {
  return {
    acknowledgedWritesChecked: 0, keysChecked: 0, indeterminateApplied: 0, indeterminateAbsent: 0, batchesChecked: 0, sealedExtentsCompared: 0,
    replicasCompared: 0, extentsPlacementChecked: 0, protectedNodesChecked: 0, partitionServersChecked: 0, extentsDroppedDuringCheck: 0,
  };
}

/** Final reads are retried this often (the stamp just healed; a partition may be reloading). */
const finalReadAttempts = 6;
const finalReadPauseMs = 5_000;
/** Every partition must be served within this many polls of servedPollMs after recovery. */
const servedAttempts = 60;
const servedPollMs = 1_000;

/** Every key holds its newest acknowledged version or a later indeterminate one, byte-exact. */
export async function checkObjects(stamp: SimStamp, workload: FinalReader, ledger: Ledger, figures: CheckFigures): Promise<string[]> {
  const violations: string[] = [];
  const groups = new Map<string, { present: number; size: number }>();
  for (const key of ledger.allKeys()) {
    const read = await finalRead(stamp, workload, key);
    figures.keysChecked += 1;
    const versions = ledger.versions(key);
    figures.acknowledgedWritesChecked += versions.filter((v) => v.status === 'acked').length;
    if (read.kind === 'unavailable' || read.kind === 'corrupt') {
      violations.push(`${key}: unreadable after recovery (${read.kind}: ${read.why})`);
      continue;
    }
    const candidates = ledger.finalCandidates(key);
    const match = candidates.find((candidate) => matches(candidate, read));
    if (match === undefined) {
      violations.push(`${key}: holds ${read.kind === 'row' ? `${payloadKey(read.payload)}@${read.sequence}` : 'no row'}; allowed: ${candidates.map(describeCandidate).join(' | ')}`);
      continue;
    }
    noteIndeterminate(versions, read, figures, groups);
  }
  for (const [group, tally] of groups) {
    figures.batchesChecked += 1;
    if (tally.present !== 0 && tally.present !== tally.size) violations.push(`batch ${group}: ${tally.present} of ${tally.size} rows applied (must be all or nothing)`);
  }
  return violations;
}

async function finalRead(stamp: SimStamp, workload: FinalReader, key: string): Promise<FinalRead> {
  let read: FinalRead = { kind: 'unavailable', why: 'not tried' };
  for (let attempt = 0; attempt < finalReadAttempts; attempt++) {
    read = await workload.readForCheck(key);
    if (read.kind !== 'unavailable') return read;
    await stamp.clock.sleep(finalReadPauseMs);
  }
  return read;
}

function matches(candidate: Version | 'absent', read: FinalRead): boolean {
  if (candidate === 'absent') return read.kind === 'absent';
  return read.kind === 'row' && candidate.payload !== null && payloadKey(candidate.payload) === payloadKey(read.payload);
}

function describeCandidate(candidate: Version | 'absent'): string {
  if (candidate === 'absent') return 'no row';
  return `${candidate.payload === null ? 'delete' : payloadKey(candidate.payload)} (${candidate.status}${candidate.commitSequence === null ? '' : `@${candidate.commitSequence}`})`;
}

/** Counts indeterminate writes seen applied or not, and tallies the rows of indeterminate batches. */
function noteIndeterminate(versions: readonly Version[], read: FinalRead, figures: CheckFigures, groups: Map<string, { present: number; size: number }>): void {
  for (const version of versions) {
    if (version.status !== 'indeterminate' || version.kind !== 'put' || version.payload === null) continue;
    const applied = read.kind === 'row' && payloadKey(read.payload) === payloadKey(version.payload);
    if (applied) figures.indeterminateApplied += 1;
    else figures.indeterminateAbsent += 1;
    // Batch rows are written once each, so a row that is not there was not applied.
    if (version.group !== null && /\/b\d+\//.test(version.key)) {
      const tally = groups.get(version.group) ?? { present: 0, size: 0 };
      tally.size += 1;
      if (applied) tally.present += 1;
      groups.set(version.group, tally);
    }
  }
}

/** Sealed replicas byte-identical; replicas of every extent in distinct fault domains. */
export async function checkStreams(operator: StampOperator, nodes: readonly ExtentNodeRole[], figures: CheckFigures): Promise<string[]> {
  const violations: string[] = [];
  const domainOf = new Map(nodes.map((node) => [node.name, node.faultDomain]));
  for (const view of await operator.streamViews()) {
    if (view === null) {
      violations.push('a stream view could not be read after recovery');
      continue;
    }
    for (const extent of view.extents) {
      figures.extentsPlacementChecked += 1;
      const domains = extent.replicas.map((replica) => domainOf.get(replica.nodeId) ?? `unknown:${replica.nodeId}`);
      if (new Set(domains).size !== domains.length) violations.push(`extent ${extent.extentId}: replicas share a fault domain (${extent.replicas.map((r) => r.nodeId).join(', ')})`);
      if (extent.state.kind !== 'sealed' || extent.state.sealedLength === 0) continue;
      const found = await compareReplicas(operator, extent.extentId, extent.state.sealedLength, extent.replicas, figures);
      // Partition GC keeps running: an extent it dropped after the view was read is gone, not lost.
      if (found.length > 0 && await droppedSince(operator, view.streamId, extent.extentId)) {
        figures.extentsDroppedDuringCheck += 1;
        continue;
      }
      violations.push(...found);
    }
  }
  return violations;
}

/** True if the stream no longer names the extent (its removal committed after the view was read). */
async function droppedSince(operator: StampOperator, streamId: number, extentId: number): Promise<boolean> {
  const view = await operator.within(operator.manager.getStream(streamId)).catch(() => null);
  return view !== null && !view.extents.some((extent) => extent.extentId === extentId);
}

async function compareReplicas(
  operator: StampOperator, extentId: number, length: number, replicas: ReadonlyArray<{ nodeId: string; address: string }>, figures: CheckFigures,
): Promise<string[]> {
  const digests = new Map<string, string>();
  const violations: string[] = [];
  for (const replica of replicas) {
    try {
      const hash = createHash('sha256');
      for (let offset = 0; offset < length; offset += readBytesMax) {
        const target = { network: operator.process.network, address: replica.address, deadlineMs: 30_000 };
        const piece = await operator.within(callRead(target, { extentId, offset, length: Math.min(readBytesMax, length - offset) }));
        if (piece === null) throw new Error('read timed out');
        hash.update(piece);
      }
      digests.set(replica.nodeId, hash.digest('hex'));
      figures.replicasCompared += 1;
    } catch (error) {
      violations.push(`extent ${extentId}: replica on ${replica.nodeId} unreadable after recovery (${describe(error)})`);
    }
  }
  figures.sealedExtentsCompared += 1;
  if (new Set(digests.values()).size > 1) violations.push(`extent ${extentId}: sealed replicas differ (${[...digests].map(([node, digest]) => `${node}:${digest.slice(0, 8)}`).join(', ')})`);
  return violations;
}

/** P3: a node the map records replicas on is refused a release token. */
export async function checkProtection(operator: StampOperator, nodes: readonly ExtentNodeRole[], figures: CheckFigures): Promise<string[]> {
  const violations: string[] = [];
  for (const node of nodes) {
    const held = await operator.within(operator.manager.liveReplicas(node.name)).catch(() => null);
    if (held === null || held.length === 0) continue;
    figures.protectedNodesChecked += 1;
    try {
      await operator.within(operator.manager.releaseToken(node.name));
      violations.push(`P3: ${node.name} holds ${held.length} live replicas and was granted a release token`);
    } catch (error) {
      if (!isStorageError(error, 'node.protected')) violations.push(`P3: release token for ${node.name} failed with ${describe(error)}, not node.protected`);
    }
  }
  return violations;
}

/**
 * Liveness of the partition layer after recovery: every partition server that is up is registered
 * in the MetaStore under the lease it holds (a server that lost its lease must take a new one and
 * serve again, or its ranges pile up on the others), and every partition of the map is served.
 */
export async function checkPartitionServers(stamp: SimStamp, operator: StampOperator, servers: readonly PartitionServerRole[], figures: CheckFigures): Promise<string[]> {
  const violations: string[] = [];
  for (const role of servers) {
    const server = role.server;
    if (!role.up || server === null) continue;
    figures.partitionServersChecked += 1;
    const record = await operator.within(operator.metaStore.get(serverKey(role.name))).catch(() => null);
    const lease = record === null ? null : serverRecordSchema.safeParse(JSON.parse(record.value)).data?.lease ?? null;
    if (lease === null || lease !== server.leaseId) {
      violations.push(`liveness: ${role.name} is up but not registered after recovery (its lease ${server.leaseId}, the MetaStore's ${lease ?? 'none'})`);
    }
  }
  violations.push(...await everyPartitionServed(stamp, operator, servers));
  return violations;
}

/** The manager may still be moving a range (a lease that ran out in the recovery window): wait, bounded. */
async function everyPartitionServed(stamp: SimStamp, operator: StampOperator, servers: readonly PartitionServerRole[]): Promise<string[]> {
  let unserved: string[] = [];
  for (let attempt = 0; attempt < servedAttempts; attempt++) {
    const current = await operator.within(readMap(operator.metaStore)).catch(() => null);
    const serving = new Set(servers.flatMap((role) => role.server?.servingPartitions() ?? []));
    unserved = (current?.map.partitions ?? []).filter((entry) => !serving.has(entry.partitionId))
      .map((entry) => `liveness: partition ${entry.partitionId} is not served after recovery (owner ${entry.owner?.serverId ?? 'none'}, epoch ${entry.ownerEpoch})`);
    if (current !== null && unserved.length === 0) return [];
    await stamp.clock.sleep(servedPollMs);
  }
  return unserved.length === 0 ? ['liveness: the partition map could not be read after recovery'] : unserved;
}
