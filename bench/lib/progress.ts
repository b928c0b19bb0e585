// One progress bar for a whole benchmark run (`npm run bench` drives the stream and the blob
// benchmarks through the same bar): a fixed number of steps known up front, a label for the
// step in progress, elapsed seconds, and skip() for the steps of a peer that could not run.
import cliProgress from 'cli-progress';

/** What a benchmark section reports its progress to. */
export interface ProgressSink {
  /** Step `label` begins; the previous step is done. */
  step(label: string): void;
  /** Marks every step up to `done` as done without running them. */
  skipTo(done: number): void;
  /** Steps done so far. */
  readonly done: number;
}

export class BenchProgress implements ProgressSink {
  private readonly bar: cliProgress.SingleBar;
  private readonly startedMs = performance.now();
  private count = 0;

  constructor(name: string, total: number) {
    // Not a terminal (a log file, CI): one line every 10 s instead of nothing, so a long run
    // written to a file still shows where it is.
    this.bar = new cliProgress.SingleBar({ format: `${name} [{bar}] {value}/{total} {elapsed}s {label}`, etaBuffer: 20, noTTYOutput: true, notTTYSchedule: 10_000 }, cliProgress.Presets.shades_classic);
    this.bar.start(total, 0, { label: '', elapsed: 0 });
  }

  get done(): number {
    return this.count;
  }

  step(label: string): void {
    this.bar.update(this.count++, { label, elapsed: this.elapsedSeconds() });
  }

  skipTo(done: number): void {
    this.count = Math.max(this.count, done);
    this.bar.update(this.count, { elapsed: this.elapsedSeconds() });
  }

  /** Completes the bar and stops redrawing it (call before printing tables). */
  finish(): void {
    this.bar.update(this.bar.getTotal(), { label: 'done', elapsed: this.elapsedSeconds() });
    this.bar.stop();
  }

  elapsedSeconds(): number {
    return Math.round((performance.now() - this.startedMs) / 1000);
  }
}
