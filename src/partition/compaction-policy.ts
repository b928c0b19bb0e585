// Which runs a partition merges next (docs/partition-gc.md, "Compaction policy"): size-tiered.
// Runs are listed newest first. A checkpoint or a merge writes one sorted GROUP of runs (cut at
// runBytesMax, disjoint key ranges, one coveredSequence): adjacent runs with the same
// coveredSequence are taken as one group. Each group has a tier, floor(log_F(max(bytes, base) /
// base)). When F or more ADJACENT groups share a tier they are merged (a minor merge) and the
// output takes their place, so "the first listed run holding a key has its newest version" still
// holds. A byte is rewritten about once per tier: write amplification is O(log_F(bytes / base)).
// A major merge takes every run (only it may drop tombstones: it includes the oldest run); it is
// chosen when tombstones are a large share of the rows or the run count nears runsMax.
//
// Invariants: a chosen window is contiguous, made of whole groups (a minor one of ≥ F and at
// most mergeRunsMax groups), so merging never just re-cuts one group the same way.
// Pure: no I/O. Fault model: none (inputs are the manifest's footers).

export interface RunShape {
  readonly dataBytes: number;
  readonly rowCount: number;
  readonly tombstoneCount: number;
  readonly coveredSequence: number;
}

export interface CompactionPolicyLimits {
  /** Runs of one tier that start a minor merge (F). */
  readonly fanout: number;
  readonly tierBaseBytes: number;
  /** Most groups one minor merge takes. */
  readonly mergeRunsMax: number;
  readonly tombstoneRatio: number;
  /** A major merge is forced at this many runs. */
  readonly runsMajor: number;
}

/** Runs [start, end) of the newest-first list. Tombstones are dropped iff the window holds the
 * oldest run (end = runs.length): nothing older remains for them to shadow. */
export interface MergeChoice {
  readonly start: number;
  readonly end: number;
  readonly dropTombstones: boolean;
}

export function tierOf(dataBytes: number, limits: CompactionPolicyLimits): number {
  const ratio = Math.max(dataBytes, limits.tierBaseBytes) / limits.tierBaseBytes;
  return Math.floor(Math.log(ratio) / Math.log(limits.fanout) + 1e-9);
}

export function chooseMerge(runs: readonly RunShape[], limits: CompactionPolicyLimits): MergeChoice | null {
  if (runs.length === 0) return null;
  if (runs.length >= limits.runsMajor || tombstonesHeavy(runs, limits)) return { start: 0, end: runs.length, dropTombstones: true };
  return runs.length < 2 ? null : minorWindow(runs, limits);
}

function tombstonesHeavy(runs: readonly RunShape[], limits: CompactionPolicyLimits): boolean {
  let rows = 0;
  let tombstones = 0;
  for (const run of runs) {
    rows += run.rowCount;
    tombstones += run.tombstoneCount;
  }
  return rows > 0 && tombstones / rows >= limits.tombstoneRatio;
}

interface Group {
  readonly start: number;
  readonly end: number;
  readonly bytes: number;
}

/** Adjacent runs with one coveredSequence: the output of one checkpoint or one merge. */
export function runGroups(runs: readonly RunShape[]): Group[] {
  const groups: Group[] = [];
  for (const [index, run] of runs.entries()) {
    const last = groups.at(-1);
    if (last !== undefined && runs[last.start]?.coveredSequence === run.coveredSequence) {
      groups[groups.length - 1] = { start: last.start, end: index + 1, bytes: last.bytes + run.dataBytes };
    } else {
      groups.push({ start: index, end: index + 1, bytes: run.dataBytes });
    }
  }
  return groups;
}

/** The first (newest) maximal stretch of ≥ fanout adjacent groups of one tier (at most mergeRunsMax groups). */
function minorWindow(runs: readonly RunShape[], limits: CompactionPolicyLimits): MergeChoice | null {
  const groups = runGroups(runs);
  let first = 0;
  while (first < groups.length) {
    const tier = tierOf(groups[first]?.bytes ?? 0, limits);
    let last = first + 1;
    while (last < groups.length && last - first < limits.mergeRunsMax && tierOf(groups[last]?.bytes ?? 0, limits) === tier) last += 1;
    if (last - first >= limits.fanout) {
      const start = groups[first]?.start ?? 0;
      const end = groups[last - 1]?.end ?? runs.length;
      return { start, end, dropTombstones: end === runs.length };
    }
    first = last;
  }
  return null;
}
