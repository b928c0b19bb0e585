// A floor under V8's old-generation limit: after every full GC, V8's heap-growing factor is set so
// that the next full GC starts no earlier than at `floorBytes` of old generation, while the live heap
// is small; once the live heap is at least half the floor, V8's own factor applies again.
//
// Why: V8 sets the limit at about twice the live heap (45 MB for kura serve's ~22 MB), and with
// upload bodies in flight (node:http's socket buffers are external memory) it started a full GC
// every ~25 MiB received, each marking the whole live heap: 1.1-1.4 ms of GC-thread CPU per MiB
// uploaded. With the limit at 96 MiB a full GC comes once per ~55-60 MiB, when V8's external-memory
// step (64 MB of new external memory since the last full GC) calls for one anyway (bench/README.md,
// "ninth session: GC per uploaded MiB").
//
// Invariants: the factor asked is at most 4 (V8's own largest), and only while the live heap is
// under half the floor; a live heap of half the floor or more gets V8's own factor. V8 adds its
// young generation (16 MiB) on top of the limit either way.
// Fault model: the flag (set at run time; V8 reads it only when it computes the limit, after each
// full GC) is computed from the heap one full GC earlier, so a heap that grew in between gets a
// limit above the floor, at most 4 × its size, which V8's own factor may also choose; measured:
// peak RSS under 64 concurrent uploads unchanged (bench/README.md, "memory under concurrent uploads").
import { PerformanceObserver, constants as performanceConstants } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';

/** V8's own largest growing factor is 4: asking no more keeps a stale factor (set for a smaller
 * heap than the next full GC finds) within what V8 may choose by itself. */
const growingPercentMax = 300;

/**
 * The heap-growing percent V8 should use after a full GC that left `liveBytes`: enough for a
 * limit of `floorBytes` (at most a factor of 4), or 0 (V8's own factor) once V8's usual
 * doubling reaches the floor.
 */
export function growingPercentFor(liveBytes: number, floorBytes: number): number {
  if (liveBytes <= 0 || liveBytes * 2 >= floorBytes) return 0;
  return Math.min(growingPercentMax, Math.ceil((floorBytes / liveBytes - 1) * 100));
}

/** Bytes of objects in V8's old generation (every space but the young generation's). */
function oldGenerationBytes(): number {
  let bytes = 0;
  for (const space of getHeapSpaceStatistics()) if (!space.space_name.startsWith('new_')) bytes += space.space_used_size;
  return bytes;
}

export class HeapLimitFloor {
  readonly #floorBytes: number;
  readonly #observer: PerformanceObserver;
  #percent = 0;

  constructor(floorBytes: number) {
    this.#floorBytes = floorBytes;
    this.#observer = new PerformanceObserver((list) => {
      const fullGc = list.getEntries().some((entry) => (entry as { readonly detail?: { readonly kind?: number } }).detail?.kind === performanceConstants.NODE_PERFORMANCE_GC_MAJOR);
      if (fullGc) this.#adjust();
    });
  }

  /** Observes full GCs (until stop) and sets the factor once from the heap as it is now. */
  start(): void {
    this.#observer.observe({ entryTypes: ['gc'] });
    this.#adjust();
  }

  stop(): void {
    this.#observer.disconnect();
    this.#apply(0);
  }

  #adjust(): void {
    this.#apply(growingPercentFor(oldGenerationBytes(), this.#floorBytes));
  }

  #apply(percent: number): void {
    if (percent === this.#percent) return;
    this.#percent = percent;
    setFlagsFromString(`--heap-growing-percent=${percent}`);
  }
}
