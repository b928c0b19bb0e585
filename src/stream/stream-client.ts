// The stream client (docs/stream-protocol.md, "Append" and "Read"): appends to a stream's tail
// extent through its primary, and reads extents from any replica, never returning bytes that
// failed a checksum. The partition layer and tools use it; it holds a bounded cache of stream
// views so the common path is one RPC.
//
// Append, one attempt per tail extent (at most streamAppendAttemptsMax):
//
//   extent.append(tail, appendId) ──ok──► { extentId, offset, length }
//        │ rpc.overloaded (nothing applied) ──► back off on the clock, same extent, same
//        │                                      appendId (at most streamAppendOverloadRetriesMax)
//        │ fails (timeout, unreachable, extent.failed/sealed/too_large, …, or still overloaded)
//        ▼
//   manager.sealAndExtend(tail) ──► extent.findAppend(appendId) on the sealed extent's replicas
//        │ found below the sealed length → that result stands (the append landed)
//        ▼ not found
//   retry the same appendId on the new tail
//
// Owner epochs (docs/stream-protocol.md, "Owner epochs"): an append made with { ownerEpoch } is
// never sent to an extent of a view whose ownerEpoch is higher (stream.fenced, before anything is
// sent), and its sealAndExtend calls carry the epoch, so the manager refuses an older owner.
//
// Invariants:
// - the client asks the manager to seal an extent only after every extent.append it has in flight
//   there has settled, and starts no new one there meanwhile: an append acknowledged after the
//   replicas reported their lengths would be cut off by the seal (P1);
// - an append id (clientId + sequence) is used for every attempt of one append and never for
//   another, so a retry is applied at most once per extent;
// - a result is returned only from a primary's ack (all replicas durable) or from findAppend on
//   a sealed extent below its sealed length;
// - only an error that says nothing was applied (rpc.overloaded) is retried on the same extent:
//   if the overload came from a secondary the primary has written and stopped accepting, so the
//   retry answers extent.failed and the client seals; rpc.unreachable cannot say whether the
//   request went out, so it seals (docs/stream-protocol.md, "Append", steps 7-8);
// - read returns only bytes whose CRC the serving node verified on disk and this client verified
//   on arrival; a replica answering extent.corrupt is reported to the manager and skipped.
// Fault model: any replica or the manager may be slow, down or partitioned; a view may be stale
// (the extent was sealed or re-replicated): errors invalidate the cached view.
import {
  dataAppendBytesMax, readBytesMax, rpcDeadlineMsDefault, sealAndExtendDeadlineMs, streamAppendAttemptsMax, streamAppendBackoffMsMax, streamAppendBackoffMsMin,
  streamAppendDeadlineMs, streamAppendOverloadRetriesMax, streamViewsCachedMax,
} from '../constants.ts';
import type { Network } from '../rpc/network.ts';
import { assert, assertByteCount } from '../util/assert.ts';
import type { Clock } from '../util/clock.ts';
import { StorageError } from '../util/errors.ts';
import { failpoint } from '../util/failpoints.ts';
import type { Random } from '../util/random.ts';
import { withDeadline } from './deadline.ts';
import { asStorageError } from './extent-append-log.ts';
import type { AppendResult } from './extent-append-log.ts';
import { callAppend, callFindAppend, callRead } from './extent-node-rpc.ts';
import type { ExtentView, StreamManagerApi, StreamView } from './protocol.ts';
import type { Body } from '../util/body-parts.ts';

export interface StreamClientOptions {
  readonly manager: StreamManagerApi;
  readonly network: Network;
  readonly clock: Clock;
  /** Unique per client instance (e.g. process id + start time): prefixes every append id. */
  readonly clientId: string;
  /** Jitters overload back-offs (half fixed, half random) so clients do not retry in step. */
  readonly random?: Random;
}

export interface StreamAppendOptions {
  /** The caller owns the stream at this epoch; a newer owner's views and seals fence it. */
  readonly ownerEpoch?: number;
}

export interface StreamAppendResult extends AppendResult {
  readonly extentId: number;
}

export interface StreamClientStats {
  readonly appendsAcknowledged: number;
  readonly appendRetries: number;
  readonly appendsFoundAfterSeal: number;
  /** Retries on the same extent after rpc.overloaded, and the time spent backing off. */
  readonly appendOverloadRetries: number;
  readonly appendBackoffMs: number;
  readonly corruptReplicasSkipped: number;
  readonly replicaReadFailures: number;
}

type MutableStats = { -readonly [K in keyof StreamClientStats]: number };

/** Errors after which an append is not retried: the request itself is wrong. */
const appendFatalCodes = new Set(['config.invalid', 'stream.not_found', 'stream.fenced']);
/** Errors that guarantee nothing of the append was applied: retried on the same extent. */
const nothingAppliedCodes = new Set(['rpc.overloaded']);

export class StreamClient {
  private readonly manager: StreamManagerApi;
  private readonly network: Network;
  private readonly clock: Clock;
  private readonly clientId: string;
  private appendSequence = 0;
  private readonly streams = new Map<number, StreamView>();
  private readonly extents = new Map<number, ExtentView>();
  private readonly counters: MutableStats = {
    appendsAcknowledged: 0, appendRetries: 0, appendsFoundAfterSeal: 0, appendOverloadRetries: 0, appendBackoffMs: 0, corruptReplicasSkipped: 0, replicaReadFailures: 0,
  };
  private readonly random: Random | null;
  /** extent.append calls in flight per extent: a seal of that extent waits until they settled. */
  private readonly appendsInFlight = new Map<number, Set<Promise<unknown>>>();
  /** Extents this client is sealing: appends to them go to the new tail instead of starting. */
  private readonly sealing = new Map<number, Promise<StreamView>>();

  constructor(options: StreamClientOptions) {
    assert(options.clientId.length > 0 && options.clientId.length <= 64, 'clientId must be 1..64 characters');
    this.manager = options.manager;
    this.network = options.network;
    this.clock = options.clock;
    this.clientId = options.clientId;
    this.random = options.random ?? null;
  }

  stats(): StreamClientStats {
    return { ...this.counters };
  }

  /** Appends `data` as one record to the stream's tail; resolves once every replica has it durable. */
  async append(streamId: number, data: Body, options: StreamAppendOptions = {}): Promise<StreamAppendResult> {
    if (data.length === 0 || data.length > dataAppendBytesMax) {
      throw new StorageError('config.invalid', `append of ${data.length} bytes: must be 1..${dataAppendBytesMax}`);
    }
    const appendId = `${this.clientId}:${this.appendSequence++}`;
    let view = await this.view(streamId);
    let lastError: StorageError | null = null;
    for (let attempt = 0; attempt < streamAppendAttemptsMax; attempt++) {
      checkOwner(view, options.ownerEpoch);
      const tail = view.extents.at(-1);
      if (tail === undefined) throw new StorageError('stream.unavailable', `stream ${streamId} has no extents`);
      if (attempt > 0) this.counters.appendRetries += 1;
      const outcome = await this.appendWithBackoff(tail, appendId, data);
      if (!(outcome instanceof StorageError)) {
        this.counters.appendsAcknowledged += 1;
        return outcome;
      }
      lastError = outcome;
      if (appendFatalCodes.has(outcome.code)) throw outcome;
      if (outcome.code === 'extent.stale_epoch') {
        // A newer stream manager has spoken to the node: this view is old, the extent is fine.
        view = await this.refresh(streamId);
        continue;
      }
      view = await this.sealAndExtend(streamId, tail.extentId, options.ownerEpoch);
      await failpoint('stream-client.append.after-seal');
      const landed = await this.findLanded(view, tail.extentId, appendId);
      if (landed !== null) {
        this.counters.appendsFoundAfterSeal += 1;
        this.counters.appendsAcknowledged += 1;
        return landed;
      }
    }
    throw new StorageError('stream.unavailable', `append ${appendId} to stream ${streamId} failed ${streamAppendAttemptsMax} times`, {
      retryable: true,
      cause: lastError,
      context: { streamId, appendId },
    });
  }

  /**
   * One attempt on the tail extent: while the primary answers that nothing was applied
   * (rpc.overloaded), waits an exponential back-off on the clock and retries the same appendId
   * there, at most streamAppendOverloadRetriesMax times; any other outcome is returned.
   */
  private async appendWithBackoff(tail: ExtentView, appendId: string, data: Body): Promise<StreamAppendResult | StorageError> {
    for (let retry = 0; ; retry++) {
      const outcome = await this.appendToTail(tail, appendId, data);
      if (!(outcome instanceof StorageError) || !nothingAppliedCodes.has(outcome.code) || retry >= streamAppendOverloadRetriesMax) return outcome;
      const waitMs = this.backoffMs(retry);
      this.counters.appendOverloadRetries += 1;
      this.counters.appendBackoffMs += waitMs;
      await this.clock.sleep(waitMs);
    }
  }

  /** streamAppendBackoffMsMin · 2^retry, capped; half of it jittered when a Random is given. */
  private backoffMs(retry: number): number {
    const fullMs = Math.min(streamAppendBackoffMsMax, streamAppendBackoffMsMin * 2 ** retry);
    if (this.random === null) return fullMs;
    const halfMs = Math.floor(fullMs / 2);
    return fullMs - halfMs + this.random.int(halfMs + 1);
  }

  private async appendToTail(tail: ExtentView, appendId: string, data: Body): Promise<StreamAppendResult | StorageError> {
    const primary = tail.replicas[0];
    assert(primary !== undefined, 'extent view without replicas');
    if (tail.state.kind === 'sealed') return new StorageError('extent.sealed', `tail extent ${tail.extentId} is sealed`);
    if (this.sealing.has(tail.extentId)) return new StorageError('extent.sealed', `tail extent ${tail.extentId} is being sealed`);
    try {
      const target = { network: this.network, address: primary.address, deadlineMs: streamAppendDeadlineMs };
      const call = callAppend(target, { epoch: tail.epoch, extentId: tail.extentId, appendId, replicas: tail.replicas }, data);
      this.trackInFlight(tail.extentId, call);
      const result = await call;
      return { extentId: tail.extentId, offset: result.offset, length: result.length };
    } catch (error) {
      return asStorageError(error);
    }
  }

  private trackInFlight(extentId: number, call: Promise<unknown>): void {
    const calls = this.appendsInFlight.get(extentId) ?? new Set<Promise<unknown>>();
    calls.add(call);
    this.appendsInFlight.set(extentId, calls);
    const done = (): void => {
      calls.delete(call);
      if (calls.size === 0 && this.appendsInFlight.get(extentId) === calls) this.appendsInFlight.delete(extentId);
    };
    call.then(done, done);
  }

  /**
   * Seals the failed tail (the manager makes the length final) and returns the new view. The
   * manager seals at the shortest length the replicas report, so this client's other appends to
   * the extent must have settled first: one acknowledged after the replicas reported their
   * lengths would be cut off by the seal (found by the simulator, seed 306446546994). Concurrent
   * callers for one extent share one seal.
   */
  private sealAndExtend(streamId: number, extentId: number, ownerEpoch: number | undefined): Promise<StreamView> {
    const running = this.sealing.get(extentId);
    if (running !== undefined) return running;
    const sealing = this.sealAfterInFlight(streamId, extentId, ownerEpoch).finally(() => this.sealing.delete(extentId));
    this.sealing.set(extentId, sealing);
    return sealing;
  }

  private async sealAfterInFlight(streamId: number, extentId: number, ownerEpoch: number | undefined): Promise<StreamView> {
    await Promise.allSettled([...(this.appendsInFlight.get(extentId) ?? [])]);
    const request = ownerEpoch === undefined ? { streamId, extentId } : { streamId, extentId, ownerEpoch };
    const view = await withDeadline(this.clock, sealAndExtendDeadlineMs, 'manager.sealAndExtend', this.manager.sealAndExtend(request));
    this.remember(view);
    return view;
  }

  /** The append's result if it landed below the sealed length of `extentId`, else null. */
  private async findLanded(view: StreamView, extentId: number, appendId: string): Promise<StreamAppendResult | null> {
    const sealed = view.extents.find((extent) => extent.extentId === extentId);
    if (sealed?.state.kind !== 'sealed') return null;
    const sealedLength = sealed.state.sealedLength;
    for (const replica of sealed.replicas) {
      try {
        const target = { network: this.network, address: replica.address, deadlineMs: rpcDeadlineMsDefault };
        const found = await callFindAppend(target, { extentId, appendId });
        if (found !== null && found.offset + found.length <= sealedLength) return { extentId, ...found };
      } catch {
        // An unreachable replica cannot vouch; another one may.
      }
    }
    return null;
  }

  /**
   * Reads [offset, offset + length) of an extent, from the first replica that serves verified
   * bytes. `streamId` is needed only if this client has not seen the extent in a stream view.
   */
  async read(extentId: number, offset: number, length: number, options: { readonly streamId?: number } = {}): Promise<Buffer> {
    assertByteCount(offset, 'offset');
    assertByteCount(length, 'length');
    const pieces: Buffer[] = [];
    for (let done = 0; done < length;) {
      const pieceLength = Math.min(readBytesMax, length - done);
      pieces.push(await this.readPiece(extentId, offset + done, pieceLength, options.streamId));
      done += pieceLength;
    }
    return pieces.length === 1 && pieces[0] !== undefined ? pieces[0] : Buffer.concat(pieces, length);
  }

  private async readPiece(extentId: number, offset: number, length: number, streamId: number | undefined): Promise<Buffer> {
    const first = await this.readFromReplicas(await this.extentView(extentId, streamId, false), offset, length);
    if (Buffer.isBuffer(first)) return first;
    // Every replica failed: the view may be stale (re-replicated, resealed); refresh once.
    const second = await this.readFromReplicas(await this.extentView(extentId, streamId, true), offset, length);
    if (Buffer.isBuffer(second)) return second;
    throw new StorageError('stream.unavailable', `no replica of extent ${extentId} served [${offset}, ${offset + length}): ${second.join(', ')}`, {
      retryable: true,
      context: { extentId, offset, length },
    });
  }

  /** Verified bytes, or the list of why each replica failed. */
  private async readFromReplicas(extent: ExtentView, offset: number, length: number): Promise<Buffer | string[]> {
    const failures: string[] = [];
    for (const replica of extent.replicas) {
      try {
        const target = { network: this.network, address: replica.address, deadlineMs: rpcDeadlineMsDefault };
        return await callRead(target, { extentId: extent.extentId, offset, length });
      } catch (error) {
        const failure = asStorageError(error);
        failures.push(`${replica.nodeId}: ${failure.code}`);
        this.counters.replicaReadFailures += 1;
        if (failure.code === 'extent.corrupt') await this.reportCorruption(extent.extentId, replica.nodeId);
      }
    }
    return failures;
  }

  private async reportCorruption(extentId: number, nodeId: string): Promise<void> {
    this.counters.corruptReplicasSkipped += 1;
    try {
      await withDeadline(this.clock, rpcDeadlineMsDefault, 'manager.reportCorruption', this.manager.reportCorruption({ extentId, nodeId }));
    } catch {
      // The read goes on with the next replica; the node also reports its own corruption.
    }
  }

  // ---- view cache -----------------------------------------------------------------------------

  /** The cached view of a stream, fetched on first use. */
  async view(streamId: number): Promise<StreamView> {
    const cached = this.streams.get(streamId);
    if (cached !== undefined) return cached;
    return this.refresh(streamId);
  }

  /** The stream of an extent in a cached view, or null (no call: diagnostics). */
  cachedStreamOf(extentId: number): number | null {
    return this.extents.get(extentId)?.streamId ?? null;
  }

  /** Drops the cached view of a stream, so the next call fetches it again. */
  invalidate(streamId: number): void {
    const view = this.streams.get(streamId);
    if (view === undefined) return;
    this.streams.delete(streamId);
    for (const extent of view.extents) this.extents.delete(extent.extentId);
  }

  private async refresh(streamId: number): Promise<StreamView> {
    const view = await withDeadline(this.clock, rpcDeadlineMsDefault, 'manager.getStream', this.manager.getStream(streamId));
    this.remember(view);
    return view;
  }

  private async extentView(extentId: number, streamIdHint: number | undefined, fresh: boolean): Promise<ExtentView> {
    const cached = this.extents.get(extentId);
    const streamId = cached?.streamId ?? streamIdHint;
    if (cached !== undefined && !fresh) return cached;
    if (streamId === undefined) {
      throw new StorageError('extent.not_found', `extent ${extentId} is in no stream this client has seen; pass its streamId`);
    }
    const view = await this.refresh(streamId);
    const extent = view.extents.find((candidate) => candidate.extentId === extentId);
    if (extent === undefined) throw new StorageError('extent.not_found', `extent ${extentId} is not in stream ${streamId}`);
    return extent;
  }

  private remember(view: StreamView): void {
    this.invalidate(view.streamId);
    this.streams.set(view.streamId, view);
    for (const extent of view.extents) this.extents.set(extent.extentId, extent);
    while (this.streams.size > streamViewsCachedMax) {
      const oldest = this.streams.keys().next();
      if (oldest.done === true) break;
      this.invalidate(oldest.value);
    }
  }
}

/** An owner never appends through a view that a newer owner's takeover produced. */
function checkOwner(view: StreamView, ownerEpoch: number | undefined): void {
  if (ownerEpoch === undefined) return;
  const current = view.ownerEpoch ?? 0;
  if (current > ownerEpoch) {
    throw new StorageError('stream.fenced', `stream ${view.streamId} is owned at epoch ${current}; epoch ${ownerEpoch} is fenced`, {
      context: { streamId: view.streamId, ownerEpoch, current },
    });
  }
}
