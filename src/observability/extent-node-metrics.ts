// Prometheus metrics of extent nodes (docs/metrics.md): counters and latency histograms fed by
// the stream layer's diagnostics channels (src/util/stream-events.ts), and gauges read from the
// watched nodes at scrape time (collect callbacks). One instance serves every node of a process
// (embedded mode runs several), so every series carries a `node` label.
//
// Invariants:
// - nothing here is on a hot path's critical section: channel listeners only add to counters,
//   and never throw (a throwing diagnostics_channel subscriber surfaces in the publisher);
// - a watched node's error counters (corruption, failed appends) exist at 0 from the start, so
//   an alert on increase() fires on the first event, not on the second;
// - observability imports no stream code (STYLE.md principle 6): nodes are seen through the
//   structural ExtentNodeSource interface below.
// Fault model: a scrape may run at any time, also while a node stops; gauges then read the
// node's last state. Events of nodes that are not watched still count (under their node label).
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import { streamEvents } from '../util/stream-events.ts';
import type { ExtentAppendEvent, ExtentCopyEvent, ExtentCorruptionEvent, ExtentReadEvent, ExtentSealEvent } from '../util/stream-events.ts';

/** What metrics read from an extent node (ExtentNode satisfies it). */
export interface ExtentNodeSource {
  readonly nodeId: string;
  readonly ready: boolean;
  status(): {
    readonly failed: boolean;
    readonly registered: boolean;
    readonly extentCount: number;
    readonly highestEpoch: number;
    readonly damagedExtentIds: readonly number[];
  };
  storeStats(): {
    readonly appendFsyncs: number;
    readonly extentSyncs: number;
    readonly journal: { readonly fsyncs: number };
    readonly readCache: { readonly hits: number; readonly misses: number; readonly rechecksFailed: number; readonly bytes: number };
  };
  storeRecovery(): {
    readonly unreadableFiles: readonly string[];
    readonly corruptBlocksFound: number;
    readonly tornTailBytesTruncated: number;
    readonly journalRecordsConflicting: number;
  };
  /** How the disk's large writes and reads went (null: a disk without O_DIRECT, e.g. simulated). */
  diskDirectIo(): { readonly writes: LargeIo; readonly reads: LargeIo } | null;
}

/** One direction of a disk's large transfers (src/io/disk.ts LargeIoCounts, seen structurally). */
interface LargeIo {
  readonly mode: string;
  readonly counts: { readonly direct: number; readonly noStagingBuffer: number; readonly refused: number; readonly coverTooLarge: number };
}

/** The `way` label of the large-transfer counters, and the count each reads. */
const largeIoWays = { direct: 'direct', no_staging_buffer: 'noStagingBuffer', refused: 'refused', cover_too_large: 'coverTooLarge' } as const;

/** Latency buckets (seconds): sub-millisecond page-cache reads up to appends stuck on a deadline. */
export const latencyBucketsSeconds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

interface EventMetrics {
  readonly appendBytes: Counter<'node' | 'role'>;
  readonly appendSeconds: Histogram<'node' | 'role' | 'status'>;
  readonly readBytes: Counter<'node'>;
  readonly readSeconds: Histogram<'node' | 'status'>;
  readonly corruption: Counter<'node'>;
  readonly seals: Counter<'node'>;
  readonly sealTruncatedBytes: Counter<'node'>;
  readonly rereplicationBytes: Counter<'node'>;
  readonly rereplicationCopies: Counter<'node' | 'status'>;
}

export class ExtentNodeMetrics {
  private readonly sources = new Map<string, ExtentNodeSource>();
  private readonly events: EventMetrics;
  private readonly unsubscribes: (() => void)[];

  constructor(options: { readonly registry: Registry }) {
    this.events = createEventMetrics(options.registry);
    createSourceMetrics(options.registry, () => [...this.sources.values()]);
    createDiskMetrics(options.registry, () => [...this.sources.values()]);
    this.unsubscribes = this.subscribe();
  }

  /** Adds a node's gauges to every scrape and starts its error counters at 0. */
  watch(node: ExtentNodeSource): void {
    this.sources.set(node.nodeId, node);
    const labels = { node: node.nodeId };
    this.events.corruption.inc(labels, 0);
    this.events.rereplicationBytes.inc(labels, 0);
    this.events.seals.inc(labels, 0);
  }

  unwatch(nodeId: string): void {
    this.sources.delete(nodeId);
  }

  /** Stops listening to the channels (the registry keeps the last values). */
  close(): void {
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
  }

  private subscribe(): (() => void)[] {
    return [
      streamEvents.extentAppend.subscribe((event) => this.onAppend(event)),
      streamEvents.extentRead.subscribe((event) => this.onRead(event)),
      streamEvents.extentCorruption.subscribe((event) => this.onCorruption(event)),
      streamEvents.extentSeal.subscribe((event) => this.onSeal(event)),
      streamEvents.extentCopy.subscribe((event) => this.onCopy(event)),
    ];
  }

  private onAppend(event: ExtentAppendEvent): void {
    this.events.appendSeconds.observe({ node: event.nodeId, role: event.role, status: event.status }, event.durationMs / 1000);
    if (event.status === 'ok') this.events.appendBytes.inc({ node: event.nodeId, role: event.role }, event.bytes);
  }

  private onRead(event: ExtentReadEvent): void {
    this.events.readSeconds.observe({ node: event.nodeId, status: event.status }, event.durationMs / 1000);
    if (event.status === 'ok') this.events.readBytes.inc({ node: event.nodeId }, event.bytes);
  }

  private onCorruption(event: ExtentCorruptionEvent): void {
    this.events.corruption.inc({ node: event.nodeId });
  }

  private onSeal(event: ExtentSealEvent): void {
    this.events.seals.inc({ node: event.nodeId });
    this.events.sealTruncatedBytes.inc({ node: event.nodeId }, event.truncatedBytes);
  }

  private onCopy(event: ExtentCopyEvent): void {
    this.events.rereplicationCopies.inc({ node: event.nodeId, status: event.status });
    if (event.status === 'ok') this.events.rereplicationBytes.inc({ node: event.nodeId }, event.bytes);
  }
}

function createEventMetrics(registry: Registry): EventMetrics {
  const registers = [registry];
  return {
    appendBytes: new Counter({ name: 'kura_extent_append_bytes_total', help: 'Bytes appended durably to local replicas (role: primary for client appends, secondary for replicated ones).', labelNames: ['node', 'role'], registers }),
    appendSeconds: new Histogram({ name: 'kura_extent_append_seconds', help: 'Append latency at the extent node, from request to ack (primary: local and every secondary durable), by outcome.', labelNames: ['node', 'role', 'status'], buckets: latencyBucketsSeconds, registers }),
    readBytes: new Counter({ name: 'kura_extent_read_bytes_total', help: 'Bytes served by verified reads (every block CRC-checked).', labelNames: ['node'], registers }),
    readSeconds: new Histogram({ name: 'kura_extent_read_seconds', help: 'Read latency at the extent node, by outcome (extent.corrupt when a block failed its check).', labelNames: ['node', 'status'], buckets: latencyBucketsSeconds, registers }),
    corruption: new Counter({ name: 'kura_extent_corruption_total', help: 'Blocks of local replicas that failed their CRC or header check (on read, scrub, copy or recovery).', labelNames: ['node'], registers }),
    seals: new Counter({ name: 'kura_extent_seal_total', help: 'Local replicas sealed.', labelNames: ['node'], registers }),
    sealTruncatedBytes: new Counter({ name: 'kura_extent_seal_truncated_bytes_total', help: 'Bytes cut from local replicas because the manager sealed them shorter (unacknowledged tails).', labelNames: ['node'], registers }),
    rereplicationBytes: new Counter({ name: 'kura_rereplication_bytes_total', help: 'Bytes of sealed replicas copied to this node by completed re-replication copies.', labelNames: ['node'], registers }),
    rereplicationCopies: new Counter({ name: 'kura_rereplication_copies_total', help: 'Re-replication copies to this node, by outcome.', labelNames: ['node', 'status'], registers }),
  };
}

/** Gauges and store counters read from the watched nodes at each scrape. */
function createSourceMetrics(registry: Registry, sources: () => readonly ExtentNodeSource[]): void {
  const registers = [registry];
  const perNode = (name: string, help: string, value: (node: ExtentNodeSource) => number): void => {
    new Gauge({
      name, help, labelNames: ['node'], registers,
      collect() {
        this.reset();
        for (const node of sources()) this.set({ node: node.nodeId }, value(node));
      },
    });
  };
  perNode('kura_extent_node_failed', '1 when the node\'s local disk failed, also by a background sync with no request in flight (it reports failed to the manager and must be repaired), else 0.', (node) => (node.status().failed ? 1 : 0));
  perNode('kura_extent_node_ready', '1 when the node serves (store open, not stopping, disk not failed), else 0; the same as GET /readyz.', (node) => (node.ready ? 1 : 0));
  perNode('kura_extent_node_registered', '1 when the node is registered with the stream manager, else 0.', (node) => (node.status().registered ? 1 : 0));
  perNode('kura_extent_node_extents', 'Extent replicas held by the node.', (node) => node.status().extentCount);
  perNode('kura_extent_node_damaged_extents', 'Replicas marked damaged (recovery could not prove they hold every acknowledged append): they take no appends and are replaced.', (node) => node.status().damagedExtentIds.length);
  perNode('kura_extent_node_epoch', 'Highest stream-manager epoch the node has seen (commands of lower epochs are refused).', (node) => node.status().highestEpoch);
  perNode('kura_extent_recovery_unreadable_files', 'Extent files the last start could not read (bad header or name): left untouched, not served.', (node) => node.storeRecovery().unreadableFiles.length);
  perNode('kura_extent_recovery_corrupt_blocks', 'Damaged blocks the last start found in extent files.', (node) => node.storeRecovery().corruptBlocksFound);
  perNode('kura_extent_recovery_torn_tail_bytes', 'Bytes of torn (never acknowledged) tails the last start cut from extent files.', (node) => node.storeRecovery().tornTailBytesTruncated);
  perNode('kura_extent_recovery_conflicting_journal_records', 'Journal records the last start found conflicting with extent files (reported, not applied).', (node) => node.storeRecovery().journalRecordsConflicting);
  new Counter({
    name: 'kura_extent_store_fsyncs_total', help: 'fsyncs issued by the node\'s store, by file kind (journal batches, extent files).', labelNames: ['node', 'file'], registers,
    collect() {
      this.reset();
      for (const node of sources()) {
        const stats = node.storeStats();
        this.inc({ node: node.nodeId, file: 'journal' }, stats.journal.fsyncs);
        this.inc({ node: node.nodeId, file: 'extent' }, stats.appendFsyncs + stats.extentSyncs);
      }
    },
  });
  new Counter({
    name: 'kura_extent_read_cache_reads_total', help: 'Block reads of the node\'s store by read-cache outcome: hit (served from memory, CRC re-checked), miss (read from disk), recheck_failed (a cached body failed its CRC re-check: dropped and read from disk).', labelNames: ['node', 'result'], registers,
    collect() {
      this.reset();
      for (const node of sources()) {
        const { readCache } = node.storeStats();
        this.inc({ node: node.nodeId, result: 'hit' }, readCache.hits);
        this.inc({ node: node.nodeId, result: 'miss' }, readCache.misses);
        this.inc({ node: node.nodeId, result: 'recheck_failed' }, readCache.rechecksFailed);
      }
    },
  });
  perNode('kura_extent_read_cache_bytes', 'Bytes of verified block bodies held by the node\'s read cache (at most extentReadCacheBytes per disk).', (node) => node.storeStats().readCache.bytes);
}

/** The disks' large transfers by way (O_DIRECT, or buffered and why) and whether O_DIRECT was refused. */
function createDiskMetrics(registry: Registry, sources: () => readonly ExtentNodeSource[]): void {
  const registers = [registry];
  const byWay = (name: string, help: string, direction: 'writes' | 'reads', ways: readonly (keyof typeof largeIoWays)[]): void => {
    new Counter({
      name, help, labelNames: ['node', 'way'], registers,
      collect() {
        this.reset();
        for (const node of sources()) {
          const io = node.diskDirectIo()?.[direction];
          if (io === undefined) continue;
          for (const way of ways) this.inc({ node: node.nodeId, way }, io.counts[largeIoWays[way]]);
        }
      },
    });
  };
  byWay('kura_disk_large_writes_total', 'Synced writes whose 4 KiB-aligned middle is at least 1 MiB, by way: direct (O_DIRECT from a staging buffer), no_staging_buffer (every staging buffer lent: buffered with O_DSYNC), refused (the file system refused O_DIRECT: buffered with O_DSYNC).', 'writes', ['direct', 'no_staging_buffer', 'refused']);
  byWay('kura_disk_large_reads_total', 'Reads of at least 1 MiB, by way: direct (O_DIRECT into a staging buffer), no_staging_buffer, refused (the file system refused O_DIRECT), cover_too_large (larger than a staging buffer); all but direct read through the page cache.', 'reads', ['direct', 'no_staging_buffer', 'refused', 'cover_too_large']);
  new Gauge({
    name: 'kura_disk_direct_io_refused', help: '1 once the disk\'s file system refused O_DIRECT (EINVAL) for io=write or io=read: those large transfers go through the page cache from then on (logged once), else 0.', labelNames: ['node', 'io'], registers,
    collect() {
      this.reset();
      for (const node of sources()) {
        const io = node.diskDirectIo();
        if (io === null) continue;
        this.set({ node: node.nodeId, io: 'write' }, io.writes.mode === 'refused' ? 1 : 0);
        this.set({ node: node.nodeId, io: 'read' }, io.reads.mode === 'refused' ? 1 : 0);
      }
    },
  });
}
