// PartitionBlobBackend: the Blob service's semantics over the partition layer — the
// BlobBackend the front end dispatches to (src/frontend/blob-backend.ts, its contract in the
// header), implemented on BlobTables (blob-tables.ts; PartitionClient satisfies it) with an
// injected Clock for leases, snapshots and expiry. The row layout is docs/blob-schema.md.
//
// Wiring (kura serve / cluster front ends):
//   const blobs = new PartitionBlobBackend({ tables: partitionClient, clock });
//   new FrontendServer({ backend: blobs, corsRules: blobs.corsRules, authorizer: new Authorizer({
//     …, storedPolicy: blobs.storedPolicy, publicAccess: blobs.publicAccess }) , … })
//
// Invariants: stateless (every call reads what it needs from the partition; nothing is cached
// across calls), so any number of front ends may share the tables; each operation family is a
// plain object of functions over one BlobServiceContext.
// Fault model: see context.ts; nothing here retries a write whose outcome is unknown.

import type { Logger } from 'pino';
import { frontendDataCacheBytes, frontendDataCacheEntryMsMax, frontendDataCachePieceBytesMax, inlineBodyBytesDefault, inlineBodyBytesLimit, writtenBlobHintsMax } from '../../constants.ts';
import { LruCache } from '../../util/lru-cache.ts';
import { assert } from '../../util/assert.ts';
import type { Clock } from '../../util/clock.ts';
import type { Random } from '../../util/random.ts';
import type { CorsRulesLookup } from '../cors.ts';
import type { PublicAccessLookup } from '../auth/authorizer.ts';
import type { StoredPolicyLookup } from '../auth/sas.ts';
import type {
  AppendBlobBackend, BlobBackend, BlobObjectBackend, BlockBlobBackend, ContainerBackend, ServiceBackend,
} from '../blob-backend.ts';
import { appendBlock, createAppendBlob, sealAppendBlob } from './append-blobs.ts';
import {
  deleteBlob, getBlob, getBlobProperties, getBlobTags, leaseBlob, setBlobMetadata, setBlobProperties, setBlobTags, setBlobTier,
} from './blob-objects.ts';
import type { BlobTables } from './blob-tables.ts';
import { copyBlob, getBlockList, putBlob, putBlock, putBlockFromUrl, putBlockList } from './block-blobs.ts';
import {
  createContainer, deleteContainer, getContainerAcl, getContainerProperties, leaseContainer, setContainerAcl, setContainerMetadata,
} from './containers.ts';
import { ContainerSweeper } from './container-sweep.ts';
import { SweepWake } from './sweep-wake.ts';
import { incarnationHints, type BlobServiceContext, type BlobServiceStats } from './context.ts';
import { DataCache } from './data-cache.ts';
import { listBlobs, listContainers } from './listing.ts';
import { findBlobsByTags } from './tag-index.ts';
import {
  accountInformation, corsRules, getBlobServiceProperties, publicAccess, serviceStats, setBlobServiceProperties, storedPolicy,
} from './service.ts';
import { snapshotBlob } from './snapshots.ts';
import { abortCopyBlob, copyFromRemoteUrl, putBlockFromRemoteUrl, RemoteCopies, startRemoteCopy } from './remote-copy.ts';
import { copySourceOptionsDefault, type CopySourceOptions } from './remote-source.ts';

export interface PartitionBlobBackendOptions {
  readonly tables: BlobTables;
  readonly clock: Clock;
  /** New ids from this source (a seeded simulation); node:crypto if absent. */
  readonly random?: Random;
  /** Copy sources outside Kura: host policy and limits (docs/copy-sources.md); default: public hosts. */
  readonly copySource?: CopySourceOptions & { readonly progressIntervalMs?: number };
  /** Put Blob bodies of 1..this many bytes go inline in the blob row, one durable append per small
   * Put Blob (docs/blob-schema.md, "Inline bodies"); 0 = off. Default inlineBodyBytesDefault, at most inlineBodyBytesLimit. */
  readonly inlineBodyBytesMax?: number;
  /** Bytes of small data-stream pieces cached by ref (data-cache.ts); 0 = off. Default frontendDataCacheBytes. */
  readonly dataCacheBytes?: number;
  /** Where the background sweep reports what needs an operator (a scan cursor the partition refused). */
  readonly logger?: Pick<Logger, 'warn'>;
}

export class PartitionBlobBackend implements BlobBackend {
  readonly service: ServiceBackend;
  readonly container: ContainerBackend;
  readonly blockBlob: BlockBlobBackend;
  readonly appendBlob: AppendBlobBackend;
  readonly blob: BlobObjectBackend;
  /** For FrontendServer's corsRules option. */
  readonly corsRules: CorsRulesLookup;
  /** For the Authorizer's publicAccess and storedPolicy options. */
  readonly publicAccess: PublicAccessLookup;
  readonly storedPolicy: StoredPolicyLookup;
  readonly #stats: BlobServiceStats = { raceRetries: 0, raceExhausted: 0 };
  /** Removes deleted containers' rows in the background; the owner starts and stops it. */
  readonly sweeper: ContainerSweeper;
  /** Small data-stream pieces read lately (data-cache.ts); null when off. */
  readonly dataCache: DataCache | null;
  /** Fetches copy sources outside Kura and runs asynchronous copies' transfers. */
  readonly copies: RemoteCopies;
  /** Everything this backend does beside requests: the sweep (started by the owner) and the
   * copies' transfers (stopped with it). */
  readonly background: { start(): void; stop(): Promise<void>; counts(): ReturnType<ContainerSweeper['counts']> };

  constructor(options: PartitionBlobBackendOptions) {
    const inlineBodyBytesMax = options.inlineBodyBytesMax ?? inlineBodyBytesDefault;
    const dataCacheBytes = options.dataCacheBytes ?? frontendDataCacheBytes;
    this.dataCache = dataCacheBytes === 0 ? null : new DataCache({ bytesMax: dataCacheBytes, pieceBytesMax: frontendDataCachePieceBytesMax, entryMsMax: frontendDataCacheEntryMsMax, clock: options.clock });
    assert(Number.isSafeInteger(inlineBodyBytesMax) && inlineBodyBytesMax >= 0 && inlineBodyBytesMax <= inlineBodyBytesLimit, 'inlineBodyBytesMax is 0..inlineBodyBytesLimit');
    const ctx: BlobServiceContext = {
      tables: options.tables, clock: options.clock, stats: this.#stats, inlineBodyBytesMax, incarnations: incarnationHints(), writtenBlobs: new LruCache(writtenBlobHintsMax), ...(options.random === undefined ? {} : { random: options.random }),
      ...(this.dataCache === null ? {} : { dataCache: this.dataCache }), sweepWake: new SweepWake(),
    };
    this.sweeper = new ContainerSweeper(ctx, options.logger === undefined ? {} : { logger: options.logger });
    const copies = new RemoteCopies(options.copySource ?? copySourceOptionsDefault);
    this.copies = copies;
    this.background = {
      start: () => this.sweeper.start(),
      stop: async () => { await copies.stop(); await this.sweeper.stop(); },
      counts: () => this.sweeper.counts(),
    };
    this.service = {
      getBlobServiceProperties: (op) => getBlobServiceProperties(ctx, op.account),
      setBlobServiceProperties: (op, properties) => setBlobServiceProperties(ctx, op.account, properties),
      getServiceStats: () => Promise.resolve(serviceStats()),
      listContainers: (op) => listContainers(ctx, op),
      getAccountInformation: () => Promise.resolve(accountInformation()),
      findBlobsByTags: (op) => findBlobsByTags(ctx, op),
    };
    this.container = {
      createContainer: (op) => createContainer(ctx, op),
      getContainerProperties: (op) => getContainerProperties(ctx, op),
      setContainerMetadata: (op) => setContainerMetadata(ctx, op),
      getContainerAcl: (op) => getContainerAcl(ctx, op),
      setContainerAcl: (op, identifiers) => setContainerAcl(ctx, op, identifiers),
      deleteContainer: (op) => deleteContainer(ctx, op),
      leaseContainer: (op) => leaseContainer(ctx, op),
      listBlobs: (op) => listBlobs(ctx, op),
    };
    this.blockBlob = {
      putBlob: (op, body, call) => putBlob(ctx, op, body, call),
      putBlock: (op, body) => putBlock(ctx, op, body),
      putBlockList: (op, blocks, call) => putBlockList(ctx, op, blocks, call),
      getBlockList: (op) => getBlockList(ctx, op),
      putBlockFromUrl: (op, call) => (op.source.local ? putBlockFromUrl(ctx, op) : putBlockFromRemoteUrl(ctx, copies, op, call)),
      copyBlob: (op, call) => (op.source.local ? copyBlob(ctx, op, call) : startRemoteCopy(ctx, copies, op, call)),
      copyBlobFromUrl: (op, call) => (op.source.local ? copyBlob(ctx, op, call) : copyFromRemoteUrl(ctx, copies, op, call)),
      abortCopyBlob: (op) => abortCopyBlob(ctx, copies, op),
    };
    this.appendBlob = {
      createAppendBlob: (op, call) => createAppendBlob(ctx, op, call),
      appendBlock: (op, body) => appendBlock(ctx, op, body),
      sealAppendBlob: (op) => sealAppendBlob(ctx, op),
    };
    this.blob = {
      getBlob: (op, call) => getBlob(ctx, op, call),
      getBlobProperties: (op) => getBlobProperties(ctx, op),
      setBlobProperties: (op) => setBlobProperties(ctx, op),
      setBlobMetadata: (op) => setBlobMetadata(ctx, op),
      setBlobTags: (op, tags) => setBlobTags(ctx, op, tags),
      getBlobTags: (op) => getBlobTags(ctx, op),
      deleteBlob: (op) => deleteBlob(ctx, op),
      snapshotBlob: (op) => snapshotBlob(ctx, op),
      leaseBlob: (op) => leaseBlob(ctx, op),
      setBlobTier: (op) => setBlobTier(ctx, op),
    };
    this.corsRules = (account) => corsRules(ctx, account);
    this.publicAccess = (account, container) => publicAccess(ctx, account, container);
    this.storedPolicy = (account, container, id) => storedPolicy(ctx, account, container, id);
  }

  stats(): BlobServiceStats {
    return { ...this.#stats };
  }
}
