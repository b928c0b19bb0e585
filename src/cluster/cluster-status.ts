// What `kura status` reports: every process of a stamp probed once, in parallel, bounded by a
// timeout each: etcd members by /health, roles with an admin port by /readyz, the rest (and the
// balancer) by a TCP connect. The caller adds who leads (read from etcd) and prints the table.
//
// A process counts as healthy only when its probe answers 'ready'; 'not-ready' (it answers but
// says it cannot do its job) and 'down' (no answer) both make the status fail, as does a stamp
// with no controller leading.
import type { ProcessRecord } from './cluster-state.ts';
import { probeEtcd, probeReadyz, probeTcp, type ProbeResult, type ProbeState } from './probes.ts';

export interface ProcessHealth {
  readonly process: ProcessRecord;
  readonly state: ProbeState;
  readonly reason: string;
  /** Through which port the answer came. */
  readonly probe: 'etcd /health' | 'admin /readyz' | 'tcp' | 'none';
}

export interface Leadership {
  /** Name of the process that leads the control plane, or null with why not known. */
  readonly leader: string | null;
  readonly detail: string;
}

export async function probeProcesses(processes: readonly ProcessRecord[], timeoutMs: number): Promise<ProcessHealth[]> {
  return Promise.all(processes.map(async (record): Promise<ProcessHealth> => {
    if (record.address === null) return { process: record, ...pidProbe(record.pid), probe: 'none' };
    const [probe, result] = await probeOne(record, record.address, timeoutMs);
    return { process: record, state: result.state, reason: result.reason, probe };
  }));
}

/** A process with no port at all: alive or not by its pid (dev clusters run on this machine). */
function pidProbe(pid: number | null): ProbeResult {
  if (pid === null) return { state: 'down', reason: 'never started' };
  try {
    process.kill(pid, 0);
    return { state: 'ready', reason: `pid ${pid} alive (no port to ask)` };
  } catch {
    return { state: 'down', reason: `pid ${pid} is gone` };
  }
}

async function probeOne(record: ProcessRecord, address: string, timeoutMs: number): Promise<[ProcessHealth['probe'], ProbeResult]> {
  if (record.role === 'etcd') return ['etcd /health', await probeEtcd(address, timeoutMs)];
  if (record.admin !== null) return ['admin /readyz', await probeReadyz(record.admin, timeoutMs)];
  return ['tcp', await probeTcp(address, timeoutMs)];
}

export function healthy(report: readonly ProcessHealth[], leadership: Leadership): boolean {
  return leadership.leader !== null && report.every((entry) => entry.state === 'ready');
}

/** A fixed-width table, one process a line, the leader marked. */
export function formatStatus(report: readonly ProcessHealth[], leadership: Leadership): string {
  const header = ['PROCESS', 'ROLE', 'ADDRESS', 'ADMIN', 'STATE', 'DETAIL'];
  const rows = report.map((entry) => [
    entry.process.name + (entry.process.name === leadership.leader ? ' *' : ''),
    entry.process.role + (entry.process.faultDomain === null ? '' : ` (${entry.process.faultDomain})`),
    entry.process.address ?? '-',
    entry.process.admin ?? '-',
    entry.state.toUpperCase(),
    entry.reason,
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join('  ');
  const down = report.filter((entry) => entry.state !== 'ready').map((entry) => entry.process.name);
  const summary = down.length === 0 ? `all ${report.length} processes ready` : `${down.length} of ${report.length} processes not ready: ${down.join(', ')}`;
  const leader = leadership.leader === null ? `no leader: ${leadership.detail}` : `leader: ${leadership.leader} (*) ${leadership.detail}`;
  return [line(header), ...rows.map(line), '', leader, summary, ''].join('\n');
}
