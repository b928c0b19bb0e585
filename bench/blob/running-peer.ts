// `kura bench`'s peer: a stamp that is already running (`kura serve`, a dev cluster, or any
// endpoint that speaks Azure Blob), measured where it stands. The benchmark never starts, kills or
// restarts it, so the kill -9 durability check does not apply here (`npm run bench` makes it on
// the peers it starts itself). When the stamp's processes are on this machine (their pids given,
// or a dev cluster's cluster.json) their CPU and memory are summed into the server figures;
// otherwise those figures are NaN, which the tables print as "not measured".
import { readClusterState } from '../../src/cluster/cluster-state.ts';
import { sumSamples } from './cluster-peer.ts';
import { readProcessSample, type ProcessSample } from './proc-sample.ts';
import type { BenchPeer, PeerEndpoint } from './peer.ts';

const notMeasured: ProcessSample = { cpuSeconds: Number.NaN, rssBytes: Number.NaN, peakRssBytes: Number.NaN };

export interface RunningPeerOptions {
  readonly name: string;
  readonly connectionString: string;
  /** The stamp's processes on this machine, sampled as one; empty: server figures not measured. */
  readonly pids: readonly number[];
}

export function runningPeer(options: RunningPeerOptions): BenchPeer {
  const endpoint: PeerEndpoint = { connectionString: options.connectionString, pid: options.pids[0] ?? 0 };
  const refuse = (what: string): Promise<never> => Promise.reject(new Error(`kura bench never ${what} a running stamp (${options.name})`));
  return {
    name: options.name,
    persistence: { kind: 'running', why: 'a running stamp: kura bench never kills it (npm run bench checks kill -9 on the peers it starts)' },
    start: () => Promise.resolve(endpoint),
    kill9: () => refuse('kills'),
    restart: () => refuse('restarts'),
    stop: () => Promise.resolve(),
    sample: () => (options.pids.length === 0 ? notMeasured : sumSamples(options.pids.flatMap(sampleIfAlive))),
  };
}

function sampleIfAlive(pid: number): ProcessSample[] {
  try {
    return [readProcessSample(pid)];
  } catch {
    return [];
  }
}

/** A running `kura dev-cluster --data DIR`: its connection string and every pid its cluster.json names. */
export async function devClusterTarget(directory: string): Promise<{ readonly connectionString: string; readonly pids: number[] }> {
  const state = await readClusterState(directory);
  if (state === null) throw new Error(`no dev cluster in ${directory} (no cluster.json): start one with kura dev-cluster --data ${directory}`);
  if (state.phase !== 'ready' || state.connectionString === null) throw new Error(`the dev cluster in ${directory} is ${state.phase}, not ready: wait for it (kura status --data ${directory})`);
  const pids = [state.supervisorPid, ...state.processes.map((record) => record.pid)].filter((pid): pid is number => pid !== null && pid > 0);
  return { connectionString: state.connectionString, pids: [...new Set(pids)] };
}
