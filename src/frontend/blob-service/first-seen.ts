// FirstSeen: when a background sweeper first saw each row it waits on (a graveyard, a sweep intent),
// on its own monotonic clock, so a grace is measured without comparing front ends' clocks.
//
// Invariants: at most `entriesMax` ids (the oldest forgotten first, which only restarts that row's
// grace); an id seen again keeps its first time until forgotten.
// Fault model: memory only; a crash forgets everything (every grace starts again).

export class FirstSeen {
  readonly #atMs = new Map<string, number>();
  readonly #entriesMax: number;

  constructor(entriesMax: number) {
    this.#entriesMax = entriesMax;
  }

  /** When `id` was first seen (`nowMs` if never). */
  at(id: string, nowMs: number): number {
    const seen = this.#atMs.get(id);
    if (seen !== undefined) return seen;
    this.#atMs.set(id, nowMs);
    if (this.#atMs.size > this.#entriesMax) {
      const oldest = this.#atMs.keys().next();
      if (oldest.done !== true) this.#atMs.delete(oldest.value);
    }
    return nowMs;
  }

  forget(id: string): void {
    this.#atMs.delete(id);
  }
}
