// `kura partition-manager`: a partition manager process. Several may run; one leads (elected
// through etcd), the others wait to take over. Wires EtcdMetaStore, TcpNetwork, SystemClock and a
// StreamManagerProxy around PartitionManager; all logic is in src/partition.
//
// Lifecycle: [--admin: "admin server listening"] → connect → campaign every --tick-ms; once leading: "partition manager leading" (JSON
// log line with the epoch), bootstrap the map if there is none, assign / reassign / split each
// tick → SIGTERM/SIGINT: stop ticking, revoke the leader lease (another manager leads at once)
// → exit 0.
// Fault model: a deposed leader's map writes fail on their pm/epoch compare; etcd unreachable:
// ticks fail and are retried; the lease lapses and another manager leads.
import type { Command } from 'commander';
import { pino } from 'pino';
import { partitionLeaseTtlMs, partitionManagerTickMs, partitionSplitBytes } from '../constants.ts';
import { connectEtcd } from '../metastore/connect-etcd.ts';
import { AdminServer } from '../observability/admin-server.ts';
import type { Readiness } from '../observability/admin-server.ts';
import { PartitionManagerMetrics } from '../observability/partition-metrics.ts';
import { createProcessRegistry } from '../observability/process-registry.ts';
import { PartitionManager } from '../partition/partition-manager.ts';
import { TcpNetwork } from '../rpc/tcp-network.ts';
import { StreamManagerProxy } from '../stream/stream-manager-proxy.ts';
import { SystemClock } from '../util/clock.ts';
import { positiveInteger, waitForSignal } from './process-lifecycle.ts';

interface PartitionManagerFlags {
  readonly etcd: string;
  readonly streamManager: string;
  readonly managerId: string;
  readonly leaseTtlMs: string;
  readonly tickMs: string;
  readonly splitBytes: string;
  readonly admin?: string;
  readonly logLevel: string;
}

export function registerPartitionManagerCommand(program: Command): void {
  program
    .command('partition-manager')
    .description('Run a partition manager: leader-elected; assigns, reassigns and splits key ranges (docs/partition-protocol.md).')
    .requiredOption('--etcd <urls>', 'comma-separated etcd client URLs')
    .requiredOption('--stream-manager <addr>', 'host:port of the stream manager (streams of new partitions)')
    .option('--manager-id <id>', 'id of this manager in pm/leader', `pm-${process.pid}`)
    .option('--lease-ttl-ms <ms>', 'leader lease TTL: a dead leader is replaced this long after it dies', String(partitionLeaseTtlMs))
    .option('--tick-ms <ms>', 'time between assignment passes', String(partitionManagerTickMs))
    .option('--split-bytes <bytes>', 'split a partition whose memtable plus runs pass this', String(partitionSplitBytes))
    .option('--admin <addr>', 'host:port of the admin HTTP server (off unless given; no authentication): GET /metrics (Prometheus text: leading, splits by reason, merges, moves, map size; docs/metrics.md), GET /healthz, GET /readyz (200 once campaigning: a standby manager is ready to take over); port 0 picks a free port, logged as "admin server listening"')
    .option('--log-level <level>', 'pino log level: fatal, error, warn, info, debug, trace', 'info')
    .action(async (flags: PartitionManagerFlags) => {
      await runPartitionManager(flags);
    });
}

async function runPartitionManager(flags: PartitionManagerFlags): Promise<void> {
  const logger = pino({ level: flags.logLevel, base: { role: 'partition-manager', pid: process.pid } }, pino.destination({ sync: true }));
  // Before anything logs "listening" (waitForSignal says why).
  const stopRequested = waitForSignal(logger.child({ component: 'shutdown' }));
  const clock = new SystemClock();
  let campaigning: PartitionManager | null = null;
  const registry = createProcessRegistry({ role: 'partition-manager' });
  const admin = flags.admin === undefined ? null : await AdminServer.start({ address: flags.admin, registry, logger, readiness: () => readiness(campaigning) });
  const metaStore = await connectEtcd({ endpoints: flags.etcd.split(',').map((url) => url.trim()).filter((url) => url !== '') });
  const network = new TcpNetwork({ clock });
  const manager = new PartitionManager({
    managerId: flags.managerId, metaStore, network, clock, logger,
    streamManager: new StreamManagerProxy({ network, address: flags.streamManager }),
    leaseTtlMs: positiveInteger(flags.leaseTtlMs, '--lease-ttl-ms'),
    tickMs: positiveInteger(flags.tickMs, '--tick-ms'),
    splitBytes: positiveInteger(flags.splitBytes, '--split-bytes'),
  });
  new PartitionManagerMetrics({ registry, manager });
  manager.start();
  campaigning = manager;
  logger.info({ managerId: flags.managerId }, 'partition manager campaigning');
  await stopRequested;
  await manager.stop();
  await network.close();
  await metaStore.close();
  await admin?.close();
  logger.info('partition manager exited');
}

/** /readyz: campaigning (leading, or standing by to take over). */
function readiness(manager: PartitionManager | null): Readiness {
  if (manager === null) return { ready: false, reason: 'connecting to etcd' };
  return { ready: true, reason: manager.leading ? `leading at epoch ${manager.epoch ?? 0}` : 'standing by: another manager leads' };
}
