// `kura status [--data DIR | --etcd URLS]`: every process of a stamp, its role, addresses and
// readiness, and which controller leads. Exit 0 only when every process is ready and a leader
// exists; 1 otherwise (2 for bad flags or no stamp found), so scripts and tests can gate on it.
//
// Where the process list comes from (src/cluster/cluster-state.ts): --data reads the dev
// cluster's cluster.json, which works even when etcd is down (the etcd members are listed, and
// shown down); --etcd reads the list dev-cluster published under cluster/processes. Health comes
// from each process itself (admin /readyz, etcd /health, or a TCP connect), the leader from etcd.
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { clusterProcessesKey, parseClusterProcesses, readClusterState, type ProcessRecord } from '../cluster/cluster-state.ts';
import { formatStatus, healthy, probeProcesses, type Leadership } from '../cluster/cluster-status.ts';
import { connectEtcd } from '../metastore/connect-etcd.ts';
import type { MetaStore } from '../metastore/meta-store.ts';
import { controllerLeaderKey, readControllerLeader } from '../stamp/cluster-controller.ts';
import { isStorageError, StorageError } from '../util/errors.ts';
import { positiveInteger, reportingErrors } from './process-lifecycle.ts';

interface StatusFlags {
  readonly data?: string;
  readonly etcd?: string;
  readonly timeoutMs: string;
  readonly json?: boolean;
}

const exitUnhealthy = 1;
/** What a controller leader publishes (docs/cluster.md, "Controller election"); only read here. */
const exitNoStamp = 2;

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description('Show every process of a stamp: role, address, readiness (admin /readyz, etcd /health) and which controller leads. Exits 0 when every process is ready and a controller leads, 1 if anything is down or none leads, 2 when there is no stamp to ask (or a bad flag).')
    .option('--data <dir>', 'a `kura dev-cluster` data directory (reads its cluster.json; works while etcd is down)')
    .option('--etcd <urls>', 'comma-separated etcd client URLs (reads the process list published there)')
    .option('--timeout-ms <ms>', 'time each probe may take', '3000')
    .option('--json', 'print the report as JSON')
    .action(async (flags: StatusFlags) => {
      await reportingErrors('status', async () => { process.exitCode = await runStatus(flags); }, exitNoStamp);
    });
}

async function runStatus(flags: StatusFlags): Promise<number> {
  if ((flags.data === undefined) === (flags.etcd === undefined)) throw new StorageError('config.invalid', 'give exactly one of --data DIR or --etcd URLS');
  const timeoutMs = positiveInteger(flags.timeoutMs, '--timeout-ms');
  const { processes, endpoints, preface } = await processList(flags, timeoutMs);
  const [report, leadership] = await Promise.all([probeProcesses(processes, timeoutMs), leader(endpoints, processes, timeoutMs)]);
  const ok = healthy(report, leadership);
  if (flags.json === true) {
    process.stdout.write(`${JSON.stringify({ healthy: ok, leader: leadership, processes: report.map((entry) => ({ ...entry.process, state: entry.state, reason: entry.reason, probe: entry.probe })) }, null, 2)}\n`);
  } else {
    process.stdout.write(`${preface}${formatStatus(report, leadership)}`);
  }
  return ok ? 0 : exitUnhealthy;
}

async function processList(flags: StatusFlags, timeoutMs: number): Promise<{ processes: ProcessRecord[]; endpoints: string[]; preface: string }> {
  if (flags.data !== undefined) {
    const directory = resolve(flags.data);
    const state = await readClusterState(directory);
    if (state === null) throw new StorageError('config.invalid', `no dev cluster in ${directory} (no cluster.json): start one with kura dev-cluster --data ${flags.data}`);
    const endpoints = state.topology.etcdMembers.map((member) => `http://127.0.0.1:${member.clientPort}`);
    const supervisor = state.supervisorPid !== null && alive(state.supervisorPid) ? `running (pid ${state.supervisorPid}), ${state.phase}` : `not running (last ${state.phase} at ${state.updatedAt})`;
    return { processes: state.processes, endpoints, preface: `dev cluster ${directory}: ${supervisor}; endpoint ${state.endpoint}\n\n` };
  }
  const endpoints = (flags.etcd ?? '').split(',').map((url) => url.trim()).filter((url) => url !== '');
  const value = await withStore(endpoints, timeoutMs, (store) => store.get(clusterProcessesKey));
  if (value === null) throw new StorageError('config.invalid', `etcd at ${endpoints.join(',')} holds no ${clusterProcessesKey} (published by kura dev-cluster once its stamp is ready)`);
  const published = parseClusterProcesses(value.value, `etcd key ${clusterProcessesKey}`);
  return { processes: published.processes, endpoints, preface: `stamp of etcd ${endpoints.join(',')}: endpoint ${published.endpoint}\n\n` };
}

/** Who leads, from etcd: the controller leader's id is its process name (dev-cluster's --controller-id). */
async function leader(endpoints: readonly string[], processes: readonly ProcessRecord[], timeoutMs: number): Promise<Leadership> {
  try {
    const current = await withStore(endpoints, timeoutMs, (store) => readControllerLeader(store));
    if (current === null) return { leader: null, detail: `no ${controllerLeaderKey} in etcd: no controller leads` };
    const { controllerId, address } = current;
    const known = processes.some((record) => record.name === controllerId);
    return { leader: controllerId, detail: `at ${address}${known ? '' : ' (not a process of this list)'}` };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (isStorageError(error) && error.code === 'partition.corrupt') return { leader: null, detail: `${controllerLeaderKey} is malformed: ${message.slice(0, 200)}` };
    return { leader: null, detail: `etcd unreachable: ${(message.split('\n')[0] ?? '').slice(0, 200)}` };
  }
}

/** One short-lived etcd connection; every call bounded by timeoutMs (etcd down is an answer). */
async function withStore<T>(endpoints: readonly string[], timeoutMs: number, read: (store: MetaStore) => Promise<T>): Promise<T> {
  const store = await connectEtcd({ endpoints, callTimeoutMs: timeoutMs });
  try {
    return await read(store);
  } finally {
    await store.close();
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
