// The StreamManagerApi over the Network, both sides: StreamManagerProxy is the client that calls
// the 'manager.*' methods of a remote stream manager, and serveStreamManager is the server-side
// adapter that parses each request header with its zod schema (protocol.ts) and calls an
// in-process StreamManagerApi. Embedded mode calls the StreamManager directly; cluster mode puts
// this pair between the processes, so nodes and clients use one interface either way.
//
//   manager.registerNode / heartbeat      header → { epoch }
//   manager.createStream / getStream /
//           sealAndExtend                 header → body: StreamView as JSON (views grow with the
//                                         stream's extent count, past what a header may hold)
//   manager.dropExtents                   header → body: { dropped } as JSON
//   manager.reportCorruption              header → {}
//   manager.liveReplicas                  header → body: { extentIds } as JSON
//   manager.releaseToken                  header → { token }
//   manager.checkToken                    header → { valid }
//
// Several addresses (cluster mode, docs/cluster.md "Finding the leader"): the proxy is given every
// controller's address; a call goes to the one that answered last, and moves on to the next on
// manager.not_leader (a standby: nothing applied) or rpc.unreachable (nobody listens there), each
// address at most once per call. The server side takes either a StreamManagerApi or a function
// that returns the current one per request (a controller: its leader term's manager, or throws
// manager.not_leader while standing by).
//
// Invariants: every call carries a deadline; every answer is parsed with a schema before use
// (a remote manager's answer is as untrusted as a request); StorageErrors cross unchanged; a call
// is sent to a further address only after an answer that proves the previous one did not apply it
// (not_leader) or could not have received it (unreachable: no connection, or a connection lost, in
// which case the manager's calls are idempotent or leave only garbage: a second created stream).
// Fault model: the manager may be down, slow or restarted; calls then fail with rpc.* errors
// and the caller decides whether to retry (heartbeats retry on their own schedule).
import { z } from 'zod';
import { rpcDeadlineMsDefault, sealAndExtendDeadlineMs } from '../constants.ts';
import type { Network, RpcHeader, RpcRequest, RpcResponse, RpcServer } from '../rpc/network.ts';
import { StorageError, isStorageError } from '../util/errors.ts';
import { parseResponse } from './extent-node-rpc.ts';
import {
  epoch, extentStateSchema, id, parseHeader, replicaLocation, streamManagerRequests,
} from './protocol.ts';
import type { DropExtentsRequest, NodeRegistration, SealAndExtendRequest, StreamManagerApi, StreamManagerMethod, StreamView } from './protocol.ts';

export const extentViewSchema = z.object({
  extentId: id,
  streamId: id,
  replicas: z.array(replicaLocation).min(1),
  state: extentStateSchema,
  epoch,
});

export const streamViewSchema = z.object({
  streamId: id,
  name: z.string(),
  extents: z.array(extentViewSchema),
  ownerEpoch: epoch.optional(),
});

const epochAnswer = z.object({ epoch });
const liveReplicasAnswer = z.object({ extentIds: z.array(id) });
const droppedAnswer = z.object({ dropped: z.array(id) });
const tokenAnswer = z.object({ token: z.string().min(1).max(4096) });
const checkAnswer = z.object({ valid: z.boolean() });
const noBody = Buffer.alloc(0);

export interface StreamManagerProxyOptions {
  readonly network: Network;
  /** "host:port" of the stream manager's RPC server, or of every controller (tried in turn). */
  readonly address: string | readonly string[];
  readonly deadlineMs?: number;
}

export class StreamManagerProxy implements StreamManagerApi {
  private readonly network: Network;
  private readonly addresses: readonly string[];
  private readonly deadlineMs: number;
  /** Index of the address that answered last: the leader, as far as this proxy knows. */
  private preferred = 0;

  constructor(options: StreamManagerProxyOptions) {
    this.network = options.network;
    this.addresses = typeof options.address === 'string' ? [options.address] : [...options.address];
    if (this.addresses.length === 0 || this.addresses.some((address) => address === '')) {
      throw new StorageError('config.invalid', 'a stream manager proxy needs at least one non-empty address');
    }
    this.deadlineMs = options.deadlineMs ?? rpcDeadlineMsDefault;
  }

  async registerNode(registration: NodeRegistration): Promise<{ epoch: number }> {
    return this.callHeader('manager.registerNode', { ...registration }, epochAnswer);
  }

  async heartbeat(beat: { nodeId: string; extentCount: number; failed: boolean }): Promise<{ epoch: number }> {
    return this.callHeader('manager.heartbeat', { ...beat }, epochAnswer);
  }

  async createStream(request: { name: string; replicaCount?: number }): Promise<StreamView> {
    return this.callBody('manager.createStream', { ...request }, streamViewSchema);
  }

  async getStream(streamId: number): Promise<StreamView> {
    return this.callBody('manager.getStream', { streamId }, streamViewSchema);
  }

  async sealAndExtend(request: SealAndExtendRequest): Promise<StreamView> {
    const header = request.ownerEpoch === undefined
      ? { streamId: request.streamId, extentId: request.extentId }
      : { streamId: request.streamId, extentId: request.extentId, ownerEpoch: request.ownerEpoch };
    return this.callBody('manager.sealAndExtend', header, streamViewSchema, Math.max(this.deadlineMs, sealAndExtendDeadlineMs));
  }

  async dropExtents(request: DropExtentsRequest): Promise<{ dropped: readonly number[] }> {
    const header = { streamId: request.streamId, extentIds: [...request.extentIds], ownerEpoch: request.ownerEpoch };
    return this.callBody('manager.dropExtents', header, droppedAnswer, Math.max(this.deadlineMs, sealAndExtendDeadlineMs));
  }

  async reportCorruption(report: { extentId: number; nodeId: string }): Promise<void> {
    await this.call('manager.reportCorruption', { ...report });
  }

  async liveReplicas(nodeId: string): Promise<readonly number[]> {
    return (await this.callBody('manager.liveReplicas', { nodeId }, liveReplicasAnswer)).extentIds;
  }

  async releaseToken(nodeId: string): Promise<string> {
    return (await this.callHeader('manager.releaseToken', { nodeId }, tokenAnswer)).token;
  }

  async checkToken(token: string): Promise<boolean> {
    return (await this.callHeader('manager.checkToken', { token }, checkAnswer)).valid;
  }

  private async call(method: StreamManagerMethod, header: RpcHeader, deadlineMs = this.deadlineMs): Promise<RpcResponse> {
    const start = this.preferred;
    for (let tried = 1; ; tried++) {
      const index = (start + tried - 1) % this.addresses.length;
      try {
        const response = await this.network.call(this.addresses[index] ?? '', { method, header, body: noBody }, { deadlineMs });
        this.preferred = index;
        return response;
      } catch (error) {
        const another = isStorageError(error, 'manager.not_leader') || isStorageError(error, 'rpc.unreachable');
        if (!another || tried >= this.addresses.length) throw error;
      }
    }
  }

  private async callHeader<T>(method: StreamManagerMethod, header: RpcHeader, schema: z.ZodType<T>): Promise<T> {
    const response = await this.call(method, header);
    return parseResponse(schema, response.header, method);
  }

  private async callBody<T>(method: StreamManagerMethod, header: RpcHeader, schema: z.ZodType<T>, deadlineMs = this.deadlineMs): Promise<T> {
    const response = await this.call(method, header, deadlineMs);
    let value: unknown;
    try {
      value = JSON.parse(response.body.toString('utf8'));
    } catch (error) {
      throw new StorageError('rpc.remote', `${method} answered a body that is not JSON`, { cause: error });
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) throw new StorageError('rpc.remote', `malformed ${method} answer: ${parsed.error.message}`);
    return parsed.data;
  }
}

// ---- server side ------------------------------------------------------------------------------

const methods = new Set<string>(Object.keys(streamManagerRequests));

function isStreamManagerMethod(method: string): method is StreamManagerMethod {
  return methods.has(method);
}

function jsonBody(value: unknown): RpcResponse {
  return { header: {}, body: Buffer.from(JSON.stringify(value), 'utf8') };
}

function headerOnly(header: RpcHeader): RpcResponse {
  return { header, body: noBody };
}

/** Serves `api` at `address` on `network`; the returned server's close() stops it. Given a
 * function, it is asked for the manager on every request (it may throw manager.not_leader). */
export function serveStreamManager(network: Network, address: string, api: StreamManagerApi | (() => StreamManagerApi)): Promise<RpcServer> {
  const current = typeof api === 'function' ? api : (): StreamManagerApi => api;
  return network.listen(address, async (request) => dispatchManager(current(), request));
}

async function dispatchManager(api: StreamManagerApi, request: RpcRequest): Promise<RpcResponse> {
  const method = request.method;
  if (!isStreamManagerMethod(method)) throw new StorageError('config.invalid', `stream manager has no method ${JSON.stringify(method)}`);
  const header = request.header;
  switch (method) {
    case 'manager.registerNode':
      return headerOnly(await api.registerNode(parseHeader(streamManagerRequests[method], header, method)));
    case 'manager.heartbeat':
      return headerOnly(await api.heartbeat(parseHeader(streamManagerRequests[method], header, method)));
    case 'manager.createStream': {
      const { name, replicaCount } = parseHeader(streamManagerRequests[method], header, method);
      return jsonBody(await api.createStream(replicaCount === undefined ? { name } : { name, replicaCount }));
    }
    case 'manager.getStream':
      return jsonBody(await api.getStream(parseHeader(streamManagerRequests[method], header, method).streamId));
    case 'manager.sealAndExtend':
      return jsonBody(await api.sealAndExtend(parseHeader(streamManagerRequests[method], header, method)));
    case 'manager.dropExtents':
      return jsonBody(await api.dropExtents(parseHeader(streamManagerRequests[method], header, method)));
    case 'manager.reportCorruption':
      await api.reportCorruption(parseHeader(streamManagerRequests[method], header, method));
      return headerOnly({});
    case 'manager.liveReplicas':
      return jsonBody({ extentIds: await api.liveReplicas(parseHeader(streamManagerRequests[method], header, method).nodeId) });
    case 'manager.releaseToken':
      return headerOnly({ token: await api.releaseToken(parseHeader(streamManagerRequests[method], header, method).nodeId) });
    case 'manager.checkToken':
      return headerOnly({ valid: await api.checkToken(parseHeader(streamManagerRequests[method], header, method).token) });
  }
}
