// The stream manager's commands to extent nodes (docs/stream-protocol.md): create, info (length,
// state, damaged), seal, copyFrom, remove (of a dropped extent), status. Each carries the manager's epoch where the protocol says so, has an explicit
// deadline, and parses the answer with a zod schema (a node's answer is untrusted input).
//
// Invariants: every mutating command carries `epoch`; a copy's deadline grows with the bytes to
// copy at rereplicationBytesPerSecondMax, so a large extent is not cut off by a fixed deadline.
// Fault model: a node may be down, slow, fenced by a newer epoch (extent.stale_epoch) or answer
// garbage (rpc.remote). Errors are returned as StorageErrors for the caller to decide.
import { z } from 'zod';
import { appendReplicaTimeoutMs, rereplicationBytesPerSecondMax, rpcDeadlineMsDefault } from '../constants.ts';
import type { Network, RpcHeader } from '../rpc/network.ts';
import { StorageError } from '../util/errors.ts';
import { extentInfoAnswer, id } from './protocol.ts';
import type { ExtentInfoAnswer, ReplicaLocation } from './protocol.ts';

/** node.status: the extents a node holds. Either a list of ids or of { extentId }. */
const nodeStatusAnswer = z.object({
  extentIds: z.array(id).optional(),
  extents: z.array(z.object({ extentId: id }).loose()).optional(),
});

const removeAnswer = z.object({ removed: z.boolean() });

export class ManagerCommands {
  private readonly network: Network;
  private readonly epochOf: () => number;

  constructor(options: { readonly network: Network; readonly epoch: () => number }) {
    this.network = options.network;
    this.epochOf = options.epoch;
  }

  async create(address: string, extent: { readonly streamId: number; readonly extentId: number }): Promise<void> {
    await this.call(address, 'extent.create', { epoch: this.epochOf(), ...extent }, rpcDeadlineMsDefault);
  }

  /** A replica's local length and whether it is damaged; deadline = the replica wait of the seal rule. */
  async info(address: string, extentId: number, options: { readonly seal?: boolean } = {}): Promise<ExtentInfoAnswer> {
    const header = await this.call(address, 'extent.info', { extentId, ...(options.seal === true ? { seal: true } : {}) }, appendReplicaTimeoutMs);
    return parseAnswer(extentInfoAnswer, header, 'extent.info');
  }

  async seal(address: string, extent: { readonly extentId: number; readonly length: number }): Promise<void> {
    await this.call(address, 'extent.seal', { epoch: this.epochOf(), ...extent }, rpcDeadlineMsDefault);
  }

  async copyFrom(
    address: string,
    copy: { readonly streamId: number; readonly extentId: number; readonly sealedLength: number; readonly sources: readonly ReplicaLocation[] },
  ): Promise<void> {
    const deadlineMs = rpcDeadlineMsDefault + Math.ceil((copy.sealedLength / rereplicationBytesPerSecondMax) * 1000) * 2;
    const sources = copy.sources.map((source) => ({ nodeId: source.nodeId, address: source.address }));
    await this.call(address, 'extent.copyFrom', { epoch: this.epochOf(), streamId: copy.streamId, extentId: copy.extentId, sealedLength: copy.sealedLength, sources }, deadlineMs);
  }

  /** Deletes a replica of a dropped extent; idempotent (false: the node did not hold it). */
  async remove(address: string, extentId: number): Promise<boolean> {
    const header = await this.call(address, 'extent.remove', { epoch: this.epochOf(), extentId }, rpcDeadlineMsDefault);
    return parseAnswer(removeAnswer, header, 'extent.remove').removed;
  }

  /** The extent ids a node holds, for reconciliation. */
  async heldExtents(address: string): Promise<readonly number[]> {
    const header = await this.call(address, 'node.status', {}, rpcDeadlineMsDefault);
    const answer = parseAnswer(nodeStatusAnswer, header, 'node.status');
    return answer.extentIds ?? answer.extents?.map((extent) => extent.extentId) ?? [];
  }

  private async call(address: string, method: string, header: RpcHeader, deadlineMs: number): Promise<RpcHeader> {
    const response = await this.network.call(address, { method, header, body: Buffer.alloc(0) }, { deadlineMs });
    return response.header;
  }
}

function parseAnswer<T>(schema: z.ZodType<T>, header: RpcHeader, what: string): T {
  const parsed = schema.safeParse(header);
  if (!parsed.success) throw new StorageError('rpc.remote', `malformed ${what} answer: ${parsed.error.message}`);
  return parsed.data;
}
