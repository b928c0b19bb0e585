// `kura controller`: a controller process of a cluster (docs/cluster.md): the stream manager and
// the partition manager, leader-elected through etcd; the others stand by and take over. It only
// wires real implementations together (EtcdMetaStore, TcpNetwork, SystemClock) around
// ClusterController (src/stamp/cluster-controller.ts), which holds the election.
//
// Lifecycle: validate the configuration (--config FILE and flags; exit 1 naming the bad field) →
// [--admin: "admin server listening"; /readyz 503 until connected] → connect to etcd → listen →
// "controller listening" (JSON log line with the address) → campaign: "controller leading" (term,
// epoch) or "controller standby" (who leads); /readyz 200 with role leader or standby → serve until
// SIGTERM/SIGINT → step down (a standby leads at its next campaign) → close → exit 0. A second
// signal exits at once (1). kill -9: a standby leads once the leader's lease expires (--lease-ttl-ms).
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { pino } from 'pino';
import { z } from 'zod';
import { controllerLeaseTtlMs, partitionManagerTickMs, partitionSplitBytes, replicaCountDefault, repairIntervalMs } from '../constants.ts';
import { connectEtcd } from '../metastore/connect-etcd.ts';
import { AdminServer, type Readiness } from '../observability/admin-server.ts';
import { ControllerMetrics } from '../observability/controller-metrics.ts';
import { createProcessRegistry } from '../observability/process-registry.ts';
import { TcpNetwork } from '../rpc/tcp-network.ts';
import { ClusterController } from '../stamp/cluster-controller.ts';
import { SystemClock } from '../util/clock.ts';
import { SeededRandom } from '../util/random.ts';
import { waitForSignal } from './process-lifecycle.ts';
import { etcdUrls, hostPort, identifier, loadRoleConfig, logLevel, positiveInteger, roleAction } from './role-config.ts';
import { armFailpointsAfterReady } from '../util/failpoints.ts';

const controllerConfig = z.object({
  etcd: etcdUrls,
  listen: hostPort,
  controllerId: identifier,
  advertise: hostPort.optional(),
  admin: hostPort.optional(),
  replicas: positiveInteger,
  leaseTtlMs: positiveInteger.refine((ms) => ms >= 1_000, 'etcd leases are whole seconds: at least 1000'),
  repairIntervalMs: positiveInteger,
  tickMs: positiveInteger,
  splitBytes: positiveInteger,
  logLevel,
});
type ControllerConfig = z.infer<typeof controllerConfig>;

export function registerControllerCommand(program: Command): void {
  program
    .command('controller')
    .description('Run a controller: the stream manager and partition manager of a cluster, leader-elected through etcd; standbys take over when the leader dies (docs/cluster.md).')
    .option('--config <file>', 'JSON file of settings, keys = these flags in camelCase (e.g. {"listen": "127.0.0.1:7000", "controllerId": "c1"}); flags override it')
    .option('--etcd <urls>', 'comma-separated etcd client URLs (required)')
    .option('--listen <addr>', 'host:port to serve manager.* RPCs on, leader or standby (required; port 0 picks one, logged as "controller listening"). Give extent nodes and partition servers every controller\'s address')
    .option('--controller-id <id>', 'stable id of this controller: letters, digits, . _ - (required)')
    .option('--advertise <addr>', 'host:port published in etcd as the leader\'s address, if it differs from --listen')
    .option('--admin <addr>', 'host:port of the admin HTTP server (no authentication: bind loopback or a management network): /metrics, /healthz, /readyz (200 with {"role": "leader"} or {"role": "standby"}, 503 before it reached etcd)')
    .option('--replicas <n>', 'replicas per extent unless a stream asks otherwise', String(replicaCountDefault))
    .option('--lease-ttl-ms <ms>', 'leader lease TTL: a standby leads this long after the leader dies (also the partition manager\'s lease)', String(controllerLeaseTtlMs))
    .option('--repair-interval-ms <ms>', 'time between re-replication passes of the leader', String(repairIntervalMs))
    .option('--tick-ms <ms>', 'time between partition assignment passes of the leader', String(partitionManagerTickMs))
    .option('--split-bytes <bytes>', 'split a partition whose memtable plus runs pass this', String(partitionSplitBytes))
    .option('--log-level <level>', 'pino log level: fatal, error, warn, info, debug, trace', 'info')
    .action(roleAction('controller', async (command) => {
      await runController(await loadRoleConfig(command, controllerConfig));
    }));
}

async function runController(config: ControllerConfig): Promise<void> {
  const logger = pino({ level: config.logLevel, base: { role: 'controller', pid: process.pid } }, pino.destination({ sync: true }));
  // Before anything logs "listening" (waitForSignal says why).
  const stopRequested = waitForSignal(logger.child({ component: 'shutdown' }));
  const clock = new SystemClock();
  let controller: ClusterController | null = null;
  const registry = createProcessRegistry({ role: 'controller' });
  const admin = config.admin === undefined ? null : await AdminServer.start({ address: config.admin, registry, logger, readiness: () => readiness(controller) });
  const metrics = new ControllerMetrics({ registry, controller: () => controller });
  try {
    // etcd unreachable at start is fatal (exit 1 naming it): a supervisor restarts the role.
    const metaStore = await connectEtcd({ endpoints: config.etcd });
    const network = new TcpNetwork({ clock });
    try {
      controller = await ClusterController.start({
        controllerId: config.controllerId, metaStore, network, clock, logger, listenAddress: config.listen,
        ...(config.advertise === undefined ? {} : { advertisedAddress: config.advertise }),
        random: new SeededRandom(randomBytes(8).readBigUInt64BE(0)),
        replicaCountDefault: config.replicas, repairIntervalMs: config.repairIntervalMs, leaseTtlMs: config.leaseTtlMs,
        partitionManagerTickMs: config.tickMs, splitBytes: config.splitBytes,
      });
      armFailpointsAfterReady();
      await stopRequested;
      await controller.stop();
    } finally {
      await network.close();
      await metaStore.close();
    }
  } finally {
    metrics.close();
    await admin?.close();
  }
  logger.info('controller exited');
}

/** /readyz: 200 as leader or standby (both do their job); 503 before etcd answered once. */
function readiness(controller: ClusterController | null): Readiness {
  const role = controller?.role() ?? { kind: 'starting' };
  switch (role.kind) {
    case 'starting':
      return { ready: false, reason: 'connecting to etcd' };
    case 'stopped':
      return { ready: false, reason: 'stopping' };
    case 'standby':
      return { ready: true, role: 'standby', reason: role.leader === null ? 'standby: no leader yet' : `standby: ${role.leader.controllerId} leads term ${role.leader.term} at ${role.leader.address}` };
    case 'leading':
      return { ready: true, role: 'leader', reason: `leader: term ${role.term}, stream manager epoch ${role.streamEpoch}, partition manager ${role.partitionEpoch === null ? 'campaigning' : `epoch ${role.partitionEpoch}`}` };
  }
}
