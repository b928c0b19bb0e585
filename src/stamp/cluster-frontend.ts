// ClusterFrontend: the `kura frontend` role (docs/cluster.md, "Front ends"): a stateless Blob
// endpoint over a cluster's partition layer. The same FrontendServer, PartitionBlobBackend and
// Authorizer as the embedded stamp (frontend-assembly.ts); the PartitionClient talks TCP to the
// partition servers and reads the partition map from the MetaStore (etcd).
//
//   start: wait for pm/map ──► load the accounts (creating devstoreaccount1 in a fresh cluster,
//          conditionally) ──► listen ──► "frontend listening" { address } ──► background work
//          (the deleted-container sweep; the accounts re-read every accountsRefreshMs, so
//          `kura account --etcd` changes are served; copy transfers run as copies start)
//   drain: stop the background work (copy transfers aborted: their rows read failed once stale),
//          stop accepting, let requests in flight finish (bounded), close
// Every front end sweeps deleted containers: several sweepers are safe and split the work by
// claims (container-sweep.ts, docs/blob-schema.md "Deleted containers").
//
// Invariants: it listens only once the map is readable and the accounts are loaded, so a client
// that can connect is served; devstoreaccount1 is created with If-None-Match * (AccountStore), so
// front ends starting together create one row; no state survives a request.
// Fault model: etcd or partition servers may not be up yet (start waits, retrying every
// frontendStartPollMs, until told to stop); they may fail later (requests answer 500/503 through
// the error table and the Azure client retries); the process may be killed at any point (nothing
// to recover).
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { accountsRefreshMs, frontendStartPollMs } from '../constants.ts';
import type { FrontendServer } from '../frontend/http-server.ts';
import type { MetaStore } from '../metastore/meta-store.ts';
import { PartitionClient } from '../partition/partition-client.ts';
import { readMap } from '../partition/partition-map.ts';
import type { Network } from '../rpc/network.ts';
import { AssertionFailure } from '../util/assert.ts';
import type { Clock } from '../util/clock.ts';
import { isStorageError } from '../util/errors.ts';
import { AccountRefresher } from './account-refresher.ts';
import { AccountStore } from './account-store.ts';
import type { BlobRaceCounts } from '../observability/blob-race-metrics.ts';
import type { BlobSweepCounts } from '../observability/blob-sweep-metrics.ts';
import type { CopySourceOptions } from '../frontend/blob-service/remote-source.ts';
import { assembleFrontend, listenFrontend, type BackendFactory, type BackgroundTask } from './frontend-assembly.ts';

export interface ClusterFrontendOptions {
  readonly metaStore: MetaStore;
  readonly network: Network;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly host: string;
  /** 0 picks a free port (logged). */
  readonly port: number;
  readonly createBackend?: BackendFactory;
  readonly apiVersionLatest?: string;
  /** Copy sources outside Kura (docs/copy-sources.md); default: public hosts only. */
  readonly copySource?: CopySourceOptions;
  /** How often the accounts are re-read (default accountsRefreshMs). */
  readonly accountsRefreshMs?: number;
  /** Put Blob bodies inlined in the blob row up to this size (docs/blob-schema.md, "Inline bodies"); 0 = off; default inlineBodyBytesDefault. */
  readonly inlineBodyBytesMax?: number;
  /** Bytes of the front end's cache of small data-stream pieces (data-cache.ts); 0 = off; default frontendDataCacheBytes. */
  readonly dataCacheBytes?: number;
}

export type FrontendPhase =
  | { readonly kind: 'waiting_for_map' }
  | { readonly kind: 'loading_accounts' }
  | { readonly kind: 'serving'; readonly address: string }
  | { readonly kind: 'draining' }
  | { readonly kind: 'stopped' };

/** Failed start attempts between two log lines (the first is always logged). */
const startFailuresPerLog = 20;

export class ClusterFrontend {
  private readonly options: ClusterFrontendOptions;
  private readonly logger: Logger;
  private state: FrontendPhase = { kind: 'waiting_for_map' };
  private server: FrontendServer | null = null;
  /** The backend's background work (deleted-container sweep, copy transfers): runs while serving. */
  private background: BackgroundTask | null = null;
  /** Reads the backend's condition-race counts (null before it serves, or with a backend that has none). */
  private readRaceCounts: (() => BlobRaceCounts) | null = null;
  private tables: PartitionClient | null = null;
  private accountRefresher: AccountRefresher | null = null;

  constructor(options: ClusterFrontendOptions) {
    this.options = options;
    this.logger = options.logger.child({ component: 'cluster-frontend' });
  }

  get phase(): FrontendPhase {
    return this.state;
  }

  /** Waits for the cluster, then listens. False if `signal` aborted the start first. */
  async start(signal: AbortSignal): Promise<boolean> {
    const { metaStore, network, clock } = this.options;
    const map = await this.retryUntil(signal, 'partition map not readable yet', () => readMap(metaStore));
    if (map === null) return false;
    this.state = { kind: 'loading_accounts' };
    const tables = new PartitionClient({ metaStore, network, clock });
    this.tables = tables;
    tables.followMap();
    const accounts = await this.retryUntil(signal, 'accounts not loadable yet', () => AccountStore.open({ tables, clock }));
    if (accounts === null) return false;
    const server = assembleFrontend({
      tables, accounts, clock, logger: this.options.logger,
      ...(this.options.createBackend === undefined ? {} : { createBackend: this.options.createBackend }),
      ...(this.options.apiVersionLatest === undefined ? {} : { apiVersionLatest: this.options.apiVersionLatest }),
      ...(this.options.copySource === undefined ? {} : { copySource: this.options.copySource }),
      ...(this.options.inlineBodyBytesMax === undefined ? {} : { inlineBodyBytesMax: this.options.inlineBodyBytesMax }),
      ...(this.options.dataCacheBytes === undefined ? {} : { dataCacheBytes: this.options.dataCacheBytes }),
      onBackground: (task) => { this.background = task; },
      onRaceCounts: (read) => { this.readRaceCounts = read; },
    });
    this.server = server;
    const port = await listenFrontend(server, this.options);
    // Every front end sweeps: the sweep is idempotent and graveyards are claimed (container-sweep.ts).
    this.background?.start();
    this.accountRefresher = new AccountRefresher({ accounts, clock, logger: this.logger, intervalMs: this.options.accountsRefreshMs ?? accountsRefreshMs });
    this.accountRefresher.start();
    const host = this.options.host;
    const address = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    this.state = { kind: 'serving', address };
    this.logger.info({ address, accounts: accounts.list().length, mapVersion: map.map.version }, 'frontend listening');
    return true;
  }

  /** Serves a client connection accepted elsewhere (dev-cluster's balancer hands them over): false
   * unless serving or draining (a draining server answers its requests 503, as on a kept-alive
   * connection). */
  acceptConnection(socket: Socket): boolean {
    const server = this.server;
    if (server === null || (this.state.kind !== 'serving' && this.state.kind !== 'draining')) return false;
    server.server.emit('connection', socket);
    return true;
  }

  /** The background sweep's counts (null before it serves, or with a backend that has none). */
  sweepCounts(): BlobSweepCounts | null {
    return this.background?.counts?.() ?? null;
  }

  /** The backend's condition-race counts (null before it serves, or with a backend that has none). */
  raceCounts(): BlobRaceCounts | null {
    return this.readRaceCounts?.() ?? null;
  }

  /** Graceful stop: in-flight requests finish for at most timeoutMs, the rest are cut. */
  async drain(timeoutMs: number): Promise<{ inFlight: number; cut: number }> {
    this.state = { kind: 'draining' };
    await this.background?.stop();
    await this.accountRefresher?.stop();
    const inFlight = this.server?.inFlight ?? 0;
    const cut = this.server === null ? 0 : (await this.server.close({ drainMs: timeoutMs })).cut;
    this.tables?.close();
    this.state = { kind: 'stopped' };
    this.logger.info({ inFlight, cut }, 'frontend drained');
    return { inFlight, cut };
  }

  /** Calls `attempt` every frontendStartPollMs until it returns a value, or null once the signal aborts. */
  private async retryUntil<T>(signal: AbortSignal, what: string, attempt: () => Promise<T | null>): Promise<T | null> {
    for (let failures = 0; !signal.aborted; failures++) {
      try {
        const value = await attempt();
        if (value !== null) return value;
        if (failures % startFailuresPerLog === 0) this.logger.info({ phase: this.state.kind, failures }, what);
      } catch (error) {
        if (error instanceof AssertionFailure || !isStorageError(error)) throw error;
        if (failures % startFailuresPerLog === 0) this.logger.warn({ phase: this.state.kind, failures, code: error.code, message: error.message }, what);
      }
      await this.options.clock.sleep(frontendStartPollMs);
    }
    return null;
  }
}
