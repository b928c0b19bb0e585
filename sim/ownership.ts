// The ownership checkers (docs/simulation.md, "Checkers"): what the partition layer's fencing
// (docs/partition-protocol.md) promises, checked while the run goes on.
//
// - An old owner never acknowledges after its lease lapsed: every answer a partition server gives
//   (a write acknowledged, a read served) is made under the lease it holds; the MetaStore's side of
//   that lease says when it may be gone (receipt time of the grant or last keep-alive + TTL, or a
//   revocation, or the store's restart, which forgets every lease). An answer at or after that
//   instant is a violation: another server may already own the range.
// - No write is applied twice: every log record a partition server sends to the stream layer is
//   decoded; a unique workload write (its key, payload identity and data ref) committed under two
//   different sequence numbers would be applied twice by the log replay. Resending one record
//   (a StreamClient retry, same sequence) is not a second application: replay dedupes it.
//
// It also follows the partition map as the manager commits it (trace lines, map versions, splits
// and moves as figures). Invariants: it never changes the stamp; violations are strings naming
// what broke, collected for the run's verdict.
import type { Txn } from '../src/metastore/meta-store.ts';
import { mapKey, parseMap } from '../src/partition/partition-map.ts';
import type { PartitionMap } from '../src/partition/partition-map.ts';
import { decodeLogRecord, logRecordLength } from '../src/wire/partition-log.ts';
import type { Column, DataRef } from '../src/wire/partition-row.ts';
import { payloadKey } from './payload.ts';
import type { PayloadId } from './payload.ts';
import type { SimStamp } from './stamp.ts';

interface LeaseState {
  readonly ttlMs: number;
  /** Earliest instant the store may have let the lease go. */
  goneAtMs: number;
}

export interface OwnershipFigures {
  answersChecked: number;
  logRecordsSeen: number;
  uniqueWritesCommitted: number;
  mapVersions: number;
  splits: number;
  moves: number;
  leasesGranted: number;
}

export class OwnershipMonitor {
  readonly violations: string[] = [];
  readonly figures: OwnershipFigures = { answersChecked: 0, logRecordsSeen: 0, uniqueWritesCommitted: 0, mapVersions: 0, splits: 0, moves: 0, leasesGranted: 0 };
  private readonly stamp: SimStamp;
  private readonly leases = new Map<number, LeaseState>();
  /** Unique write (key | payload | ref) → the sequence it was committed at (partition lineage-wide). */
  private readonly commits = new Map<string, number>();
  private lastMap: PartitionMap | null = null;

  constructor(stamp: SimStamp) {
    this.stamp = stamp;
  }

  // ---- the store's side of leases --------------------------------------------------------------

  leaseGranted(lease: number, ttlMs: number, atMs: number): void {
    this.figures.leasesGranted += 1;
    this.leases.set(lease, { ttlMs, goneAtMs: atMs + ttlMs });
  }

  leaseKeptAlive(lease: number, atMs: number): void {
    const state = this.leases.get(lease);
    if (state !== undefined) state.goneAtMs = Math.max(state.goneAtMs, atMs + state.ttlMs);
  }

  leaseGone(lease: number, atMs: number): void {
    const state = this.leases.get(lease);
    if (state !== undefined) state.goneAtMs = Math.min(state.goneAtMs, atMs);
  }

  /** The embedded store opened: it forgot every lease it had granted. */
  storeOpened(atMs: number): void {
    for (const state of this.leases.values()) state.goneAtMs = Math.min(state.goneAtMs, atMs);
  }

  // ---- partition servers' answers and log records ----------------------------------------------

  /** A partition server answered `method` successfully while holding `lease` (null: none). */
  answered(serverId: string, lease: number | null, method: string): void {
    this.figures.answersChecked += 1;
    const nowMs = this.stamp.clock.monotonicMs();
    const state = lease === null ? undefined : this.leases.get(lease);
    if (state === undefined) {
      this.violations.push(`ownership: ${serverId} answered ${method} at ${nowMs} ms holding no lease the MetaStore granted (${lease})`);
    } else if (nowMs >= state.goneAtMs) {
      this.violations.push(`ownership: ${serverId} answered ${method} at ${nowMs} ms under lease ${lease}, which the MetaStore may have let go at ${state.goneAtMs} ms`);
    }
  }

  /** The bytes of an extent.append a partition server sent: log records are checked, others ignored. */
  appendSent(serverId: string, body: Buffer): void {
    let offset = 0;
    while (offset < body.length) {
      let length: number | null;
      try {
        length = logRecordLength(body.subarray(offset));
      } catch {
        return; // not a log append (data, checkpoint or meta bytes)
      }
      if (length === null || offset + length > body.length) return;
      this.logRecord(serverId, body.subarray(offset, offset + length));
      offset += length;
    }
  }

  private logRecord(serverId: string, bytes: Buffer): void {
    const record = decodeLogRecord(bytes);
    this.figures.logRecordsSeen += 1;
    for (const row of record.rows) {
      if (row.kind !== 'live') continue;
      const write = uniqueWrite(row.columns);
      if (write === null) continue;
      const id = `${row.key.toString('latin1')}|${write}`;
      const previous = this.commits.get(id);
      if (previous === undefined) {
        this.commits.set(id, record.sequence);
        this.figures.uniqueWritesCommitted += 1;
      } else if (previous !== record.sequence) {
        this.violations.push(`double apply: ${id} committed at sequence ${previous} and again at ${record.sequence} (partition ${record.partitionId}, epoch ${record.ownerEpoch}, by ${serverId})`);
      }
    }
  }

  // ---- the partition map -----------------------------------------------------------------------

  /** A MetaStore transaction committed; a new partition map is traced and counted. */
  committed(txn: Txn, revision: number): void {
    for (const operation of txn.success) {
      if (operation.kind !== 'put' || operation.key !== mapKey) continue;
      const map = parseMap({ key: mapKey, value: operation.value, modRevision: revision, lease: 0 });
      this.noteMap(map);
    }
  }

  private noteMap(map: PartitionMap): void {
    this.figures.mapVersions += 1;
    const previous = this.lastMap;
    if (previous !== null) {
      this.figures.splits += Math.max(0, map.partitions.length - previous.partitions.length);
      for (const entry of map.partitions) {
        const before = previous.partitions.find((candidate) => candidate.partitionId === entry.partitionId);
        if (before?.owner != null && entry.owner !== null && before.owner.serverId !== entry.owner.serverId) this.figures.moves += 1;
      }
    }
    this.lastMap = map;
    const owners = map.partitions.map((entry) => `${entry.partitionId}@${entry.ownerEpoch}:${entry.owner?.serverId ?? '-'}`).join(' ');
    this.stamp.trace(`map v${map.version} pm-epoch=${map.managerEpoch} ${owners}`);
  }
}

/** "payload|ref" of a workload row (columns w, q, p and one data ref), or null. */
function uniqueWrite(columns: readonly Column[]): string | null {
  const int = (name: string): number | null => {
    const value = columns.find((column) => column.name === name)?.value;
    return value?.kind === 'int64' ? Number(value.value) : null;
  };
  const refs = columns.find((column) => column.name === 'd')?.value;
  const writer = int('w');
  const sequence = int('q');
  const part = int('p');
  const ref: DataRef | undefined = refs?.kind === 'dataRefs' ? refs.value[0] : undefined;
  if (ref === undefined || writer === null || sequence === null || part === null) return null;
  const id: PayloadId = { writer, sequence, part };
  return `${payloadKey(id)}|${ref.extentId}:${ref.offset}:${ref.length}`;
}
