// Every limit in Kura lives here, each with the reason for its value (STYLE.md principle 2).
// Layers import what they need; nothing else hard-codes a size, count or time.

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** Replicas per extent: three, in three fault domains, as in WAS; fewer only if fewer domains exist. */
export const replicaCountDefault = 3;

/** An extent is sealed and a new one started past this size, so re-replication units stay small
 * enough to copy in seconds (WAS uses 1 GiB; we use less because this project's machines are small). */
export const extentBytesMax = 256 * MiB;

/** Largest record the partition layer makes of its own (a commit-log batch, a checkpoint, a run
 * block, an inline spill) and largest journal record body (journal.md). 4 MiB keeps one such
 * record's buffers and fsync latency bounded. */
export const appendBytesMax = 4 * MiB;
/** Largest single stream append (one extent block record, extent file format v2): a blob body goes
 * to the data stream in pieces of this size. Azure's largest block is 4000 MiB, cut into appends
 * here; the bench's 8 MiB Put Block is one append and one fdatasync (at 4 MiB it was two, and the
 * fsync'd append of 4 MiB measured 10-35 % below 8 MiB per fsync on this disk; bench/README.md
 * "seventh session: large upload"). Only direct appends are this large: a journaled one is below
 * directAppendBytesMin. */
export const dataAppendBytesMax = 8 * MiB;
if (appendBytesMax > dataAppendBytesMax) throw new Error('a partition record must fit one stream append');
/** V8's old-generation limit is kept at least this high while the live heap is under half of it
 * (util/heap-limit-floor.ts): at V8's own ~2× of kura serve's ~22 MB heap, uploads ran a full GC
 * every ~25 MiB received; at 96 MiB, one per ~55-60 MiB (V8's external-memory step then decides).
 * Costs at most 96 MiB less the live heap's own limit of extra heap. `KURA_HEAP_FLOOR_MIB=0` is
 * the off switch. */
export const heapLimitFloorBytes = 96 * MiB;
/** Worker threads that MD5 large bodies (util/md5-pool.ts): 2 cores here, and the main thread keeps one busy. */
export const md5WorkersMax = 1;
/** A body at least this long is MD5'd on a worker (md5-pool.ts); a smaller one on the main thread, where a message round trip would cost more than its hash. */
export const md5WorkerBodyBytesMin = 1 * MiB;

/** Largest read served in one call; larger reads are split by the caller. One whole data block
 * (a download reads each ref in one call, and a read inside a block reads and checks the whole
 * block anyway). An extent.read answer carries this many body bytes in one RPC frame, so it must
 * stay within rpcFrameBytesMax (checked below): once, with reads of 8 MiB and frames of 4 MiB,
 * every read of more than 4 MiB was refused as wire.too_large, and a partition whose commit log
 * held more than 4 MiB could not be loaded after a restart. */
export const readBytesMax = dataAppendBytesMax;

/** Group commit: the most bytes of records in one journal batch (one write, one fsync). There is
 * no time window: an idle journal commits at once and a busy one batches whatever arrives during
 * the previous fsync (leader/follower), which measured 7-10× faster for one writer than a 2 ms
 * window (bench/README.md). The cap bounds one batch's buffer and fsync latency. */
export const groupCommitBytesMax = 8 * MiB;

/** Group commit: the most journal batches whose writes overlap (D in docs/formats/journal.md,
 * "Pipelined batches"): batch b is written once batches up to b - D are durable, and records are
 * acknowledged strictly in file order. Recovery reads damage in the last D batches of a crashed
 * file as a torn window, so raising D widens that blind spot. At 16 Put Blobs of 64 KiB, 69 % of
 * one-at-a-time batches held one record; 3 in flight raised raw Puts 26-42 % (tenth session). */
export const journalBatchesInFlightMax = 3;

/** Group commit: a further journal batch starts while others are in flight only once the newest
 * has been in flight this long (docs/formats/journal.md, "When a second batch starts"). */
export const journalBatchOverlapAfterMs = 1;

/** Group commit: an append of at least this many bytes skips the journal and is written and
 * fsync'd in its extent file (the off path), like ZFS's indirect writes. Its transfer time, not
 * the fsync, dominates (256 KiB ≈ 1.3 ms at 200 MiB/s vs ≈ 0.4 ms per fsync), and journaling it
 * would write every byte twice: 1 MiB appends measured 0.45-0.75× raw bytes/s through the
 * journal (bench/README.md). Below it, batching fsyncs wins (64 KiB ×16: 1.3× vs 0.7× raw). */
export const directAppendBytesMin = 256 * KiB;
/** RealDisk writes the 4 KiB-aligned middle of a writevSynced through O_DIRECT when it is at least
 * this long (docs/formats/extent-file.md, "Writing"): a buffered O_DSYNC write's copy into new
 * page-cache pages cost 1.4-2.1 ms of kernel CPU per MiB on the bench VM, O_DIRECT 0.03-0.05, plus
 * ~0.35 ms per MiB to copy the parts into the aligned staging buffer. Below it the two extra
 * synchronous pieces (head and tail) cost more than the copy saves; Put 64 KiB never takes it. */
export const directWriteBytesMin = 1 * MiB;
/** Aligned staging buffers a RealDisk keeps for O_DIRECT writes, each dataAppendBytesMax plus a
 * record header (rounded up to 64 KiB): 4 × 8.06 MiB resident at most. A large write that finds
 * none free (a fifth extent writing at once) takes the buffered path. */
export const directWriteBuffers = 4;
/** A stamp's disks share one pool of min(directWriteBuffers × disks, this) staging buffers, so its
 * bound does not grow with --disk: 8 × 8.06 = 64.5 MiB at most. A large append holds one buffer per
 * replica while it writes (3 with three disks); a 3-disk upload of 8 MiB blocks, 8 in flight, used
 * 3 (one per disk, one data extent open), so 8 leaves room for two extents writing large appends
 * at once and two more replica writes; per disk it was up to 4 × disks (97 MiB with three). */
export const directWriteBuffersPerStamp = 8;
/** `kura serve --direct-write-buffers` and `--direct-read-buffers` at most: 64 × 8.06 MiB = 516 MiB resident each. (Twelfth session:
 * 16 uploads into 4 containers at once used one buffer per replica, a fresh stamp's containers
 * sharing one partition: 0 of 1,572 large writes on three disks went without one.) */
export const directStagingBuffersLimit = 64;
/** RealDisk reads a read of at least this many bytes (a large blob's block with its header)
 * through O_DIRECT into a staging buffer and copies it out (docs/formats/extent-file.md,
 * "Reading"): a block written O_DIRECT is not in the page cache, and a buffered read of it filled
 * new page-cache pages at 188-724 MB/s here against 860-1,100 MB/s O_DIRECT (dd, 8 MiB reads).
 * Above the read cache's block limit, so small hot blocks stay in the page cache's care too. */
export const directReadBytesMin = 1 * MiB;
/** Aligned read staging buffers of a RealDisk of its own (8 MiB + 64 KiB each): a
 * read holds one only from its pread to its copy, so two serve a download and its read ahead. */
export const directReadBuffers = 2;
/** A stamp's disks share one pool of read staging buffers: 4 × 8.06 MiB = 32.25 MiB at most; a read
 * that finds none free (a fifth large read in flight at once) takes the buffered path. */
export const directReadBuffersPerStamp = 4;
/** A streamed request body's append is passed down as the socket's chunks (~64 KiB each: a 4 MiB
 * append is ~65 parts, one pwritev). Once appendBodyPartsUncopied parts are held, a chunk
 * smaller than appendBodyChunkBytesMin (a slow or hostile client's) is copied into a staging
 * buffer of appendBodyStagingBytes instead of kept as a part of its own, so every byte is copied
 * at most once, a small body in a few chunks is not copied at all, and an append has at most
 * 64 + 2 × 4 MiB / 16 KiB = 576 parts (IOV_MAX is 1,024 on Linux) and a bounded number of
 * Buffer objects. */
export const appendBodyChunkBytesMin = 16 * KiB;
export const appendBodyStagingBytes = 64 * KiB;
export const appendBodyPartsUncopied = 64;

/** Verified block bodies an ExtentStore (one per disk) keeps in memory, so a hot block is served
 * without a disk read and its block check (docs/stream-protocol.md, "Read cache"). Reads of
 * 64 KiB Get Blobs spent 17-20 % of the server's samples in the thread-pool read alone. */
export const extentReadCacheBytes = 32 * MiB;

/** Only blocks up to this size are cached: a large download (4 MiB blocks) streams past the cache
 * instead of flushing the small hot blocks out of it. */
export const extentReadCacheBlockBytesMax = 1 * MiB;

/** `kura serve` reuses the buffers its disks read large blocks into (src/util/read-buffer-pool.ts):
 * the free list holds at most this many bytes (8 records of a 4 MiB block). A fresh 4 MiB buffer
 * per read cost its page faults and a full GC per ~64 MiB read (bench/README.md, "fifth session");
 * 0 switches reuse off (`--read-buffer-pool-bytes 0`). */
export const readBufferPoolBytesDefault = 32 * MiB;

/** Only reads of at least this many bytes are pooled. It must stay above the read cache's block
 * limit (plus a record header): a cached body is shared by every reader that hits it, so it must
 * never be a buffer that one of them could give back (embedded-stamp.ts asserts it). */
export const readBufferPoolLengthMin = 2 * MiB;

/** Get Blob reads a range of at most this many bytes whole before answering, and writes it in one
 * call (`response.end(bytes)`): no async generator, `write`, 'drain' wait and `end` per Get (a
 * 64 KiB write is past the socket's 16 KiB high-water mark, so every streamed small Get waited for
 * 'drain'). Below the read buffer pool's lengthMin (a whole body is never a pooled buffer: nothing
 * gives it back) and at most what a streamed read holds (two pieces of dataAppendBytesMax). */
export const getBlobWholeBodyBytesMax = 1 * MiB;

/** A read cache hit re-checks the cached body's CRC on the entry's first hit and then on every
 * this-many-th hit: the cheap assertion that no holder wrote into a body it was lent read-only
 * (docs/stream-protocol.md, "Read cache"). A pass on every hit cost ~15 µs per 64 KiB Get. */
export const extentReadCacheRecheckHits = 16;

/** A front end's cache of small data-stream pieces by ref (src/frontend/blob-service/data-cache.ts):
 * a hot small blob's Get then makes one partition call (its rows) instead of three in-process hops
 * (getMany, partition.readData, extent.read). In `kura serve` its buffers are mostly the extent
 * stores' cached ones (bodies are shared in one process), so it adds little memory there. */
export const frontendDataCacheBytes = 32 * MiB;
/** The most `--data-cache-mib` accepts. */
export const dataCacheMibLimit = 1024;

/** Only pieces up to this size are cached (a large download streams past; below the read buffer
 * pool's lengthMin, so a cached piece is never a buffer a holder gives back). */
export const frontendDataCachePieceBytesMax = 1 * MiB;

/** A front-end cached piece is dropped this long after it was read, so a hot piece goes back to
 * the extent store at least this often and rot under it is found by reads within this delay plus
 * the extent store's own extentReadCacheEntryMsMax. */
export const frontendDataCacheEntryMsMax = 10_000;

/** A cached block is dropped this long after it was read from disk, so a hot block is re-read and
 * re-checked from disk at least this often: bit rot under a cached block is found within this
 * delay by reads alone, not only by a scrub (`extent.verify`, which always reads the disk). */
export const extentReadCacheEntryMsMax = 30_000;

/** A journal file is rotated past this size; the applied prefix of old files is deleted. */
export const journalFileBytesMax = 256 * MiB;

/** Journal recovery: after a bad record, the rest of the file is searched for the next good one
 * in reads of this size (memory bound of the search; a journal file is at most 256 MiB). */
export const journalResyncChunkBytes = 1 * MiB;

/** RPC: largest frame on the wire (an append plus its header, with headroom). */
export const rpcFrameBytesMax = dataAppendBytesMax + 64 * KiB;
if (readBytesMax + 64 * KiB > rpcFrameBytesMax) throw new Error('readBytesMax must fit an RPC frame with its header');

/** RPC: largest JSON header inside a frame. */
export const rpcHeaderBytesMax = 64 * KiB;

/** RPC: bytes of request bodies a node accepts in flight before it answers "overloaded". */
export const rpcInFlightBytesMax = 64 * MiB;

/** RPC: default deadline for a node-to-node call. */
export const rpcDeadlineMsDefault = 10_000;

/** Re-replication copies at most this many bytes per second per node, so repair never starves
 * foreground traffic (the 2012 outage's recovery was bounded by copy bandwidth too). */
export const rereplicationBytesPerSecondMax = 64 * MiB;

/** Append ids remembered per extent to make retried appends idempotent. */
export const appendIdsRememberedMax = 4096;

/** MetaStore: largest value and key, and most operations in one transaction (etcd's own default
 * request limit is 1.5 MiB and 128 operations per transaction). */
export const metaValueBytesMax = 1 * MiB;
export const metaKeyBytesMax = 1 * KiB;
export const metaTxnOperationsMax = 128;

/** MetaStore: most key and value bytes in one transaction. One largest value plus headroom for
 * keys, and under etcd's default 1.5 MiB request limit, so both stores accept the same txns. */
export const metaTxnBytesMax = metaValueBytesMax + 128 * KiB;

/** Extents one manager.dropExtents removes: its txn writes the stream record plus a delete and a
 * removal entry per extent, under metaTxnOperationsMax (128) with its compares. */
export const dropExtentsPerCallMax = 32;

/** MetaStore: most keys returned by one range call. */
export const metaRangeLimitMax = 10_000;

/** A node is considered lost after missing heartbeats for this long. */
export const nodeHeartbeatTimeoutMs = 10_000;

/** How long the stream manager waits on a replica before sealing around it. */
export const appendReplicaTimeoutMs = 5_000;

export const sizes = { KiB, MiB, GiB } as const;

// ---- extent node and stream client (src/stream/extent-node.ts, stream-client.ts) ----

/** Appends queued or waiting for a gap on one extent of one node; past it the node answers
 * "overloaded" instead of buffering without bound (the RPC layer bounds bytes, this bounds count). */
export const extentQueuedAppendsMax = 1024;

/** An extent node heartbeats five times per nodeHeartbeatTimeoutMs, so one or two lost beats
 * never make the stream manager think it is lost. */
export const nodeHeartbeatIntervalMs = nodeHeartbeatTimeoutMs / 5;

/** A client waits this long for an append's ack: the primary's own replica wait plus one
 * more round trip, so the primary, not the client, is the one that gives up first. */
export const streamAppendDeadlineMs = appendReplicaTimeoutMs * 2;

/** Attempts of one stream append across seals (each failed attempt seals an extent); a stamp
 * that fails this many in a row is unavailable, and the caller must see it. */
export const streamAppendAttemptsMax = 5;

/** Back-offs of one append on the same extent after rpc.overloaded (nothing applied) before the
 * client treats the primary as slow and seals; with the bounds below the waits add to about
 * 1.3 s, long enough for a burst to drain, short against streamAppendDeadlineMs. */
export const streamAppendOverloadRetriesMax = 6;

/** First back-off after rpc.overloaded; doubles each retry. Several fsyncs long, so a full queue
 * has drained some appends before the retry arrives. */
export const streamAppendBackoffMsMin = 20;

/** Largest back-off after rpc.overloaded: below one append deadline, so a client backing off
 * never waits longer than a timed-out append would have cost it. */
export const streamAppendBackoffMsMax = 640;

/** Re-replication reads a sealed extent in pieces of this size: large enough to amortise a
 * round trip, small enough that a bad piece costs little to fetch again from another source. */
export const rereplicationChunkBytes = 1 * MiB;

/** Stream views a client caches (one per stream it touches); the oldest is dropped past it. */
export const streamViewsCachedMax = 1024;

/** Sealed extents whose append ids a node keeps for findAppend: a client asks right after its
 * failed append, so only recently sealed extents matter; older ones are forgotten first. */
export const sealedAppendLogsRetainedMax = 1024;

// ---- extent store (src/stream/extent-store.ts) ----

/** Group commit: dirty extent files are fsync'd in the background this long after their first
 * journal-acknowledged write, so journal files can be retired and replay after a crash stays
 * short (at most this much of small appends, within journalFileBytesMax); long enough that one
 * extent fsync covers many appends. Not a durability knob: the journal fsync acknowledges. Was
 * 50 ms: under kura serve each dirty extent (a partition's data and log tails) took ~20
 * background fsyncs a second, 0.2-0.3 per Put Blob at 16 clients and 0.5-0.9 at 1 client, on the
 * disk the journal's acknowledging fsyncs wait for; 500 ms: 0.04-0.06 and 0.06-0.1 (bench/README). */
export const extentSyncIntervalMs = 500;

// ---- stream manager (src/stream/stream-manager.ts, rereplication.ts) ----

/** A release token permits a wipe for at most this long after issue: long enough for an operator
 * or the controller to start the wipe, short enough that a forgotten token cannot be used later
 * (it is also voided at once by any placement on the node or a new manager epoch). */
export const releaseTokenValidityMs = 15 * 60_000;

/** Extents one repair pass works on; the rest wait for the next pass, so a pass (and the time a
 * stale view of the nodes is used) stays bounded after a large failure. */
export const repairExtentsPerPassMax = 1000;

/** Open extents one repair pass may seal (each seal also creates a new tail extent: MetaStore
 * txns and extent.create calls). A pass seals only an open extent that lost a replica or now has
 * a better placement, so this is a safety cap, not the churn fix; the rest wait for the next pass
 * (a client whose append fails seals its tail itself meanwhile). */
export const repairSealsPerPassMax = 256;

/** The stream manager's repair loop runs this often: half a heartbeat timeout, so a lost node's
 * extents start copying within seconds of it being declared lost, without rescanning constantly. */
export const repairIntervalMs = 5_000;

/** Sealed extents whose replica lengths one repair pass checks with extent.info (after the
 * replicas that missed a seal): at most 3 × 64 small RPCs per repairIntervalMs, and every sealed
 * replica is still checked within ⌈extents / 64⌉ passes if a registration-time check was missed. */
export const repairAuditExtentsPerPassMax = 64;

// ---- front end (src/frontend/): Azure's own limits where Azure has one, else ours ----

/** Azure's limits on names: an account is 3-24 characters, a container 3-63, a blob 1-1024
 * characters (after URL decoding); a blob name has at most 254 path segments. */
export const accountNameLengthMax = 24;
export const containerNameLengthMax = 63;
export const blobNameLengthMax = 1024;
export const blobNameSegmentsMax = 254;

/** Request line and headers together, as Node's parser counts them (its own default is 16 KiB).
 * Azure's documented largest header is 8 KiB metadata; 32 KiB leaves room for a SAS URL and
 * many x-ms- headers while refusing header floods before they are buffered. */
export const requestHeaderBytesMax = 32 * KiB;

/** Headers in one request: a real SDK request carries about 20; past this it is hostile. */
export const requestHeadersCountMax = 128;

/** Longest URL (path plus query): a 1024-character blob name percent-encoded three bytes per
 * character, plus a SAS and copy-source query, fits. */
export const requestUrlBytesMax = 8 * KiB;

/** Query parameters in one URL: Azure operations use at most about 25 (a SAS with overrides). */
export const queryParametersMax = 64;

/** Azure: metadata names and values together are at most 8 KiB per container or blob. */
export const metadataBytesMax = 8 * KiB;

/** Azure: a blob has at most 10 tags; keys are 1-128 characters, values 0-256. */
export const blobTagsMax = 10;
export const blobTagKeyLengthMax = 128;
export const blobTagValueLengthMax = 256;

/** Azure: a block id decodes to at most 64 bytes; a block list names at most 50,000 blocks. */
export const blockIdBytesMax = 64;
export const blockListEntriesMax = 50_000;

/** Azure (version 2019-12-12 and later): a Put Blob body is at most 5000 MiB, a Put Block body
 * at most 4000 MiB. Append Block is held at Azure's older 4 MiB so one append is one stream
 * append (within dataAppendBytesMax) and stays atomic. */
export const putBlobBytesMax = 5000 * MiB;
export const putBlockBytesMax = 4000 * MiB;
export const appendBlockBytesMax = 4 * MiB;

/** Largest XML request body (a 50,000-entry block list with 64-byte ids is about 6 MiB in XML;
 * service properties, ACLs and tags are a few KiB). Bodies are read to this bound, never more. */
export const xmlBodyBytesMax = 8 * MiB;

/** Deepest XML nesting accepted: Azure's request documents are at most 5 levels deep; a deeper
 * document is refused before parsing, so nesting bombs cost nothing. */
export const xmlDepthMax = 16;

/** Azure: a container has at most 5 stored access policies (signed identifiers), with ids of at
 * most 64 characters. */
export const storedAccessPoliciesMax = 5;
export const signedIdentifierLengthMax = 64;

/** Azure: at most 5 CORS rules; each lists at most 64 origins/headers, 256 characters each. */
export const corsRulesMax = 5;
export const corsRuleItemsMax = 64;

/** Azure: list pages return at most 5000 entries (maxresults above it is clamped). */
export const listResultsMax = 5000;

/** Continuation markers are opaque tokens minted by Kura; anything longer is not one of ours. */
export const listMarkerBytesMax = 4 * KiB;

// ---- blob service (src/frontend/blob-service/, docs/blob-schema.md) ----

/** Azure: a blob has at most 100,000 uncommitted blocks; Put Block past it is refused. */
export const uncommittedBlocksMax = 100_000;

/** Azure: uncommitted blocks not committed within a week are discarded. */
export const uncommittedBlockExpiryMs = 7 * 24 * 60 * 60_000;

/** Azure: an append blob has at most 50,000 committed blocks. */
export const appendBlobBlocksMax = 50_000;

/** Append blob refs kept in the blob row before they move to a segment row: every Append Block
 * rewrites the row with its tail, so the tail is kept to ~6 KiB (1024 refs made a stream of 512-byte
 * appends write ~12 KiB of commit log per append, 24× the data). 256 keeps a 50,000-block blob at
 * 196 segment rows, so copying one (segments written in one transaction) stays under
 * partitionBatchMutationsMax; segments are read by scan, 128 rows per call. */
export const appendSegmentRefs = 256;

/** A committed block list encoding up to this size lives in the blob row (about 200 blocks with
 * 64-byte ids); larger lists go to the data stream. Small so a blob row (with 8 KiB metadata and
 * tags) stays under ~30 KiB and blobScanRowsPerCall rows fit one RPC frame. */
export const blockListInlineBytesMax = 16 * KiB;

/** Put Blob bodies up to this size go inline in the blob row's commit-log record (docs/blob-schema.md,
 * "Inline bodies"): a small Put Blob is then one durable append (the row commit), not two (body,
 * then row). It counts against memtableBytesMax until a checkpoint moves it to the data stream.
 * 16 KiB, not 64: the memtable holds every inline body as its own ArrayBuffer until the checkpoint,
 * and V8 ran a major GC every ~100 Puts of 64 KiB while up to 64 MiB of them were held (1 per
 * ~1,000-2,000 with 64 KiB bodies in the data stream), which cost more CPU per Put than the second
 * durable append saves (bench/README.md, "Put Blob CPU, fifth session"). 4 KiB bodies stay inline.
 * `kura serve --inline-body-bytes N` sets it (0 switches it off). */
export const inlineBodyBytesDefault = 16 * KiB;

/** Largest configurable inline body: a blob row stays under partitionRowBytesMax (2 MiB) with 8 KiB
 * metadata and tags, and a Put Blob's commit record under appendBytesMax. */
export const inlineBodyBytesLimit = 1 * MiB;

/** Rows one blob-service scan call asks for: 128 rows of at most ~30 KiB stay under
 * rpcFrameBytesMax (scan answers are not cut by bytes below this layer). */
export const blobScanRowsPerCall = 128;

/** Largest encoded v1 committed block list (read whole by Get Blob; v1 rows are read, never
 * written): 50,000 blocks of ~80 bytes plus 24 bytes per 4 MiB of content. */
export const blockListDocumentBytesMax = 64 * MiB;

/** Largest v2 block-list index document (ids and sizes, no refs): 50,000 blocks of at most
 * 1 + 64 + 8 + 4 bytes is 3.85 MB, so one index is at most one 4 MiB data append. */
export const blockListIndexBytesMax = 4 * MiB;

/** Refs per block-list page row (K\0l<listId>\0<i>): 1024 × 24 bytes keeps a page row near
 * 25 KiB, as blob rows, so blobScanRowsPerCall rows of a blob's range still fit one RPC frame. */
export const blockListPageRefs = 1024;

/** Page rows of one committed block list (98,304 refs: 384 GiB in 4 MiB appends, beyond any
 * blob Kura accepts in practice). The pages are written in the blob row's commit transaction, so
 * 96 × ~25 KiB + the blob row stays under one 4 MiB log record and partitionBatchMutationsMax. */
export const blockListPagesMax = 96;

/** Rows of one blob's range a sweep (blob-sweep.ts) examines per call: 100,000 uncommitted
 * blocks plus pages, segments and snapshots; keys only (≤ ~4 KiB each) are held. Rows past it
 * are left for the next sweep of the blob. */
export const blobSweepRowsMax = 110_000;

/** Read-evaluate-write attempts of one blob operation whose partition condition lost a race
 * (nothing was applied); past it the client gets 503 ServerBusy and retries itself. */
export const blobWriteAttemptsMax = 64;

/** Deleted containers' rows (container-sweep.ts): one sweep tick examines at most this many C rows
 * looking for graveyards and deletes at most this many rows, every containerSweepIntervalMs, so
 * the sweep costs the partition layer at most ~500 deletes/s in the background. */
export const containerSweepRowsPerTick = 1_024;
export const containerSweepIntervalMs = 2_000;
/** A sweep tick that finds nothing (no graveyard, no sweep intent) doubles the wait before the next,
 * up to this: an idle front end scans its container and intent rows every 30 s, not every 2 s. This
 * process's writers wake it (an intent put, a container deleted); work other front ends left waits
 * at most this much longer (intents are left to their writers 10 s, graveyards kept 60 s anyway). */
export const containerSweepIdleIntervalMaxMs = 30_000;

/** A sweeper's claim on a graveyard (container-sweep.ts): renewed every tick it works there, so
 * other front ends skip it; 5 ticks, so a sweeper that stopped or died is replaced within 10 s. */
export const containerSweepClaimMs = 5 * containerSweepIntervalMs;

/** The write fence of deleted containers (container-fence.ts, docs/blob-schema.md "Deleted
 * containers"). A sweeper keeps a graveyard row at least containerSweepGraceMs after it first saw
 * it, even when its range is empty; a write that creates rows re-reads the container before its
 * commit when containerRecheckMs passed since it last read it, and re-checks it after the commit
 * (restoring the graveyard row if the container is gone) when containerFenceCommitMs passed. So a
 * write that saw the container alive and committed within containerFenceCommitMs is found by the
 * sweep, and a slower one puts the graveyard back itself. Grace is 3x the commit bound: margin for
 * monotonic clocks of two front ends and a scan that is slow to start. 60 s of an empty range
 * scanned every tick costs the partition nothing worth counting; a partition move (seconds) ends
 * well inside it, which bounds a commit whose outcome the writer never learned (see the doc). */
export const containerSweepGraceMs = 60_000;
export const containerFenceCommitMs = 20_000;
export const containerRecheckMs = 10_000;

/** A sweep intent (docs/blob-schema.md, "Sweep intents") is left to its writer this long: from when
 * the writer put it (its `since`, the writer's wall clock) or from when this sweeper first saw it,
 * whichever is longer ago. Live writers finish their intent in one commit and a sweep (well under a
 * second for the ~250-350 rows one leaves in practice); a resolution sooner costs only duplicate
 * work or a retry of a stalled writer, never safety. Until 2026-11-23 the intents waited
 * containerSweepGraceMs (60 s) from the sweeper's first sight, which a restarted front end (its
 * memory empty) starts again: 0 of 7 resolved live over simulator runs of 29-92 s. */
export const sweepIntentGraceMs = 10_000;

/** Graveyards a sweeper remembers first seeing (for the grace); past it the oldest is forgotten,
 * which only restarts that graveyard's grace. ~100 bytes each. */
export const containerSweepTrackedMax = 10_000;

/** Rows one Delete Blob / Put Block List clean-up deletes per transaction (below
 * partitionBatchMutationsMax, leaving room for the rows the operation itself writes). */
export const blobCleanupBatchRows = 200;

/** Tag index rows Find Blobs by Tags examines (and verifies against their blob rows) per request:
 * the page ends with a marker after this many, so one request's work is bounded. */
export const findBlobsScannedRowsMax = 20_000;

/** Partition scan pages one List Blobs request reads before answering with a marker (a page
 * may then hold fewer than maxresults items, as Azure allows). */
export const listBlobsScanPagesMax = 64;

/** Azure: a SharedKey request's x-ms-date/Date may be at most 15 minutes from the server's clock. */
export const requestClockSkewMaxMs = 15 * 60_000;

/** A request's head must arrive within this time and its body must keep flowing with no gap
 * longer than the idle timeout (slowloris bound); Azure closes idle uploads after about a minute. */
export const requestHeadersTimeoutMs = 20_000;
export const requestBodyIdleTimeoutMs = 60_000;

/** Request body bytes one front end holds at once across all requests (frontend/http-server.ts):
 * a data body reserves min(Content-Length, 2 × dataAppendBytesMax + 1 MiB) before it is read (the
 * backend holds at most one append chunk in flight, the next one being read and one incoming
 * chunk: data.ts streamBody), and waits FIFO when the
 * budget is spent, so 1,024 connections uploading at once cannot hold 1,024 × 8 MiB. */
export const frontendBodyBytesMax = 256 * MiB;

/** Copy sources outside Kura (docs/copy-sources.md, "Limits"): a front end fetches them with no
 * redirect, connecting within 10 s, a response head within 30 s and no gap in the body longer than
 * 30 s; a Copy Blob From URL / Put Block From URL fetch ends within 5 min (256 MiB at 1 MiB/s), an
 * asynchronous Copy Blob within 2 h (5000 MiB at ~0.7 MiB/s). */
export const copySourceConnectTimeoutMs = 10_000;
export const copySourceHeadersTimeoutMs = 30_000;
export const copySourceIdleTimeoutMs = 30_000;
export const copySourceSyncTimeoutMs = 5 * 60_000;
export const copySourceAsyncTimeoutMs = 2 * 60 * 60_000;

/** Azure: Copy Blob From URL copies sources of at most 256 MiB. */
export const copyFromUrlBytesMax = 256 * MiB;

/** Copy sources one front end fetches at once (each holds at most one 4 MiB append chunk in
 * flight and the next being read, so 16 × ~9 MiB beside frontendBodyBytesMax); past it 503 ServerBusy. */
export const copySourceFetchesMax = 16;

/** A copy source's response head (undici's maxHeaderSize): Azure's heads are ~1-2 KiB. */
export const copySourceHeaderBytesMax = 16 * KiB;

/** An asynchronous copy rewrites its pending row with its progress this often; a pending copy its
 * transfer has not written for copyPendingStallMs (its beat: a Lease Blob or Set Blob Tags rewriting
 * the row does not count) belongs to a front end that stopped or died and reads as failed. */
export const copyProgressIntervalMs = 2_000;
export const copyPendingStallMs = 60_000;

/** Connections served at once by one front end; past it new ones wait in the kernel backlog. */
export const frontendConnectionsMax = 1024;

/** How long an idle keep-alive connection stays open. Node's default, 5 s, is shorter than the
 * idle life of the SDKs' pooled sockets, so a request sent as the server closed its socket failed
 * with ECONNRESET (seen in tests at load > 25, where the SDK's retries were off); at 60 s that
 * race needs a client idle for exactly a minute. Bounded by frontendConnectionsMax. */
export const frontendKeepAliveTimeoutMs = 60_000;

/** Range requests: x-ms-range-get-content-md5/crc64 are allowed only for ranges of at most 4 MiB. */
export const rangeContentHashBytesMax = 4 * MiB;

// ---- partition layer (src/partition/, docs/formats/partition-*.md) ----

/** Largest row key: a 1024-character blob name in UTF-8 plus account, container and snapshot parts. */
export const partitionKeyBytesMax = 4 * KiB;

/** Largest stored ETag: Azure's are about 20 characters. */
export const partitionEtagBytesMax = 64;

/** Columns per row: Azure entities have at most 255 properties; metadata is at most 8 KiB. */
export const partitionColumnsMax = 1024;

/** Largest encoded row: Azure's entity limit is 1 MiB; anything larger lives in the data stream. */
export const partitionRowBytesMax = 2 * MiB;

/** Log appends one partition writer may have in flight (docs/formats/partition-log.md,
 * "Pipelined log appends"): with more than one, records may be stored out of sequence order by
 * up to this many appends, so replay holds records that follow a gap (at most
 * (this − 1) × appendBytesMax bytes) until the gap fills. Replay's bound, fixed at the largest
 * depth any writer may use: raising it is a format change (older servers refuse the log). */
export const partitionLogReorderAppendsMax = 3;

/** Log appends a partition writer has in flight by default (1: each group's append waits for the
 * previous one's). Up to partitionLogReorderAppendsMax once every server replays reordered logs
 * (docs/formats/partition-log.md, "Pipelined log appends"); 1 is the off switch (P4). */
export const partitionLogAppendsInFlight = 1;

/** A partition writer starts a further log append while others are in flight only once the newest
 * has been in flight this long (docs/formats/partition-log.md, "When a second append starts"). */
export const partitionLogAppendOverlapAfterMs = 1;

/** Rows in one atomic batch (Azure's entity-group transactions allow 100; blob operations touch a few). */
export const partitionBatchMutationsMax = 256;

/** Batches waiting for the commit log; past it writers get partition.busy instead of queueing without bound. */
export const partitionWriteQueueMax = 4096;

/** The active memtable is frozen and checkpointed past this size: bounds memory and log replay at load. */
export const memtableBytesMax = 64 * MiB;

/** The memtable holds its rows encoded (u32 length + row codec bytes) in slabs of this size, not as
 * objects: a row then costs the JS heap a Map slot and its key string (~100 B), not ~1 KB of objects
 * that every full GC marks (bench/README.md, "the live heap after many Puts"). 1 MiB: 64 slabs hold a
 * full memtable; a slab's unused tail is at most one row (rows larger than a slab get their own). */
export const memtableSlabBytes = 1 * MiB;

/** A memtable with any row older than this is checkpointed, so an idle partition's log replay stays short. */
export const checkpointIntervalMs = 5 * 60_000;

/** Data blocks of a run are cut at this size: a point read fetches and CRC-checks about this much. */
export const runBlockBytesTarget = 64 * KiB;

/** Data-block appends a run writer keeps in flight: each block is its own append (a read checks
 * one block, not a multi-MiB append), so a checkpoint pipelines them: 8 x 64 KiB in memory. */
export const runBlockAppendsInFlightMax = 8;

/** A run's data bytes; with its index and bloom filter each fitting one append, a run is one unit of reading. */
export const runBytesMax = 64 * MiB;

/** Runs named by one manifest; compaction starts well before (runsCompactionTrigger). */
export const runsMax = 64;

/** A compaction is started when a checkpoint leaves this many runs: point reads probe every run's bloom filter. */
export const runsCompactionTrigger = 8;

/** Bloom filter bits per key and hash functions: about 1 % false positives (k = 0.7 x bits per key). */
export const bloomBitsPerKey = 10;
export const bloomHashCount = 7;

/** A partition's row cache (point reads of rows in runs, and memtable rows read again: the
 * container row each Put to it checks, which stays in the memtable until the next checkpoint, is
 * decoded once, not at every Put): entries of up to rowCacheUnitBytes encoded, a larger row
 * weighing its size in units (a known absence weighs 1), so the cache holds ~10,000 small rows or
 * ~600 rows with 16 KiB inline bodies, never much more than 10 MiB of rows. */
export const rowCacheEntriesMax = 10_000;
export const rowCacheUnitBytes = 1024;

/** Decoded run blocks kept in memory per partition, by encoded bytes. */
export const blockCacheBytesMax = 32 * MiB;

/** Run blocks read by scans, kept per partition apart from blockCacheBytesMax (scan resistance: a
 * listing of a large table would otherwise evict every block point reads keep hot). Holds the
 * blocks the next page starts in (the block a page stopped in, the first block of every later
 * run): 64 blocks of 64 KiB. */
export const scanBlockCacheBytesMax = 4 * MiB;

/** Blocks a run cursor reads ahead of the one it is on once it moves block to block (a scan, a
 * compaction, a GC pass), so block reads overlap the work on rows instead of waiting in series:
 * at most this × 64 KiB in flight per run cursor; a scan reads ahead only blocks whose rows its
 * page may still return (the index knows each block's row count). */
export const runReadAheadBlocks = 4;

/** Most rows one scan page returns (Azure's list and query pages are at most 5000). */
export const scanLimitMax = 5000;

/** Container incarnations a blob front end remembers (context.ts IncarnationHints, an LruCache): ~100 bytes
 * each, plus the decoded container record (~300 bytes, kept only for a container with at most
 * containerHintMetadataCharsMax of metadata and no stored access policies), so ≤ ~5 MiB; a container
 * not among them costs its Get Blob a second partition call, no more. */
export const incarnationHintsMax = 10_000;

/** Blob names a front end wrote lately (context.ts BlobServiceContext.writtenBlobs, an LruCache, ~200 bytes
 * each, a flat key string: ≤ ~2 MiB): a Put Blob of one of them is likely an overwrite, which a new blob's one-call
 * Put would try in vain (refused: the blob exists), so it goes the read way at once. A name not
 * among them costs an overwrite one refused call, no more. */
export const writtenBlobHintsMax = 10_000;

/** Metadata (names + values, in characters) of a container whose decoded row a hint keeps: typical
 * containers have none; a large one is decoded on each read instead of held 10,000 times. */
export const containerHintMetadataCharsMax = 256;

/** Keys one partition.getMany reads: a Get Blob reads 2 (its container's row and the blob's row,
 * docs/blob-schema.md "Reads"); a few more leave room without letting one call hold many rows. */
export const partitionGetManyKeysMax = 4;

/** Bytes of rows one scan page returns before it stops with a continuation: a blob row with an
 * inline body (docs/blob-schema.md, "Inline bodies") is up to ~1 MiB, so a page of
 * blobScanRowsPerCall such rows would pass rpcFrameBytesMax; one page stays under this plus one
 * row (≤ partitionRowBytesMax) plus 5 framing bytes per item, inside a frame (checked below).
 * 2 MiB, not 1: a page of scanLimitMax blob-property rows (~300-400 bytes) is 1.5-2 MiB, and at
 * 1 MiB such a listing came back in pages of ~3,400 rows, not the 5,000 asked for. */
export const scanPageBytesMax = 2 * MiB;
if (scanPageBytesMax + partitionRowBytesMax + 5 * scanLimitMax + 32 * KiB > rpcFrameBytesMax) throw new Error('a scan page must fit an RPC frame with its header');

/** Most entries (rows, tombstones, shadowed versions) one scan page examines before it returns a
 * continuation early, so a range of tombstones cannot make one call unbounded. */
export const scanExaminedMax = 100_000;

/** A manifest's encoded size: 64 runs and two keys are a few KiB; the rest is headroom. */
export const manifestBytesMax = 1 * MiB;

/** Manifests per meta-stream extent before its tail is sealed, so the newest manifest is found
 * by reading one small extent. */
export const metaManifestsPerExtentMax = 64;

// ---- partition compaction and garbage collection (docs/partition-gc.md) ----

/** Size tiers of runs: tier = log_F(dataBytes / this). Below 1 MiB a merge costs little either way. */
export const compactionTierBaseBytes = 1 * MiB;

/** Most run groups (one checkpoint's or merge's output each) one minor merge reads: bounds its work. */
export const compactionMergeRunsMax = 16;

/** A major merge (every run, dropping tombstones) starts when tombstones are this share of the
 * runs' rows: deleted rows then stop holding checkpoint extents (and their data refs) alive. */
export const compactionTombstoneRatio = 0.25;

/** Auto-maintenance looks at the clock this often: time-based checkpoints and GC passes are due
 * within it (size-based ones start right after the write that made them due). */
export const maintenanceTickMs = 10_000;

/** Auto-maintenance runs a GC pass this often: a pass scans every live row of the partition. */
export const dataGcIntervalMs = 10 * 60_000;

/** A data extent this owner appended to within this time, or any extent before this long after
 * the partition was loaded, is not dropped: it may hold an upload whose row is not committed yet
 * (a 5000 MiB Put Blob at 10 MB/s takes ~8 minutes). */
export const dataGcGraceMs = 60 * 60_000;

/** Bytes one GC pass copies forward: bounds its disk and network bandwidth (≈ 0.4 MiB/s at one
 * pass per dataGcIntervalMs) and how much garbage a crash mid-pass can leave. */
export const dataGcCopyBytesPerPassMax = 256 * MiB;

/** Copy forward only from data extents at most this live: every byte copied frees at least one. */
export const dataGcCopyForwardLiveRatio = 0.5;

/** Distinct live ranges one pass tracks in memory (~100 bytes each); past it the pass drops nothing. */
export const dataGcRefsTrackedMax = 4_000_000;

/** A data-stream tail at least this long and mostly dead is sealed by GC so it can be collected
 * (extents only fill at extentBytesMax = 256 MiB). */
export const dataGcTailSealBytes = 64 * MiB;

// ---- partition servers, manager, map (docs/partition-protocol.md) ----

/** A partition server's lease: its partitions move this long after it dies at the latest. 10 s
 * rides out a GC pause or a MetaStore leader change without moving partitions needlessly.
 * Keep-alives go every TTL/4, so two lost renewals still leave the lease confirmed. */
export const partitionLeaseTtlMs = 10_000;

/** A server stops serving this long before its lease can expire at the MetaStore: covers a 5 %
 * rate difference between its clock and the store's over one TTL (real clocks: well under 0.01 %). */
export const partitionLeaseMarginMs = partitionLeaseTtlMs / 20;

/** A partition server follows pm/map by a MetaStore watch (an assignment takes effect as soon as
 * the watch reports it) and re-reads it besides only this often: to retry failed loads and a lost
 * registration, and as the safety net of a watch gone silent (an etcd member cut off). Polling
 * every 250 ms instead cost an idle kura serve ~1.3 ms CPU/s, and an idle dev cluster's partition
 * server ~5 ms CPU/s (12 -> 7 ms/s) and etcd ~2 ms/s. */
export const partitionMapRecheckMs = 2_000;

/** A registration that found its previous incarnation's key retries this often (that key's lease must run out). */
export const partitionRegisterRetryMs = 250;

/** An etcd watch cancelled by the server (its resume revision compacted) is created again after this. */
export const metaWatchRestartMs = 1_000;

/** The partition manager's tick (assign, reassign, split checks): bounds failover after a lease expiry. */
export const partitionManagerTickMs = 500;

/** A cluster controller's partition manager asks every server's status (splits, merges, moves,
 * re-epochs) at most this often while nothing needs doing, not at every tick: the status round
 * every 500 ms was ~11 % of an idle leading controller's CPU (profile, docs/partition-protocol.md).
 * Assignments (failover) keep the tick; a split or move waits at most this long longer to start. */
export const partitionMaintenanceIntervalMs = 2_000;

/** Partitions in the map: the whole map is one MetaStore value (metaValueBytesMax); an entry is ≤ ~17 KiB
 * only with maximal keys, ~300 bytes typically. */
export const partitionMapPartitionsMax = 2_000;

/** Ancestors' data streams one partition may read refs from (inheritedData): each split adds one,
 * a merge joins two lists; merges that would pass it wait until GC released some (partition-gc.md). */
export const partitionInheritedDataMax = 64;

/** A partition is split when its memtable plus runs pass this: keeps load (replay, compaction) short. */
export const partitionSplitBytes = 4 * 1024 * MiB;

/** Merges (docs/partition-protocol.md, "Merges"): two neighbours are merged when together they
 * hold at most this many bytes. Well below partitionSplitBytes, so a merged partition does not
 * split again soon; small enough that the copy (writes to the pair stop meanwhile) takes seconds. */
export const partitionMergeBytes = 256 * MiB;

/** A partition serving fewer requests per second than this is cold (a merge candidate). */
export const partitionColdRequestsPerSecond = 1;

/** A partition is merged only after it has been served this long at its epoch: a fresh split or
 * move is not undone at once, and its request rate has been measured over a full window. */
export const partitionMergeServedMsMin = 5 * 60_000;

/** A partition serving more than this many requests per second (with ≥ 2 live servers) is split
 * for load: its children can then be moved apart. */
export const partitionHotRequestsPerSecond = 2_000;

/** Request rates are measured over a sliding window this long (two buckets). */
export const partitionLoadWindowMs = 30_000;

/** Keys sampled per partition for a hot split's target (bounded memory: ≤ this × a key). */
export const partitionLoadKeySamplesMax = 256;

/** Load balancing moves a partition only when the busiest server serves this many times the least
 * busy one's requests per second, and at least partitionBalanceRequestsPerSecondMin more. */
export const partitionBalanceRatio = 1.5;
export const partitionBalanceRequestsPerSecondMin = 200;

/** At most one load-balancing move this often: a move costs a checkpoint and a reload. */
export const partitionMoveIntervalMs = 60_000;

/** A split refused (one group holds every row) is not asked again for this long. */
export const partitionSplitRetryMs = 10 * 60_000;

/** PartitionClient: attempts per request (map refreshes and owner changes included), and the
 * back-off between them, doubling to 2 s: 10 attempts wait 7.2 s in all between them, past a map
 * poll, a manager tick and a merge's or split's write pause on a loaded machine (8 attempts, 3.2 s,
 * gave a front end's client 503 ServerBusy during merges at load 20). */
export const partitionClientAttemptsMax = 10;
export const partitionClientBackoffMsMin = 25;
export const partitionClientBackoffMsMax = 2_000;

/** Deadline of the manager's server.status call (answered from memory: partitions, sizes, request
 * rates). The tick waits for every server's answer before it acts, so a server that is cut off but
 * still registered (its lease not yet expired) delays the next assignment pass by at most this;
 * with rpcDeadlineMsDefault (10 s) a cut-off owner's partitions moved ~10 s after the cut even with
 * a 2 s lease (test/unit/partition/partition-failover-blackhole.test.ts). A server that does not
 * answer in time is only left out of this tick's splits, merges and moves. */
export const partitionStatusDeadlineMs = 2_000;

/** A front end re-reads the partition map before routing once its copy is this old. A refusal
 * (partition.not_owner) or an error already makes it re-read at once; this bound is for an owner
 * that went silent (its host cut off: no answer, no reset), whose requests would otherwise keep
 * going to it by the cached map and each wait out partitionRpcDeadlineMs after the partition had
 * moved (test/unit/partition/partition-cutoff.test.ts). Cost: one MetaStore get per second per
 * busy front end, shared by its concurrent requests. */
export const partitionClientMapMaxAgeMs = 1_000;
/** How long a request waits for that re-read of an aged map before it goes by the cached one: a
 * MetaStore read takes milliseconds; an unreachable one must not stall the data path (docs/cluster.md:
 * with etcd down, requests keep being served by the partitions' owners while their leases last). */
export const partitionClientMapWaitMs = 200;

/** PartitionClient admission: request body bytes one client (a front end) has in flight to the
 * partition servers. Below a server's rpcInFlightBytesMax (64 MiB), so a front end alone never
 * makes a server answer "overloaded": 48 MiB = 12 data appends of 4 MiB, plenty to keep a disk
 * busy, with 16 MiB left for other clients' rows; calls past it wait FIFO (their bytes are already
 * held under the front end's body budget). At most 4,096 waiters (frontendConnectionsMax × 4). */
export const partitionClientBodyBytesMax = 48 * MiB;
export const partitionClientBodyWaitersMax = 4_096;

/** Deadline of a partition RPC: a write waits for one log append (streamAppendDeadlineMs) plus queueing. */
export const partitionRpcDeadlineMs = 30_000;

/** How long a client waits for manager.sealAndExtend: the manager waits up to
 * appendReplicaTimeoutMs for replica lengths, then up to rpcDeadlineMsDefault to seal the replicas,
 * to create the new extent, and once more to create it elsewhere if a chosen node fails. */
export const sealAndExtendDeadlineMs = appendReplicaTimeoutMs + 3 * rpcDeadlineMsDefault;

// ---- cluster mode: controllers and front ends (docs/cluster.md) ----

/** The controller leader's lease: a standby leads this long after the leader dies at the latest
 * (plus the campaign; plus controllerRecheckMs if a standby's watch went silent). As partitionLeaseTtlMs: rides out a GC pause or an etcd leader
 * change without a needless failover (each failover costs every written stream one extent). */
export const controllerLeaseTtlMs = 10_000;

/** The leader stops routing manager calls this fraction of its TTL before etcd can expire its
 * lease (the partition servers' 5 % clock-rate margin, docs/partition-protocol.md "Leases"). */
export const controllerLeaseMarginRatio = 1 / 20;

/** A controller steps on events: a standby campaigns when its watch of controller/leader fires
 * (the key deleted: L_C expired or revoked), a leader steps down when L_C is lost (its expiry
 * timer). Beside them it re-checks this often: a watch can go silent (an etcd member cut off), and
 * a leader's StreamManager can be fenced with no event. 2 s, as partitionMapRecheckMs: the poll it
 * replaces (250 ms, one etcd get each) cost a standby ~5 ms CPU a second; a silent watch delays a
 * failover by at most this. */
export const controllerRecheckMs = 2_000;

/** A controller step that failed (etcd unreachable, a txn timed out) is tried again this soon. */
export const controllerStepRetryMs = 250;

/** A front end stopping (SIGTERM) lets requests in flight finish for at most this long, then cuts
 * the rest: a 4 MiB block at a slow client's pace fits; a balancer drains in the meantime. */
export const frontendDrainTimeoutMs = 10_000;

/** A starting front end re-reads the partition map / retries loading accounts this often while
 * the cluster is not serving yet. */
export const frontendStartPollMs = 250;

/** Admin HTTP port (GET /metrics, /healthz, /readyz): connections served at once. A scraper and
 * a few probes need a handful; the bound keeps a misbehaving client from exhausting descriptors. */
export const adminConnectionsMax = 64;

/** Admin HTTP port: largest request head accepted. Its requests are bodiless GETs with a few
 * headers; anything larger is refused (431) before it is buffered. */
export const adminHeaderBytesMax = 8 * KiB;

/** Admin HTTP port: a request must arrive whole within this time (slowloris bound). A probe that
 * cannot send a GET in 5 s is not one a load balancer would wait for either. */
export const adminRequestTimeoutMs = 5_000;

/** Account keys are 512 random bits, as Azure's (88 Base64 characters): SharedKey is HMAC-SHA256,
 * whose key strength is capped by the hash's block size anyway. */
export const accountKeyBytes = 64;

/** Accounts per stamp: every account's keys are cached in memory for the authoriser (~200 bytes
 * each), and listing them is one scan. Far above a laptop's or a team's needs. */
export const accountsMax = 10_000;

/** A cluster front end re-reads every account this often (`kura account --etcd` changes reach
 * every front end within it): one scan of ≤ accountsMax small rows. Azure's own key rotation
 * also takes effect within seconds, not at once. */
export const accountsRefreshMs = 5_000;

/** `kura serve`: how long start-up may wait for the partition layer to serve every partition
 * (a restart replays each commit log first) before giving up with a clear error. */
export const stampReadyTimeoutMs = 120_000;

/** Stop of an embedded stamp (`kura serve` on SIGTERM): requests in flight get this long to finish
 * before their connections are cut (an SDK retries a cut request; a stuck body would otherwise hold
 * the stop for requestBodyIdleTimeoutMs). */
export const stampStopDrainMs = 5_000;

/** After the cut, how long the front end waits for handlers' backend calls to end, so the layers
 * below stop under as few calls as possible (each is bounded by its own deadlines anyway). */
export const frontendCloseSettleMs = 2_000;

/** Each role's stop step may take at most this long; a step past it is abandoned (logged) and the
 * next one runs. Abandoning is safe: every acknowledged write is already durable, so the exit is no
 * worse than kill -9, which the journals and commit logs survive. */
export const stampStopStepMsMax = 4_000;

/** The whole stop (drain + every step) finishes within this bound: drain 5 s + settle 2 s + the
 * roles' steps share what is left; `kura serve` exits (code 1, logged) if it is ever exceeded. */
export const stampStopTimeoutMs = 20_000;

/** `kura serve`: how often start-up checks whether every partition is served (the map's watch makes the server load at once). */
export const stampReadyPollMs = 20;

/** A data directory's lock file is written within microseconds of its exclusive creation; one
 * still unreadable after this long was torn by a crash and is taken over. */
export const dataDirLockWriteGraceMs = 2_000;
