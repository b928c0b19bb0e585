// SweepWake: how this process's writers tell its background sweeper there is new work (a sweep
// intent put, a container deleted), so a sweeper that backed off while idle ticks again at its
// normal interval instead of after its longest back-off.
//
// Invariants: one listener (the sweeper); notify() before it listens does nothing (the sweeper's
// first tick comes at its normal interval anyway). Fault model: memory only; work written by other
// processes is found by the sweeper's own scans, at most the back-off bound later.
export class SweepWake {
  #listener: (() => void) | null = null;

  listen(listener: () => void): void {
    this.#listener = listener;
  }

  notify(): void {
    this.#listener?.();
  }
}
