// The MetaStore over the simulated network (docs/simulation.md, "What runs"): the manager role
// serves its EmbeddedMetaStore at `meta:*` methods, and partition servers, partition managers,
// the front end's PartitionClient and the operator reach it through MetaStoreProxy, so a network
// partition or a crash of the manager's host cuts them off from it exactly as from etcd.
//
// The service also tells the OwnershipMonitor (sim/ownership.ts) the store's side of every lease:
// when it was granted or kept alive (receipt time + ttl is the earliest it can expire) and when it
// was revoked. That is the clock the "no acknowledgement after the lease lapsed" checker uses.
//
// Invariants: every request is parsed with a schema before it reaches the store; errors of the
// store are StorageErrors and cross the wire with their code (meta.lease_expired stays itself).
// Sim-only: src/ talks to etcd in a cluster; this stands in for it. The simulated network carries
// calls, not streams, so the proxy's watchKey reads the key every watchPollMs (the cadence of the
// partition servers' map poll before they watched it) and reports a changed modRevision, the first
// answer, and the first answer after a failed read (a reconnection), as the contract asks.
import { z } from 'zod';
import type { KeyValue, KeyWatch, MetaStore, RangeOptions, Txn, TxnResult } from '../src/metastore/meta-store.ts';
import type { Clock, TimerHandle } from '../src/util/clock.ts';
import type { Network, RpcRequest, RpcResponse, RpcServer } from '../src/rpc/network.ts';
import { parseHeader } from '../src/stream/protocol.ts';
import { StorageError } from '../src/util/errors.ts';
import { bodyBytes } from '../src/util/body-parts.ts';
import type { OwnershipMonitor } from './ownership.ts';

export const metaAddress = 'sm:2';
const noBody = Buffer.alloc(0);
const deadlineMs = 10_000;
const watchPollMs = 250;

const keyValue = z.object({ key: z.string(), value: z.string(), modRevision: z.number().int(), lease: z.number().int() });
const txnSchema = z.object({
  compare: z.array(z.object({ key: z.string(), modRevision: z.number().int().nonnegative() })),
  success: z.array(z.union([
    z.object({ kind: z.literal('put'), key: z.string(), value: z.string(), lease: z.number().int().nonnegative().optional() }),
    z.object({ kind: z.literal('delete'), key: z.string() }),
  ])),
});
const requests = {
  'meta.get': z.object({ key: z.string() }),
  'meta.range': z.object({ start: z.string(), end: z.string(), limit: z.number().int().positive().optional() }),
  'meta.txn': z.object({}),
  'meta.grantLease': z.object({ ttlMs: z.number().int().positive() }),
  'meta.keepAlive': z.object({ lease: z.number().int().positive() }),
  'meta.revokeLease': z.object({ lease: z.number().int().positive() }),
} as const;
type MetaMethod = keyof typeof requests;

function isMetaMethod(method: string): method is MetaMethod {
  return Object.hasOwn(requests, method);
}

function json(value: unknown): RpcResponse {
  return { header: {}, body: Buffer.from(JSON.stringify(value), 'utf8') };
}

/** Serves `store` at `address`; lease events go to `monitor` at the store's (receipt) time. */
export function serveMetaStore(options: { network: Network; address: string; store: MetaStore; monitor: OwnershipMonitor; nowMs: () => number }): Promise<RpcServer> {
  return options.network.listen(options.address, (request) => dispatch(options, request));
}

async function dispatch(options: { store: MetaStore; monitor: OwnershipMonitor; nowMs: () => number }, request: RpcRequest): Promise<RpcResponse> {
  const { store, monitor } = options;
  const method = request.method;
  if (!isMetaMethod(method)) throw new StorageError('config.invalid', `the MetaStore has no method ${JSON.stringify(method)}`);
  const receivedMs = options.nowMs();
  switch (method) {
    case 'meta.get':
      return json(await store.get(parseHeader(requests[method], request.header, method).key));
    case 'meta.range': {
      const { start, end, limit } = parseHeader(requests[method], request.header, method);
      return json(await store.range(start, limit === undefined ? { end } : { end, limit }));
    }
    case 'meta.txn': {
      const txn = txnSchema.parse(JSON.parse(bodyBytes(request.body).toString('utf8')));
      const result = await store.txn(txn as Txn);
      if (result.succeeded) monitor.committed(txn as Txn, result.revision);
      return json(result);
    }
    case 'meta.grantLease': {
      const { ttlMs } = parseHeader(requests[method], request.header, method);
      const lease = await store.grantLease(ttlMs);
      monitor.leaseGranted(lease, ttlMs, receivedMs);
      return { header: { lease }, body: noBody };
    }
    case 'meta.keepAlive': {
      const { lease } = parseHeader(requests[method], request.header, method);
      await store.keepAlive(lease);
      monitor.leaseKeptAlive(lease, receivedMs);
      return { header: {}, body: noBody };
    }
    case 'meta.revokeLease': {
      const { lease } = parseHeader(requests[method], request.header, method);
      monitor.leaseGone(lease, receivedMs);
      await store.revokeLease(lease);
      return { header: {}, body: noBody };
    }
  }
}

/** A MetaStore whose every call crosses the network to the manager role's store. */
export class MetaStoreProxy implements MetaStore {
  private readonly network: Network;
  private readonly address: string;
  private readonly clock: Clock;

  constructor(options: { network: Network; clock: Clock; address?: string }) {
    this.network = options.network;
    this.clock = options.clock;
    this.address = options.address ?? metaAddress;
  }

  async get(key: string): Promise<KeyValue | null> {
    return keyValue.nullable().parse(await this.body('meta.get', { key }));
  }

  async range(start: string, options: RangeOptions): Promise<KeyValue[]> {
    return z.array(keyValue).parse(await this.body('meta.range', { start, end: options.end, ...(options.limit === undefined ? {} : { limit: options.limit }) }));
  }

  async txn(txn: Txn): Promise<TxnResult> {
    const response = await this.network.call(this.address, { method: 'meta.txn', header: {}, body: Buffer.from(JSON.stringify(txn), 'utf8') }, { deadlineMs });
    return z.object({ succeeded: z.boolean(), revision: z.number().int() }).parse(JSON.parse(response.body.toString('utf8')));
  }

  async grantLease(ttlMs: number): Promise<number> {
    const response = await this.network.call(this.address, { method: 'meta.grantLease', header: { ttlMs }, body: noBody }, { deadlineMs });
    return z.object({ lease: z.number().int().positive() }).parse(response.header).lease;
  }

  async keepAlive(lease: number): Promise<void> {
    await this.network.call(this.address, { method: 'meta.keepAlive', header: { lease }, body: noBody }, { deadlineMs });
  }

  async revokeLease(lease: number): Promise<void> {
    await this.network.call(this.address, { method: 'meta.revokeLease', header: { lease }, body: noBody }, { deadlineMs });
  }

  /** A watch emulated by reads every watchPollMs (see the header). */
  watchKey(key: string, onChange: () => void): KeyWatch {
    let open = true;
    let timer: TimerHandle | null = null;
    let seenRevision: number | null = null;
    const poll = (): void => {
      void this.get(key).then((kv) => kv?.modRevision ?? 0, () => null).then((revision) => {
        if (!open) return;
        if (revision !== null && revision !== seenRevision) onChange();
        seenRevision = revision;
        timer = this.clock.setTimer(watchPollMs, poll);
      });
    };
    poll();
    return {
      close: () => {
        open = false;
        timer?.cancel();
      },
    };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private async body(method: MetaMethod, header: Record<string, string | number>): Promise<unknown> {
    const response = await this.network.call(this.address, { method, header, body: noBody }, { deadlineMs });
    return JSON.parse(response.body.toString('utf8'));
  }
}
