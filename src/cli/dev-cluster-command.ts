// `kura dev-cluster --data DIR`: a whole stamp as separate processes on loopback, for tests and
// demos (docs/ARCHITECTURE.md, "Modes: dev cluster"). It parses and checks the flags, locks DIR,
// and hands the rest to DevCluster (src/cluster/dev-cluster.ts), which starts etcd and every role
// as child processes and the balancer in front of the front ends.
//
// Lifecycle: lock DIR (one dev-cluster per data directory) → start, one progress line per process
// on stdout → the connection string on stdout → serve until SIGTERM/SIGINT → stop in reverse order
// (bounded: SIGTERM, then SIGKILL) → exit 0. A signal during the start stops what started and
// exits 0 as well. A second signal exits at once (1). A child that dies once the stamp is ready is
// reported on stderr and started again on the same ports after a back-off (1 s doubling to 30 s
// while it keeps dying), each restart printed on stdout; with --no-restart it stays down (`kura
// status` shows it). A start that fails prints "kura dev-cluster: <reason>" on stderr and exits 1.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { pino } from 'pino';
import { z } from 'zod';
import { DevCluster, topologyDefaults, type TestPorts, type TopologyRequest } from '../cluster/dev-cluster.ts';
import { topologyLimits } from '../cluster/cluster-state.ts';
import { describeExit } from '../cluster/role-process.ts';
import { parseListenAddress } from '../observability/admin-server.ts';
import { developmentAccountKey, developmentAccountName } from '../stamp/account-store.ts';
import { DataDirLock } from '../stamp/data-dir-lock.ts';
import { StorageError } from '../util/errors.ts';
import { positiveInteger, reportingErrors, waitForSignal } from './process-lifecycle.ts';
import { blobPortDefault, connectionString } from './serve-command.ts';

interface DevClusterFlags {
  readonly data: string;
  readonly etcdMembers?: string;
  readonly extentNodes?: string;
  readonly partitionServers?: string;
  readonly frontends?: string;
  readonly controllers?: string;
  readonly listen: string;
  readonly logLevel: string;
  readonly readyTimeoutMs: string;
  readonly stopTimeoutMs: string;
  readonly restart: boolean;
}

interface ParsedFlags {
  readonly topology: TopologyRequest;
  readonly host: string;
  readonly port: number;
  readonly readyTimeoutMs: number;
  readonly stopTimeoutMs: number;
}

const kuraEntry = resolve(import.meta.dirname, '..', 'main', 'kura.ts');

export function registerDevClusterCommand(program: Command): void {
  program
    .command('dev-cluster')
    .description('Run a whole stamp as separate processes on this machine: etcd (Raft, 1 or 3 members), controllers, extent nodes in 3 fault domains, partition servers and front ends, behind one endpoint. Prints the connection string once every process is ready; Ctrl-C stops everything. For tests and demos; see `kura status`.')
    .requiredOption('--data <dir>', 'directory of the whole cluster: cluster.json (topology, processes), etcd/, extent-nodes/, logs/<process>.log. Reused by the next start on the same directory')
    .option('--etcd-members <n>', `etcd members: 1 (fast) or 3 (a real Raft quorum that survives one loss); default ${topologyDefaults.etcdMembers}, fixed once the data directory exists`)
    .option('--extent-nodes <n>', `extent nodes, spread over 3 fault domains, one disk each under DIR/extent-nodes (default ${topologyDefaults.extentNodes}; at least 3; can grow on a restart, never shrink)`)
    .option('--partition-servers <n>', `partition servers (default ${topologyDefaults.partitionServers})`)
    .option('--frontends <n>', `front ends behind the balancer (default ${topologyDefaults.frontends})`)
    .option('--controllers <n>', `controllers: one leads (stream manager + partition manager), the others stand by (default ${topologyDefaults.controllers})`)
    .option('--listen <addr>', 'host:port of the one client endpoint: a TCP balancer over the live front ends (in production: any load balancer)', `127.0.0.1:${blobPortDefault}`)
    .option('--log-level <level>', 'pino log level of every process\'s log file: info, debug or trace (not quieter: dev-cluster knows a process is up from its info-level "listening" line)', 'info')
    .option('--ready-timeout-ms <ms>', 'how long one process may take to become ready before the start fails', '120000')
    .option('--stop-timeout-ms <ms>', 'how long a process may take to stop after SIGTERM before it is killed', '15000')
    .option('--no-restart', 'leave a process that dies down (by default dev-cluster starts it again on the same ports after 1 s, doubling up to 30 s while it keeps dying, like a systemd unit with Restart=always)')
    .action(async (flags: DevClusterFlags) => {
      await reportingErrors('dev-cluster', () => runDevCluster(flags));
    });
}

/** Levels that keep the info-level "listening" lines a start waits for. */
const childLogLevels: readonly string[] = ['info', 'debug', 'trace'];

/** Checks every flag before anything starts; a bad one is a config.invalid naming it. */
function parseFlags(flags: DevClusterFlags): ParsedFlags {
  const count = (value: string | undefined, limits: { readonly min: number; readonly max: number; readonly flag: string }): number | undefined => {
    if (value === undefined) return undefined;
    const parsed = positiveInteger(value, limits.flag);
    if (parsed < limits.min || parsed > limits.max) throw new StorageError('config.invalid', `${limits.flag} must be ${limits.min} to ${limits.max}, got ${parsed}`);
    return parsed;
  };
  const topology = {
    etcdMembers: count(flags.etcdMembers, { min: 1, max: Number.MAX_SAFE_INTEGER, flag: '--etcd-members' }),
    extentNodes: count(flags.extentNodes, topologyLimits.extentNodes),
    partitionServers: count(flags.partitionServers, topologyLimits.partitionServers),
    frontends: count(flags.frontends, topologyLimits.frontends),
    controllers: count(flags.controllers, topologyLimits.controllers),
  };
  if (topology.etcdMembers !== undefined && topology.etcdMembers !== 1 && topology.etcdMembers !== 3) {
    throw new StorageError('config.invalid', `--etcd-members must be 1 (fast) or 3 (survives the loss of one), got ${topology.etcdMembers}`);
  }
  if (!childLogLevels.includes(flags.logLevel)) {
    throw new StorageError('config.invalid', `--log-level must be ${childLogLevels.join(', ')} (dev-cluster reads each process's info-level "listening" line to know it is up), got ${JSON.stringify(flags.logLevel)}`);
  }
  let listen: { host: string; port: number };
  try {
    listen = parseListenAddress(flags.listen);
  } catch {
    throw new StorageError('config.invalid', `--listen must be host:port (e.g. 127.0.0.1:10000; port 0 picks one), got ${JSON.stringify(flags.listen)}`);
  }
  return { topology, host: listen.host, port: listen.port, readyTimeoutMs: positiveInteger(flags.readyTimeoutMs, '--ready-timeout-ms'), stopTimeoutMs: positiveInteger(flags.stopTimeoutMs, '--stop-timeout-ms') };
}

async function runDevCluster(flags: DevClusterFlags): Promise<void> {
  const parsed = parseFlags(flags);
  requireEtcd();
  const directory = resolve(flags.data);
  const lock = await DataDirLock.acquire([directory], 'dev-cluster');
  const logger = pino({ level: 'warn', base: { role: 'dev-cluster', pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
  const interrupted = new AbortController();
  const stopRequested = waitForSignal(logger.child({ component: 'shutdown' })).then(() => interrupted.abort());
  const print = (line: string): void => { process.stdout.write(`${line}\n`); };
  let cluster: DevCluster | null = null;
  try {
    const startMs = Date.now();
    print(`kura dev-cluster: starting in ${directory} (logs in ${directory}/logs)`);
    cluster = await DevCluster.start({
      dataDirectory: directory, topology: parsed.topology, listen: { host: parsed.host, port: parsed.port },
      kura: { command: process.execPath, args: [kuraEntry] }, etcdCommand: 'etcd', logLevel: flags.logLevel,
      progress: print, readyTimeoutMs: parsed.readyTimeoutMs, stopTimeoutMs: parsed.stopTimeoutMs, signal: interrupted.signal,
      restart: flags.restart, testPorts: testPorts(),
      onExit: (name, status, restart) => process.stderr.write(`kura dev-cluster: ${name} exited (${describeExit(status)}); ${restart === null
        ? `not restarted (--no-restart). \`kura status --data ${directory}\` shows the stamp`
        : `restarting in ${(restart.inMs / 1000).toFixed(0)} s (restart ${restart.attempt})`}\n`),
    });
    const host = parsed.host === '0.0.0.0' || parsed.host === '::' ? '127.0.0.1' : parsed.host;
    const connection = connectionString({ account: developmentAccountName, key: developmentAccountKey, host, port: cluster.port });
    await cluster.publish(connection);
    print(`Stamp ready in ${((Date.now() - startMs) / 1000).toFixed(1)} s: ${cluster.processes.length} processes, etcd ${cluster.etcdEndpoints.join(',')}`);
    print(`Blob endpoint: http://${host}:${cluster.port}/${developmentAccountName} (balanced over the front ends). Connection string:`);
    print(connection);
    await stopRequested;
    print('kura dev-cluster: stopping');
  } catch (error) {
    if (!interrupted.signal.aborted) throw error;
    print(`kura dev-cluster: start interrupted (${error instanceof Error ? error.message : String(error)})`);
  } finally {
    await cluster?.stop();
    await lock.release();
  }
  print('kura dev-cluster: stopped');
}

const testPortsVariable = 'KURA_DEV_CLUSTER_TEST_PORTS';
const testPortsSchema = z.record(z.string(), z.object({ listen: z.number().int().min(1).max(65_535).optional(), admin: z.number().int().min(1).max(65_535).optional() }).strict());

/** Test hook: KURA_DEV_CLUSTER_TEST_PORTS='{"en1":{"listen":PORT}}' gives a role a port (unprobed)
 * at this start, so a test can make its first start meet a port in use. */
function testPorts(): TestPorts | undefined {
  const text = process.env[testPortsVariable];
  if (text === undefined || text === '') return undefined;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new StorageError('config.invalid', `${testPortsVariable} is not JSON: ${JSON.stringify(text)}`);
  }
  const parsed = testPortsSchema.safeParse(json);
  if (!parsed.success) throw new StorageError('config.invalid', `${testPortsVariable} must map role names to {listen?, admin?} ports: ${parsed.error.message}`);
  return parsed.data;
}

function requireEtcd(): void {
  const probe = spawnSync('etcd', ['--version'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) {
    throw new StorageError('config.invalid', 'etcd is not installed: run scripts/setup.sh (apt-get install -y etcd-server)');
  }
}
