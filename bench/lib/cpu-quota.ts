// A CPU budget for one process of a benchmark: a cgroup (v1 `cpu` controller, as mounted on this
// machine at /sys/fs/cgroup/cpu) whose CFS quota is `percent` of one core, with the process (all
// its threads) moved into it. Used to make a dev cluster's front ends the bottleneck on purpose,
// as if each ran on its own small host, so that adding a front end can show in the throughput on
// a 2-core machine where the whole stamp otherwise saturates both cores long before one front end
// does. Needs root and a writable cgroup mount; throws a clear error otherwise. release() moves the
// process back to the root group and removes the group (also call it on failure). Figures only.
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const cpuCgroupRoot = '/sys/fs/cgroup/cpu';
const periodUs = 100_000;

export interface CpuQuota {
  /** CFS throttling so far: periods in which the group hit its quota, and the time it waited. */
  throttled(): { readonly periods: number; readonly throttledPeriods: number; readonly throttledMs: number };
  release(): void;
}

export function capProcessCpu(pid: number, percent: number, name: string): CpuQuota {
  if (!(percent > 0 && percent <= 100)) throw new Error(`a CPU quota must be in (0, 100] % of a core, got ${percent}`);
  const group = join(cpuCgroupRoot, `kura-bench-${process.pid}-${name}`);
  try {
    mkdirSync(group);
    writeFileSync(join(group, 'cpu.cfs_period_us'), String(periodUs));
    writeFileSync(join(group, 'cpu.cfs_quota_us'), String(Math.round((periodUs * percent) / 100)));
    writeFileSync(join(group, 'cgroup.procs'), String(pid));
  } catch (error) {
    throw new Error(`cannot give ${name} (pid ${pid}) a CPU quota in ${group} (needs root and the cgroup v1 cpu controller): ${error instanceof Error ? error.message : String(error)}`);
  }
  return {
    throttled: () => {
      const stat = readFileSync(join(group, 'cpu.stat'), 'utf8');
      const field = (key: string): number => Number(new RegExp(`^${key} (\\d+)$`, 'm').exec(stat)?.[1] ?? Number.NaN);
      return { periods: field('nr_periods'), throttledPeriods: field('nr_throttled'), throttledMs: field('throttled_time') / 1e6 };
    },
    release: () => {
      try {
        writeFileSync(join(cpuCgroupRoot, 'cgroup.procs'), String(pid));
      } catch {
        // The process is gone: the group empties by itself.
      }
      rmdirSync(group);
    },
  };
}
