// The stream layer's diagnostics channels (node:diagnostics_channel; STYLE.md, Observability):
// the names and payload types of the events extent nodes publish on their hot paths, and of the
// stream manager's seals and repair passes, for metrics (src/observability), tests and the
// simulator. This module lives in util because the
// layer rule (STYLE.md principle 6, eslint.config.js) lets both src/stream (the publisher) and
// src/observability (a subscriber) import util, and neither may import the other.
//
// Invariants:
// - publishing costs one boolean check when nobody listens: publishers test `hasSubscribers`
//   before building a payload or reading a clock;
// - payloads carry ids, byte counts, durations and closed-set codes, never data bytes;
// - only EventChannel.publish writes to the "kura:" channel names, so a subscriber may trust
//   the payload type it was declared with.
// Fault model: a subscriber that throws would surface in the publisher (diagnostics_channel
// calls subscribers synchronously and reports their errors as uncaught), so subscribers must
// not throw; metrics subscribers only update counters.
import diagnosticsChannel from 'node:diagnostics_channel';

/** How an operation ended: 'ok' or the StorageError code (a closed union, so bounded). */
export type OperationStatus = string;

/** An append applied by an extent node: as primary (client append) or secondary (replicate). */
export interface ExtentAppendEvent {
  readonly nodeId: string;
  readonly extentId: number;
  readonly role: 'primary' | 'secondary';
  readonly bytes: number;
  readonly durationMs: number;
  readonly status: OperationStatus;
}

/** A verified read served (or refused) by an extent node. */
export interface ExtentReadEvent {
  readonly nodeId: string;
  readonly extentId: number;
  readonly bytes: number;
  readonly durationMs: number;
  readonly status: OperationStatus;
}

/** A block of a local replica failed its CRC or header check (P2). */
export interface ExtentCorruptionEvent {
  readonly nodeId: string;
  readonly extentId: number;
  /** Logical offset of the damaged block. */
  readonly offset: number;
  readonly reason: string;
}

/** A local replica was sealed. */
export interface ExtentSealEvent {
  readonly nodeId: string;
  readonly extentId: number;
  readonly sealedLength: number;
  /** Bytes cut off because the manager chose a shorter length than this replica held. */
  readonly truncatedBytes: number;
}

/** A sealed replica copied to this node from others (re-replication, extent.copyFrom). */
export interface ExtentCopyEvent {
  readonly nodeId: string;
  readonly extentId: number;
  readonly bytes: number;
  readonly durationMs: number;
  readonly status: OperationStatus;
}

/** The node's local disk failed; it now reports failed: true to the manager. */
export interface ExtentNodeFailedEvent {
  readonly nodeId: string;
  readonly code: string;
  /** The failure's message (what the disk answered), for the operator. */
  readonly message: string;
}

/** The stream manager recorded a seal (durably, before telling the replicas). */
export interface StreamSealEvent {
  readonly streamId: number;
  readonly extentId: number;
  readonly sealedLength: number;
  /** Replicas in the map, and how many answered extent.info. */
  readonly replicas: number;
  readonly answered: number;
  /** `none`: every answer undamaged; `excluded`: damaged replicas left out of the length (to be
   * replaced); `over_damage`: every answer damaged, sealed at the largest and flagged. */
  readonly damage: 'none' | 'excluded' | 'over_damage';
}

/** A stream-manager repair pass finished (see RepairReport in src/stream/rereplication.ts). */
export interface RepairPassEvent {
  /** Extents with fewer live replicas than their target, found by this pass. */
  readonly extentsFound: number;
  /** Of them, brought back to target by this pass. */
  readonly extentsFixed: number;
  readonly extentsWithoutTarget: number;
  readonly extentsUnrecoverable: number;
  readonly copyFailures: number;
  /** Open extents this pass sealed (a replica lost, or a better placement appeared). */
  readonly extentsSealed: number;
  readonly replicasCopied: number;
  readonly bytesCopied: number;
  readonly durationMs: number;
}

/** A typed diagnostics channel. */
export class EventChannel<T extends object> {
  readonly name: string;
  private readonly channel: diagnosticsChannel.Channel;

  constructor(name: string) {
    this.name = name;
    this.channel = diagnosticsChannel.channel(name);
  }

  /** True when someone listens: check it before building a payload on a hot path. */
  get hasSubscribers(): boolean {
    return this.channel.hasSubscribers;
  }

  publish(event: T): void {
    if (this.channel.hasSubscribers) this.channel.publish(event);
  }

  /** Subscribes; returns the unsubscribe function. */
  subscribe(listener: (event: T) => void): () => void {
    // Only publish() above writes to this name, so the message is a T (see the file header).
    const onMessage = (message: unknown): void => listener(message as T);
    this.channel.subscribe(onMessage);
    return () => {
      this.channel.unsubscribe(onMessage);
    };
  }
}

export const streamEvents = {
  extentAppend: new EventChannel<ExtentAppendEvent>('kura:extent:append'),
  extentRead: new EventChannel<ExtentReadEvent>('kura:extent:read'),
  extentCorruption: new EventChannel<ExtentCorruptionEvent>('kura:extent:corruption'),
  extentSeal: new EventChannel<ExtentSealEvent>('kura:extent:seal'),
  extentCopy: new EventChannel<ExtentCopyEvent>('kura:extent:copy'),
  extentNodeFailed: new EventChannel<ExtentNodeFailedEvent>('kura:extent-node:failed'),
  streamSeal: new EventChannel<StreamSealEvent>('kura:stream-manager:seal'),
  repairPass: new EventChannel<RepairPassEvent>('kura:stream-manager:repair-pass'),
} as const;
