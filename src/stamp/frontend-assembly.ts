// The Blob front end's assembly, shared by the embedded stamp (`kura serve`) and the cluster front
// end (`kura frontend`): the same FrontendServer, backend, authoriser and CORS lookups in both
// modes; only what the PartitionClient talks over differs (LocalNetwork or TcpNetwork + etcd).
//
//   FrontendServer ── Authorizer (account keys: AccountStore; stored policies, public access: the
//        │                        backend's rows)
//   BlobBackend (default PartitionBlobBackend over the PartitionClient)
//
// Invariants: the authoriser reads keys from the AccountStore's cache on every request (never a
// copy taken at assembly); the backend's lookups and the server's CORS rules come from the same
// backend instance. Fault model: listening may fail (port taken, address not local): a clear
// config.invalid naming the address.
import type { Logger } from 'pino';
import { Authorizer, type PublicAccessLookup } from '../frontend/auth/authorizer.ts';
import type { StoredPolicyLookup } from '../frontend/auth/sas.ts';
import { notWiredBackend, type BlobBackend } from '../frontend/blob-backend.ts';
import { PartitionBlobBackend } from '../frontend/blob-service/partition-blob-backend.ts';
import type { BlobRaceCounts } from '../observability/blob-race-metrics.ts';
import type { BlobSweepCounts } from '../observability/blob-sweep-metrics.ts';
import type { CopySourceOptions } from '../frontend/blob-service/remote-source.ts';
import type { CorsRulesLookup } from '../frontend/cors.ts';
import { FrontendServer } from '../frontend/http-server.ts';
import type { PartitionClient } from '../partition/partition-client.ts';
import type { Clock } from '../util/clock.ts';
import { StorageError } from '../util/errors.ts';
import type { ReadBufferPool } from '../util/read-buffer-pool.ts';
import type { AccountStore } from './account-store.ts';

/** What a backend may tell the authoriser and CORS about (the blob tables hold them). */
export interface BackendLookups {
  readonly storedPolicy: StoredPolicyLookup;
  readonly publicAccess: PublicAccessLookup;
  readonly corsRules: CorsRulesLookup;
}

/** Background work a backend does beside requests (the deleted-container sweep). */
export interface BackgroundTask {
  start(): void;
  stop(): Promise<void>;
  /** The sweep's counts (kura_container_sweep_* and kura_sweep_intents_* metrics). */
  counts?(): BlobSweepCounts;
}

export interface StampBackend {
  readonly backend: BlobBackend;
  readonly lookups: BackendLookups;
  readonly background?: BackgroundTask;
  /** The backend's condition-race counts (kura_blob_race_* metrics). */
  readonly raceCounts?: () => BlobRaceCounts;
}

/** Builds the Blob service over the partition layer (default: PartitionBlobBackend). */
export type BackendFactory = (context: { readonly tables: PartitionClient; readonly clock: Clock; readonly logger: Logger; readonly copySource?: CopySourceOptions; readonly inlineBodyBytesMax?: number; readonly dataCacheBytes?: number }) => StampBackend;

/** The newest x-ms-version the front end accepts (Azurite 3.37's). */
export const apiVersionLatestDefault = '2026-04-06';

/** The Blob service over the partition layer (docs/blob-schema.md): the default backend. */
export const partitionBlobBackend: BackendFactory = ({ tables, clock, logger, copySource, inlineBodyBytesMax, dataCacheBytes }) => {
  const blobs = new PartitionBlobBackend({
    tables, clock, logger: logger.child({ component: 'sweep' }), ...(copySource === undefined ? {} : { copySource }), ...(inlineBodyBytesMax === undefined ? {} : { inlineBodyBytesMax }), ...(dataCacheBytes === undefined ? {} : { dataCacheBytes }),
  });
  return { backend: blobs, lookups: { storedPolicy: blobs.storedPolicy, publicAccess: blobs.publicAccess, corsRules: blobs.corsRules }, background: blobs.background, raceCounts: () => blobs.stats() };
};

/** A front end with no storage behind it (every operation answers 501): tests of the edge. */
export const notWiredStampBackend: BackendFactory = () => ({
  backend: notWiredBackend(),
  lookups: { storedPolicy: () => Promise.resolve(null), publicAccess: () => Promise.resolve('notFound'), corsRules: () => Promise.resolve([]) },
});

export interface FrontendAssemblyOptions {
  readonly tables: PartitionClient;
  readonly accounts: AccountStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly createBackend?: BackendFactory;
  /** Front-end API version ceiling (x-ms-version). */
  readonly apiVersionLatest?: string;
  /** Copy sources outside Kura: which hosts, which limits (docs/copy-sources.md). */
  readonly copySource?: CopySourceOptions;
  /** Put Blob bodies inlined in the blob row up to this size (docs/blob-schema.md, "Inline bodies"); 0 = off. */
  readonly inlineBodyBytesMax?: number;
  /** Bytes of the front end's cache of small data-stream pieces (data-cache.ts); 0 = off. */
  readonly dataCacheBytes?: number;
  /** Receives the backend's background work, for the caller to start and stop (not started here). */
  readonly onBackground?: (task: BackgroundTask) => void;
  /** Receives how to read the backend's condition-race counts, for the caller's metrics. */
  readonly onRaceCounts?: (read: () => BlobRaceCounts) => void;
  /** The pool this front end's disks read large blocks into, in one process (FrontendServerOptions.readBuffers). */
  readonly readBuffers?: ReadBufferPool;
}

/** The front end over the partition layer, not listening yet. */
export function assembleFrontend(options: FrontendAssemblyOptions): FrontendServer {
  const { clock, accounts } = options;
  const { backend, lookups, background, raceCounts } = (options.createBackend ?? partitionBlobBackend)({
    tables: options.tables, clock, logger: options.logger, ...(options.copySource === undefined ? {} : { copySource: options.copySource }),
    ...(options.inlineBodyBytesMax === undefined ? {} : { inlineBodyBytesMax: options.inlineBodyBytesMax }),
    ...(options.dataCacheBytes === undefined ? {} : { dataCacheBytes: options.dataCacheBytes }),
  });
  if (background !== undefined) options.onBackground?.(background);
  if (raceCounts !== undefined) options.onRaceCounts?.(raceCounts);
  const authorizer = new Authorizer({
    clock, accountKeys: (account) => accounts.keys(account), storedPolicy: lookups.storedPolicy, publicAccess: lookups.publicAccess,
  });
  return new FrontendServer({
    backend, authorizer, clock, corsRules: lookups.corsRules, apiVersionLatest: options.apiVersionLatest ?? apiVersionLatestDefault,
    logger: options.logger.child({ component: 'frontend' }),
    ...(options.readBuffers === undefined ? {} : { readBuffers: options.readBuffers }),
  });
}

/** Listens; a failure (port taken, address not local) is a config.invalid naming the address. */
export async function listenFrontend(frontend: FrontendServer, at: { readonly host: string; readonly port: number }): Promise<number> {
  try {
    return await frontend.listen(at.port, at.host);
  } catch (error) {
    throw new StorageError('config.invalid', `cannot listen for the Blob endpoint on ${at.host}:${at.port}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
}
