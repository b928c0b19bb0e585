// CPU time and resident memory of a server process, read from Linux's /proc/<pid>/stat and
// /proc/<pid>/status. The benchmark samples a peer's server process during each workload, so
// "server CPU seconds per operation" and "peak resident memory" come from the server itself,
// not from the client that drives it. Parsing is pure (tested on the test process's own files);
// reading is synchronous because a sample is two small reads of procfs, never of a disk.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcessSample {
  /** User + system CPU time of the process so far. */
  readonly cpuSeconds: number;
  /** Current resident set size (VmRSS). */
  readonly rssBytes: number;
  /** Highest resident set size the kernel has seen for this process (VmHWM). */
  readonly peakRssBytes: number;
}

/** utime + stime (fields 14 and 15 of /proc/<pid>/stat) in seconds. */
export function parseProcStatCpuSeconds(text: string, ticksPerSecond: number): number {
  // Field 2 (comm) is in parentheses and may contain spaces or ')': split after the last ')'.
  const close = text.lastIndexOf(')');
  if (close === -1) throw new Error(`not a /proc/<pid>/stat line: ${text.slice(0, 80)}`);
  // After ")" comes field 3 (state); utime is field 14, so index 11 of the remaining fields.
  const fields = text.slice(close + 2).trim().split(/\s+/);
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error('/proc/<pid>/stat has no utime/stime');
  return (utime + stime) / ticksPerSecond;
}

/** A "Name:   1234 kB" field of /proc/<pid>/status in bytes; null when the field is absent. */
export function parseProcStatusBytes(text: string, field: 'VmRSS' | 'VmHWM'): number | null {
  const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB$`, 'm').exec(text);
  return match?.[1] === undefined ? null : Number(match[1]) * 1024;
}

let ticksCache: number | null = null;

/** The kernel's USER_HZ (CLK_TCK); 100 on every mainstream Linux build when getconf is absent. */
export function clockTicksPerSecond(): number {
  if (ticksCache !== null) return ticksCache;
  try {
    const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    ticksCache = Number.isInteger(value) && value > 0 ? value : 100;
  } catch {
    ticksCache = 100;
  }
  return ticksCache;
}

/** One sample of a live process; throws if the process is gone. */
export function readProcessSample(pid: number): ProcessSample {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const rssBytes = parseProcStatusBytes(status, 'VmRSS') ?? 0;
  return {
    cpuSeconds: parseProcStatCpuSeconds(stat, clockTicksPerSecond()),
    rssBytes,
    peakRssBytes: Math.max(rssBytes, parseProcStatusBytes(status, 'VmHWM') ?? 0),
  };
}

/**
 * Samples one process every `intervalMs` while a workload runs and keeps the peak resident
 * size; the CPU figure is the difference between the first and last sample. A process that
 * is replaced (kill -9 and restart) is tracked by starting a new sampler.
 */
export class ProcessSampler {
  private readonly read: () => ProcessSample;
  private readonly first: ProcessSample;
  private last: ProcessSample;
  private peakRssBytes: number;
  private readonly timer: NodeJS.Timeout;

  constructor(options: { readonly read: () => ProcessSample; readonly intervalMs: number }) {
    this.read = options.read;
    this.first = options.read();
    this.last = this.first;
    this.peakRssBytes = this.first.peakRssBytes;
    this.timer = setInterval(() => this.sampleQuietly(), options.intervalMs);
    this.timer.unref();
  }

  /** Stops sampling; returns CPU seconds used since the start and the peak resident size. */
  stop(): { readonly cpuSeconds: number; readonly peakRssBytes: number } {
    clearInterval(this.timer);
    this.sampleQuietly();
    return { cpuSeconds: this.last.cpuSeconds - this.first.cpuSeconds, peakRssBytes: this.peakRssBytes };
  }

  private sampleQuietly(): void {
    try {
      this.last = this.read();
      this.peakRssBytes = Math.max(this.peakRssBytes, this.last.peakRssBytes);
    } catch {
      // The process exited between samples: keep the last good sample.
    }
  }
}

/** CPU seconds of a process's threads, grouped by thread name (/proc/<pid>/task/<tid>/comm). */
export type ThreadCpu = ReadonlyMap<string, { readonly threads: number; readonly userSeconds: number; readonly systemSeconds: number }>;

/**
 * Reads every thread of a live process, grouped by name: Node's `MainThread`, V8's `V8Worker`
 * (concurrent and parallel garbage collection, background compilation), `libuv-worker` (the
 * thread pool: fs calls, fsync), worker threads by their own names. A thread that exits between
 * the listing and its read is skipped.
 */
export function readThreadCpu(pid: number): ThreadCpu {
  const ticks = clockTicksPerSecond();
  const groups = new Map<string, { threads: number; userSeconds: number; systemSeconds: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let name: string;
    let stat: string;
    try {
      name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue;
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).trim().split(/\s+/);
    const group = groups.get(name) ?? { threads: 0, userSeconds: 0, systemSeconds: 0 };
    group.threads += 1;
    group.userSeconds += Number(fields[11]) / ticks;
    group.systemSeconds += Number(fields[12]) / ticks;
    groups.set(name, group);
  }
  return groups;
}

/** `after - before` per thread name (threads that started in between count from zero). */
export function threadCpuDelta(before: ThreadCpu, after: ThreadCpu): ThreadCpu {
  const delta = new Map<string, { threads: number; userSeconds: number; systemSeconds: number }>();
  for (const [name, end] of after) {
    const start = before.get(name);
    delta.set(name, { threads: end.threads, userSeconds: end.userSeconds - (start?.userSeconds ?? 0), systemSeconds: end.systemSeconds - (start?.systemSeconds ?? 0) });
  }
  return delta;
}
