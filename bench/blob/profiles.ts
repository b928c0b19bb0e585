// The blob benchmark's two profiles. Every load loop is bounded in operations and in time,
// and every write workload in bytes (workloadBytesMax), so a run's length and its disk and
// memory use are known before it starts: quick stays under 5 minutes together with the stream
// benchmarks (`npm run bench`), full under 30 minutes (bench/blob/README.md has the time budget).
// Full runs the whole size × concurrency matrix of issue 5; quick runs only the cells the
// issue's goals are judged on (goalCells), a 64 MiB blob and a 1,000-blob listing.
const KiB = 1024;
const MiB = 1024 * KiB;

/** One Put Blob or Get Blob loop: operation, client, blob size and concurrency. */
export interface PutGetCell {
  readonly kind: 'put' | 'get';
  readonly client: 'sdk' | 'raw';
  readonly sizeBytes: number;
  readonly concurrency: number;
}

export interface BlobProfile {
  readonly name: 'quick' | 'full';
  /** 'matrix': sizesBytes × concurrencies (SDK) and × rawConcurrencies (raw); else these cells. */
  readonly putGetCells: 'matrix' | readonly PutGetCell[];
  /** Time bound of each put/get/mixed loop of a goal cell (goalCells). */
  readonly durationMs: number;
  /** Time bound of every other put/get loop of the matrix (at most durationMs). */
  readonly matrixDurationMs: number;
  /** Count bound of each put/get/mixed loop (also bounds a durability read-back). */
  readonly operationsMax: number;
  /** Byte bound of each write loop: operations are capped at workloadBytesMax / size. */
  readonly workloadBytesMax: number;
  readonly sizesBytes: readonly number[];
  readonly concurrencies: readonly number[];
  /** Concurrencies at which the raw undici client repeats put/get. */
  readonly rawConcurrencies: readonly number[];
  /** Blobs written before a get loop, read round-robin. */
  readonly getSetSize: number;
  readonly bigBlobBytes: number;
  readonly bigBlockBytes: number;
  readonly bigBlockConcurrency: number;
  readonly bigRepeats: number;
  /** Downloads of the large blob(s) timed: more than uploads, since one is a fraction of a second
   * and a single sample per peer moved the download ratio by 2× on a shared machine. */
  readonly bigDownloadRepeats: number;
  readonly listBlobCount: number;
  readonly listBlobBytes: number;
  readonly listPageSize: number;
  readonly listRepeats: number;
  /** Time bound of populating the list container (fewer blobs if it runs out). */
  readonly listPopulateMs: number;
  /** Client that populates the list container (untimed set-up): raw undici costs the client about half the SDK's CPU. */
  readonly listPopulateClient: 'sdk' | 'raw';
  /** Concurrency of that population. */
  readonly listPopulateConcurrency: number;
  /** Peers that run the listing (absent: every peer); the others report it as left out by policy. */
  readonly listOnlyOn?: readonly string[];
  readonly mixedSizeBytes: number;
  readonly mixedConcurrency: number;
  readonly mixedReadFraction: number;
  readonly mixedSetSize: number;
  readonly mixedDurationMs: number;
  /** Bound of one whole large upload or download, and of a durability read-back. */
  readonly longOperationMs: number;
  /** Concurrency of the durability read-back after a restart. */
  readonly checkConcurrency: number;
  readonly sampleIntervalMs: number;
  /** Untimed Get Blobs before a Get loop that follows a kill -9 restart (workloads.ts warmUp). */
  readonly getWarmUpAfterRestartMs: number;
  /**
   * Wall-time budget of the whole blob run (limits and every peer): before every workload the
   * planner (budget-plan.ts) estimates it and every workload still to come, reserves the goal
   * cells of every peer first and fills the rest in priority order; a workload the plan leaves
   * out is skipped and reported with the reason. Every workload is bounded on its own; this bounds
   * their sum, so quick stays under 5 minutes and full under 30 with the stream part.
   */
  readonly runBudgetMs: number;
  /**
   * Rounds of the goal workloads after the per-peer runs (goal-rounds.ts): the goal peers up at
   * once, each round measuring them one right after the other in a rotated order; the goals'
   * verdicts are the median of the rounds' ratios.
   */
  readonly goalRounds: number;
}

/**
 * The cells issue 5's goals are judged on, with the SDK and with raw undici: Put Blob 64 KiB at
 * 16 clients (vs Azurite, 0 lost), Get Blob 64 KiB at 16 (vs the null server, p99), Put Blob
 * 4 KiB at 64 (vs Azurite on 1 disk).
 */
export const goalCells: readonly PutGetCell[] = (['sdk', 'raw'] as const).flatMap((client) => [
  { kind: 'put', client, sizeBytes: 64 * KiB, concurrency: 16 },
  { kind: 'get', client, sizeBytes: 64 * KiB, concurrency: 16 },
  { kind: 'put', client, sizeBytes: 4 * KiB, concurrency: 64 },
]);

const common = {
  concurrencies: [1, 16, 64],
  getSetSize: 64,
  bigBlockBytes: 8 * MiB,
  bigBlockConcurrency: 4,
  listBlobBytes: 64,
  listPageSize: 5000,
  mixedSizeBytes: 64 * KiB,
  mixedConcurrency: 16,
  mixedReadFraction: 0.7,
  mixedSetSize: 256,
  longOperationMs: 180_000,
  checkConcurrency: 16,
  sampleIntervalMs: 100,
  getWarmUpAfterRestartMs: 1_500,
} as const;

export const blobProfiles: Readonly<Record<'quick' | 'full', BlobProfile>> = {
  quick: {
    ...common,
    name: 'quick',
    putGetCells: goalCells,
    // Only the goal cells' sizes need a machine limit (plus the large blob's block size).
    sizesBytes: [4 * KiB, 64 * KiB],
    durationMs: 1_000,
    matrixDurationMs: 1_000,
    operationsMax: 5_000,
    workloadBytesMax: 256 * MiB,
    rawConcurrencies: [16],
    // The 256 MiB blob and 100,000-blob listing are the full profile's; quick runs the
    // same code on smaller ones to stay within its 5 minutes.
    bigBlobBytes: 64 * MiB,
    bigRepeats: 1,
    bigDownloadRepeats: 5,
    listBlobCount: 500,
    listRepeats: 3,
    listPopulateMs: 15_000,
    listPopulateClient: 'sdk',
    listPopulateConcurrency: 64,
    mixedDurationMs: 1_500,
    runBudgetMs: 270_000,
    goalRounds: 3,
  },
  full: {
    ...common,
    name: 'full',
    putGetCells: 'matrix',
    sizesBytes: [4 * KiB, 64 * KiB, MiB],
    durationMs: 2_500,
    // The matrix beyond the goal cells: 1.5 s loops (17-36-56's slowest cell, put 1 MiB ×1 on
    // Azurite, made 124 Puts in 2.5 s: ~75 in 1.5 s; every 4 KiB and 64 KiB cell 200-13,000).
    matrixDurationMs: 1_500,
    operationsMax: 30_000,
    workloadBytesMax: 1024 * MiB,
    rawConcurrencies: [1, 16, 64],
    bigBlobBytes: 256 * MiB,
    bigRepeats: 2,
    bigDownloadRepeats: 4,
    listBlobCount: 100_000,
    // One timed pass of 20 pages of 5,000 (the kill -9 check lists them all once more, untimed):
    // two passes cost 30 s more per peer, the SDK's XML parsing bounding both near 3,300 blobs/s.
    listRepeats: 1,
    listPopulateMs: 240_000,
    listPopulateClient: 'raw',
    listPopulateConcurrency: 64,
    listOnlyOn: ['kura-1disk', 'azurite-disk', 'null-server'],
    mixedDurationMs: 6_000,
    // 24 min: the stream part before it takes ~4 min with its 5 s cases (stream-bench.ts), so the
    // whole `npm run bench -- --profile full` stays under 30 min with ~2 min to spare.
    runBudgetMs: 1_440_000,
    goalRounds: 5,
  },
};

/**
 * The profile with every put/get loop bounded to `loopMs` (`--loop-seconds`) instead of its own,
 * and its run budget scaled by the same factor, so longer loops are not cut by the budget meant
 * for the profile's own.
 */
export function withLoopMs(profile: BlobProfile, loopMs: number): BlobProfile {
  return { ...profile, durationMs: loopMs, matrixDurationMs: loopMs, runBudgetMs: Math.round(profile.runBudgetMs * Math.max(1, loopMs / profile.durationMs)) };
}

/** The profile with `--loop-seconds TEXT` applied (withLoopMs), or as it is when the flag is absent. */
export function withLoopSeconds(profile: BlobProfile, text: string | undefined): BlobProfile {
  if (text === undefined) return profile;
  const seconds = Number(text);
  if (!(seconds > 0 && seconds <= 60)) throw new Error(`--loop-seconds must be a number of seconds in (0, 60], got ${text}`);
  return withLoopMs(profile, seconds * 1000);
}

export function parseProfileName(value: string | undefined): 'quick' | 'full' {
  if (value === undefined || value === 'quick') return 'quick';
  if (value === 'full') return 'full';
  throw new Error(`--profile must be quick or full, got ${value}`);
}

export function sizeLabel(bytes: number): string {
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  if (bytes >= KiB && bytes % KiB === 0) return `${bytes / KiB} KiB`;
  return `${bytes} B`;
}
