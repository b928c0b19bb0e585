// The partition layer's diagnostics channels (node:diagnostics_channel; STYLE.md, Observability):
// names and payload types of what partition servers publish per request, for metrics
// (src/observability/partition-metrics.ts), tests and the simulator. In util for the same reason
// as stream-events.ts: src/partition publishes, src/observability subscribes, neither imports
// the other.
//
// Invariants: publishing costs one boolean check when nobody listens (publishers test
// hasSubscribers before building a payload); payloads carry ids, method names, durations and
// closed-set codes, never keys or data.
// Fault model: subscribers must not throw (they would surface in the publisher).
import { EventChannel } from './stream-events.ts';
import type { OperationStatus } from './stream-events.ts';

/** One partition.* request a partition server answered (or refused). */
export interface PartitionRequestEvent {
  readonly serverId: string;
  /** The partition that served it; null when none did (not_owner before routing). */
  readonly partitionId: number | null;
  readonly method: string;
  readonly durationMs: number;
  readonly status: OperationStatus;
}

export const partitionEvents = {
  request: new EventChannel<PartitionRequestEvent>('kura:partition:request'),
} as const;
