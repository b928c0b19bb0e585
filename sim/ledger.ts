// The ledger oracle (TESTING.md, "Harness"; docs/simulation.md, "Checkers"): every write the
// workload issues is recorded with its outcome — acknowledged (with its commit sequence),
// failed (certainly not applied) or indeterminate (unknown) — and every read is judged against it.
//
// A key's versions carry a `round`: a writer issues its operations on a key one round at a time
// (a burst of page writes shares one round), so every version of a later round was issued after
// every version of an earlier round had settled. Hence:
// - the newest applied version of a key is its acknowledged version with the highest commit
//   sequence, or an indeterminate version of the same or a later round;
// - a read may return a version only if it was written (not failed), with a commit sequence at
//   least the newest one acknowledged or read before the read began (no going back in time).
import type { PayloadId } from './payload.ts';
import { payloadKey } from './payload.ts';

export type VersionStatus = 'pending' | 'acked' | 'failed' | 'indeterminate';

export interface Version {
  readonly key: string;
  readonly kind: 'put' | 'delete';
  readonly payload: PayloadId | null;
  readonly round: number;
  /** Batch id: the rows of one atomic batch (all-or-nothing check). */
  readonly group: string | null;
  readonly issuedTick: number;
  status: VersionStatus;
  commitSequence: number | null;
  etag: string | null;
  completedTick: number | null;
}

export interface RowSeen {
  readonly sequence: number;
  readonly payload: PayloadId;
}

interface Observation {
  readonly sequence: number;
  readonly version: Version;
  readonly tick: number;
}

interface KeyHistory {
  readonly versions: Version[];
  readonly observations: Observation[];
}

export type CertainState = { readonly kind: 'absent' } | { readonly kind: 'live'; readonly etag: string } | null;

export class Ledger {
  private readonly keys = new Map<string, KeyHistory>();
  private ticks = 0;
  acknowledged = 0;
  indeterminate = 0;
  failed = 0;

  /** A logical time for happens-before between operations. */
  tick(): number {
    this.ticks += 1;
    return this.ticks;
  }

  begin(spec: { key: string; kind: 'put' | 'delete'; payload: PayloadId | null; round: number; group?: string }): Version {
    const version: Version = {
      key: spec.key, kind: spec.kind, payload: spec.payload, round: spec.round, group: spec.group ?? null, issuedTick: this.tick(),
      status: 'pending', commitSequence: null, etag: null, completedTick: null,
    };
    this.history(spec.key).versions.push(version);
    return version;
  }

  settle(version: Version, outcome: { status: 'acked'; commitSequence: number; etag: string | null } | { status: 'failed' | 'indeterminate' }): void {
    version.status = outcome.status;
    version.completedTick = this.tick();
    if (outcome.status === 'acked') {
      version.commitSequence = outcome.commitSequence;
      version.etag = outcome.etag;
      this.acknowledged += 1;
    } else if (outcome.status === 'failed') {
      this.failed += 1;
    } else {
      this.indeterminate += 1;
    }
  }

  allKeys(): string[] {
    return [...this.keys.keys()].sort();
  }

  versions(key: string): readonly Version[] {
    return this.keys.get(key)?.versions ?? [];
  }

  /** The key's state if no write of unknown outcome can have changed it; null if uncertain. */
  certainState(key: string): CertainState {
    const latest = this.latestAcked(key);
    const floorRound = latest?.round ?? -1;
    const open = this.versions(key).some((v) => v !== latest && (v.status === 'pending' || v.status === 'indeterminate') && v.round >= floorRound);
    if (open) return null;
    if (latest === null || latest.kind === 'delete') return { kind: 'absent' };
    return latest.etag === null ? null : { kind: 'live', etag: latest.etag };
  }

  /**
   * Judges one read of `key` that started at `startTick`: a violation message, or null. A row
   * read is remembered, so later reads must not go back behind it.
   */
  checkRead(key: string, startTick: number, row: RowSeen | null): string | null {
    const history = this.history(key);
    const floor = this.floorAt(history, startTick);
    if (row === null) return this.checkAbsent(history, floor);
    const version = history.versions.find((v) => v.kind === 'put' && v.payload !== null && payloadKey(v.payload) === payloadKey(row.payload));
    if (version === undefined) return `${key}: read version ${payloadKey(row.payload)}, which was never written to this key`;
    if (version.status === 'failed') return `${key}: read version ${payloadKey(row.payload)}, whose write failed (nothing may be applied)`;
    if (row.sequence < floor.sequence) return `${key}: read went back in time: sequence ${row.sequence} after ${floor.sequence} was acknowledged or read`;
    // Garbage collection may rewrite a row (same content, data copied forward) at a later sequence.
    if (version.status === 'acked' && row.sequence < (version.commitSequence ?? 0)) {
      return `${key}: version ${payloadKey(row.payload)} acknowledged at sequence ${version.commitSequence} reads back at ${row.sequence}`;
    }
    history.observations.push({ sequence: row.sequence, version, tick: this.tick() });
    return null;
  }

  /** The versions the key may hold at the end (all writes settled); 'absent' stands for no row. */
  finalCandidates(key: string): Array<Version | 'absent'> {
    const history = this.history(key);
    const floor = this.floorAt(history, Number.MAX_SAFE_INTEGER);
    const base = floor.version;
    const candidates: Array<Version | 'absent'> = [];
    if (base === null || base.kind === 'delete') candidates.push('absent');
    else candidates.push(base);
    for (const v of history.versions) {
      if (v === base || v.status === 'failed' || v.status === 'acked') continue;
      if (v.round >= floor.round) candidates.push(v.kind === 'delete' ? 'absent' : v);
    }
    return candidates;
  }

  private checkAbsent(history: KeyHistory, floor: { sequence: number; round: number; version: Version | null; live: boolean }): string | null {
    if (!floor.live) return null;
    const deleted = history.versions.some((v) => v.kind === 'delete' && v.status !== 'failed'
      && ((v.status === 'acked' && (v.commitSequence ?? 0) > floor.sequence) || (v.status !== 'acked' && v.round >= floor.round)));
    return deleted ? null : `${history.versions[0]?.key ?? '?'}: read found no row, but sequence ${floor.sequence} (a put) was acknowledged or read before and no delete can explain it`;
  }

  /** The newest version known applied before `tick`: acknowledged or read. */
  private floorAt(history: KeyHistory, tick: number): { sequence: number; round: number; version: Version | null; live: boolean } {
    let best: { sequence: number; round: number; version: Version | null; live: boolean } = { sequence: 0, round: -1, version: null, live: false };
    for (const v of history.versions) {
      if (v.status !== 'acked' || v.completedTick === null || v.completedTick >= tick) continue;
      const sequence = v.commitSequence ?? 0;
      if (sequence > best.sequence) best = { sequence, round: v.round, version: v, live: v.kind === 'put' };
    }
    for (const seen of history.observations) {
      if (seen.tick >= tick || seen.sequence <= best.sequence) continue;
      best = { sequence: seen.sequence, round: seen.version.round, version: seen.version, live: true };
    }
    return best;
  }

  private latestAcked(key: string): Version | null {
    let best: Version | null = null;
    for (const v of this.versions(key)) {
      if (v.status === 'acked' && (best === null || (v.commitSequence ?? 0) > (best.commitSequence ?? 0))) best = v;
    }
    return best;
  }

  private history(key: string): KeyHistory {
    let history = this.keys.get(key);
    if (history === undefined) {
      history = { versions: [], observations: [] };
      this.keys.set(key, history);
    }
    return history;
  }
}
