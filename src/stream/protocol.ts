// Messages of the stream layer (docs/stream-protocol.md): the RPC methods of extent nodes and of
// the stream manager, with zod schemas that parse every incoming header at the edge (parse,
// don't inspect), and the MetaStore records the stream manager keeps.
//
// Invariants: ids are non-negative safe integers (extent and stream ids) or short printable
// strings (node ids); offsets and lengths are safe integers; every list is bounded.
import { z } from 'zod';
import type { RpcHeader } from '../rpc/network.ts';
import { dropExtentsPerCallMax } from '../constants.ts';
import { StorageError } from '../util/errors.ts';
import { isCount, isText, plainObject, safeParseFast, withFastPath } from '../util/fast-parse.ts';

const replicaListMax = 16;
const nodeIdMaxLength = 64;

export const id = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
export const byteCount = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const nodeIdPattern = /^[A-Za-z0-9._-]+$/;
export const nodeId = z.string().min(1).max(nodeIdMaxLength).regex(nodeIdPattern);
export const address = z.string().min(3).max(300);
export const epoch = z.number().int().nonnegative();
export const appendId = z.string().min(1).max(128);

/** A replica as clients and nodes see it: which node, and where to reach it. */
export const replicaLocation = z.object({ nodeId, address });
export type ReplicaLocation = z.infer<typeof replicaLocation>;

export const extentStateSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('open') }),
  z.object({ kind: z.literal('sealed'), sealedLength: byteCount }),
]);

/**
 * The extent.info answer as the stream manager reads it. `damaged` (optional, so answers of
 * nodes that predate it still parse as undamaged): the node's local recovery could not prove that
 * this replica still holds every append it acknowledged (docs/stream-protocol.md, "Damaged
 * replicas"); the manager leaves it out of the seal length and replaces it.
 */
export const extentInfoAnswer = z.object({ length: byteCount, state: extentStateSchema.optional(), damaged: z.boolean().optional() });
export type ExtentInfoAnswer = z.infer<typeof extentInfoAnswer>;

/** extent.append's header (every append of the embedded stamp), checked field by field (fast-parse.ts). */
function fastAppendRequest(value: unknown): { epoch: number; extentId: number; appendId: string; replicas: { nodeId: string; address: string }[] } | undefined {
  const header = plainObject(value);
  if (header === undefined || !isCount(header['epoch']) || !isCount(header['extentId']) || !isText(header['appendId'], 1, 128)) return undefined;
  const list = header['replicas'];
  if (!Array.isArray(list) || list.length < 1 || list.length > replicaListMax) return undefined;
  const replicas: { nodeId: string; address: string }[] = [];
  for (const item of list as unknown[]) {
    const replica = plainObject(item);
    const node = replica?.['nodeId'];
    const at = replica?.['address'];
    if (!isText(node, 1, nodeIdMaxLength) || !nodeIdPattern.test(node) || !isText(at, 3, 300)) return undefined;
    replicas.push({ nodeId: node, address: at });
  }
  return { epoch: header['epoch'], extentId: header['extentId'], appendId: header['appendId'], replicas };
}

// ---- Extent node methods --------------------------------------------------------------------

export const extentNodeRequests = {
  'extent.create': z.object({ epoch, streamId: id, extentId: id }),
  /** To the primary; body = the bytes. replicas[0] is the primary itself. */
  'extent.append': withFastPath(z.object({ epoch, extentId: id, appendId, replicas: z.array(replicaLocation).min(1).max(replicaListMax) }), fastAppendRequest),
  /** Primary to secondary; body = the bytes, to be written exactly at `offset`. */
  'extent.replicate': z.object({ epoch, extentId: id, appendId, offset: byteCount }),
  'extent.read': z.object({ extentId: id, offset: byteCount, length: byteCount }),
  /** seal: the stream manager is deciding a seal from the lengths: the replica stops acknowledging
   * appends before it answers (docs/stream-protocol.md, "Seal", step 1). */
  'extent.info': z.object({ extentId: id, seal: z.boolean().optional() }),
  'extent.seal': z.object({ epoch, extentId: id, length: byteCount }),
  'extent.findAppend': z.object({ extentId: id, appendId }),
  'extent.copyFrom': z.object({
    epoch,
    streamId: id,
    extentId: id,
    sealedLength: byteCount,
    sources: z.array(replicaLocation).min(1).max(replicaListMax),
  }),
  'extent.remove': z.object({ epoch, extentId: id }),
  'extent.verify': z.object({ extentId: id }),
  'node.status': z.object({}),
  'node.wipe': z.object({ token: z.string().min(1).max(4096) }),
} as const;

export type ExtentNodeMethod = keyof typeof extentNodeRequests;

// ---- Stream manager methods -----------------------------------------------------------------

export const nodeLifecycle = z.enum(['provisioning', 'in_service', 'draining', 'repair', 'returned']);
export type NodeLifecycle = z.infer<typeof nodeLifecycle>;

export const nodeRegistration = z.object({
  nodeId,
  address,
  faultDomain: z.string().min(1).max(64),
  upgradeDomain: z.string().min(1).max(64),
  disk: z.string().min(1).max(256),
});
export type NodeRegistration = z.infer<typeof nodeRegistration>;

export const streamManagerRequests = {
  'manager.registerNode': nodeRegistration,
  'manager.heartbeat': z.object({ nodeId, extentCount: byteCount, failed: z.boolean() }),
  'manager.createStream': z.object({ name: z.string().min(1).max(256), replicaCount: z.number().int().min(1).max(replicaListMax).optional() }),
  'manager.getStream': z.object({ streamId: id }),
  /** ownerEpoch (optional): the caller owns the stream at this epoch (docs: "Owner epochs"). */
  'manager.sealAndExtend': z.object({ streamId: id, extentId: id, ownerEpoch: epoch.optional() }),
  /** Garbage collection by the stream's owner (docs: "Dropping extents"): sealed, non-tail extents. */
  'manager.dropExtents': z.object({ streamId: id, extentIds: z.array(id).min(1).max(dropExtentsPerCallMax), ownerEpoch: epoch }),
  'manager.reportCorruption': z.object({ extentId: id, nodeId }),
  'manager.liveReplicas': z.object({ nodeId }),
  'manager.releaseToken': z.object({ nodeId }),
  'manager.checkToken': z.object({ token: z.string().min(1).max(4096) }),
} as const;

export type StreamManagerMethod = keyof typeof streamManagerRequests;

// ---- MetaStore records (JSON values under sm/) ----------------------------------------------

export const nodeRecord = nodeRegistration.extend({
  lifecycle: nodeLifecycle,
  /** Incremented by every placement on this node; voids release tokens issued before. */
  placementVersion: z.number().int().nonnegative(),
});
export type NodeRecord = z.infer<typeof nodeRecord>;

export const extentRecord = z.object({
  extentId: id,
  streamId: id,
  /** Node ids; [0] is the primary. */
  replicas: z.array(nodeId).min(1).max(replicaListMax),
  state: extentStateSchema,
  createdEpoch: epoch,
  /** Sealed while every answering replica was damaged (docs: "Seal", step 2): P1 cannot be
   * proven for it; its readers must verify it. Absent on every other extent. */
  sealedOverDamage: z.literal(true).optional(),
});
export type ExtentRecord = z.infer<typeof extentRecord>;

export const streamRecord = z.object({
  streamId: id,
  name: z.string(),
  replicaCount: z.number().int().min(1).max(replicaListMax),
  extentIds: z.array(id),
  /** Highest owner epoch seen (absent = 0); older owners are refused (docs: "Owner epochs"). */
  ownerEpoch: epoch.optional(),
});
export type StreamRecord = z.infer<typeof streamRecord>;

/** A dropped extent whose replicas on `nodeIds` have not confirmed extent.remove yet. */
export const removalRecord = z.object({
  extentId: id,
  streamId: id,
  nodeIds: z.array(nodeId).max(replicaListMax),
});
export type RemovalRecord = z.infer<typeof removalRecord>;

/** What clients get for an extent: the record with replica addresses resolved. */
export interface ExtentView {
  readonly extentId: number;
  readonly streamId: number;
  readonly replicas: readonly ReplicaLocation[];
  readonly state: z.infer<typeof extentStateSchema>;
  readonly epoch: number;
}

export interface StreamView {
  readonly streamId: number;
  readonly name: string;
  readonly extents: readonly ExtentView[];
  /** The stream's owner epoch when the extent list was read (absent = 0). */
  readonly ownerEpoch?: number | undefined;
}

export interface SealAndExtendRequest {
  readonly streamId: number;
  readonly extentId: number;
  /** The caller owns the stream at this epoch: lower than the stream's → stream.fenced; higher → takeover. */
  readonly ownerEpoch?: number | undefined;
}

export interface DropExtentsRequest {
  readonly streamId: number;
  /** Sealed extents of the stream, none of them its tail; 1..dropExtentsPerCallMax. */
  readonly extentIds: readonly number[];
  /** The caller owns the stream at this epoch: it must equal the stream's recorded owner epoch. */
  readonly ownerEpoch: number;
}

/**
 * The stream manager as clients and nodes call it: implemented in-process by StreamManager and
 * over the network by a proxy, so the embedded mode and the cluster share the client code.
 */
export interface StreamManagerApi {
  registerNode(registration: NodeRegistration): Promise<{ epoch: number }>;
  heartbeat(beat: { nodeId: string; extentCount: number; failed: boolean }): Promise<{ epoch: number }>;
  createStream(request: { name: string; replicaCount?: number }): Promise<StreamView>;
  getStream(streamId: number): Promise<StreamView>;
  sealAndExtend(request: SealAndExtendRequest): Promise<StreamView>;
  /** Removes extents from a stream (txn), then from their replicas; answers the ids it removed. */
  dropExtents(request: DropExtentsRequest): Promise<{ dropped: readonly number[] }>;
  reportCorruption(report: { extentId: number; nodeId: string }): Promise<void>;
  liveReplicas(nodeId: string): Promise<readonly number[]>;
  releaseToken(nodeId: string): Promise<string>;
  checkToken(token: string): Promise<boolean>;
}

/** Parses an RPC header with a schema; a bad header is a caller bug → config.invalid. */
export function parseHeader<T>(schema: z.ZodType<T>, header: RpcHeader, method: string): T {
  const result = safeParseFast(schema, header);
  if (!result.success) {
    throw new StorageError('config.invalid', `bad ${method} request: ${result.error.message}`);
  }
  return result.data;
}

export function extentKey(extentId: number): string {
  return `sm/extents/${extentId.toString(16).padStart(16, '0')}`;
}

export function streamKey(streamId: number): string {
  return `sm/streams/${streamId.toString(16).padStart(16, '0')}`;
}

export function removalKey(extentId: number): string {
  return `sm/removals/${extentId.toString(16).padStart(16, '0')}`;
}

export function nodeKey(nodeIdValue: string): string {
  return `sm/nodes/${nodeIdValue}`;
}
