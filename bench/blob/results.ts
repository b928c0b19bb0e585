// The figures one blob workload produces on one peer, as saved in the JSON report: speed and
// latency from the client, CPU and peak memory from the server process, errors, and the
// durability check's count of acknowledged writes that a kill -9 and restart lost.
import type { ThroughputResult } from '../lib/stats.ts';

export type WorkloadKind = 'put' | 'get' | 'big-upload' | 'big-download' | 'list-populate' | 'list' | 'mixed';

export type DurabilityResult =
  | {
      readonly kind: 'checked';
      /** Writes the peer acknowledged before the kill. */
      readonly acknowledged: number;
      /** Acknowledged blobs absent after the restart. */
      readonly missing: number;
      /** Acknowledged blobs present with other bytes (or another length, for a listing check). */
      readonly different: number;
      /** Reads that kept failing after the restart (neither confirmed present nor absent). */
      readonly unreadable: number;
      /** How the survivors were found: every blob read back, or one listing of the container. */
      readonly method: 'read-back' | 'listing';
      readonly restartMs: number;
    }
  | { readonly kind: 'not-applicable'; readonly why: string };

export interface ServerCost {
  readonly cpuSeconds: number;
  readonly cpuSecondsPerOperation: number;
  readonly peakRssBytes: number;
}

export interface WorkloadResult {
  readonly peer: string;
  /** Stable label shared by every peer, e.g. "put 4 KiB ×16"; rows are matched on it. */
  readonly workload: string;
  readonly kind: WorkloadKind;
  readonly client: 'sdk' | 'raw';
  readonly sizeBytes: number;
  readonly concurrency: number;
  readonly throughput: ThroughputResult;
  /** Operations that failed (counted in the throughput's operations; should be 0). */
  readonly errors: number;
  /** Items per second for listings (blobs listed), otherwise null. */
  readonly itemsPerSecond: number | null;
  readonly server: ServerCost;
  readonly durability: DurabilityResult | null;
  /** Wall time of the whole workload this row came from: setup, loops, kill, restart, check. */
  readonly workloadWallSeconds?: number;
  /**
   * The machine's 1-minute load average when the workload started and ended: the machine is
   * shared, and a row measured under a burst of other work is re-run or read with care.
   */
  readonly loadAverage1m?: { readonly atStart: number; readonly atEnd: number };
}

/** A workload the budget planner (budget-plan.ts) left out, and why. */
export interface SkippedWorkload {
  readonly workload: string;
  readonly reason: string;
}

export type PeerStatus =
  /** skipped: workloads not started because the run's time budget left no room for them, or by policy. */
  | { readonly name: string; readonly status: 'ran'; readonly skipped?: readonly SkippedWorkload[] }
  /** Not started at all: none of its workloads fitted what the budget left. */
  | { readonly name: string; readonly status: 'skipped'; readonly skipped: readonly SkippedWorkload[] }
  | { readonly name: string; readonly status: 'unavailable'; readonly reason: string }
  | { readonly name: string; readonly status: 'failed'; readonly error: string };
