// `kura partition-server`: a partition server process of a cluster. It only wires real
// implementations together (EtcdMetaStore, TcpNetwork, SystemClock, a StreamManagerProxy to the
// stream manager) around PartitionServer; all logic is in src/partition (STYLE.md principle 6).
//
// Lifecycle: [--admin: "admin server listening"; /readyz 503 until registered] → connect to etcd
// → listen → register under a fresh lease (waits out the lease of a previous incarnation with the
// same --server-id) → "partition server listening" (JSON log line with the address) → serve what
// the map assigns until SIGTERM/SIGINT → stop (partitions closed, lease revoked so they move at
// once) → close the admin port → exit 0. kill -9 instead: the lease expires after
// --lease-ttl-ms and the partition manager moves the partitions.
//
// Fault model: etcd or the stream manager may be unreachable; the server then stops serving when
// its lease can no longer be confirmed, and registers again when it can.
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { pino } from 'pino';
import { z } from 'zod';
import { partitionLeaseTtlMs } from '../constants.ts';
import { connectEtcd } from '../metastore/connect-etcd.ts';
import { AdminServer, type Readiness } from '../observability/admin-server.ts';
import { PartitionServerMetrics } from '../observability/partition-metrics.ts';
import { createProcessRegistry } from '../observability/process-registry.ts';
import { PartitionServer } from '../partition/partition-server.ts';
import { TcpNetwork } from '../rpc/tcp-network.ts';
import { StreamManagerProxy } from '../stream/stream-manager-proxy.ts';
import { SystemClock } from '../util/clock.ts';
import { SeededRandom } from '../util/random.ts';
import { waitForSignal } from './process-lifecycle.ts';
import { addressList, etcdUrls, hostPort, identifier, loadRoleConfig, logLevel, positiveInteger, roleAction } from './role-config.ts';
import { blobTableSchema } from '../frontend/blob-service/blob-table-schema.ts';
import { armFailpointsAfterReady } from '../util/failpoints.ts';

const partitionServerConfig = z.object({
  etcd: etcdUrls,
  streamManager: addressList,
  listen: hostPort,
  serverId: identifier,
  admin: hostPort.optional(),
  leaseTtlMs: positiveInteger.refine((ms) => ms >= 1_000, 'etcd leases are whole seconds: at least 1000'),
  logLevel,
});
type PartitionServerFlags = z.infer<typeof partitionServerConfig>;

export function registerPartitionServerCommand(program: Command): void {
  program
    .command('partition-server')
    .description('Run a partition server: serves the key ranges the partition manager assigns to it, under a lease (docs/partition-protocol.md).')
    .option('--config <file>', 'JSON file of settings, keys = these flags in camelCase (e.g. {"serverId": "ps1"}); flags override it')
    .option('--etcd <urls>', '(required) comma-separated etcd client URLs (the MetaStore shared with the partition manager and front ends)')
    .option('--stream-manager <addrs>', '(required) host:port of the stream manager; in a cluster, every controller\'s address, comma-separated (the leader is found by trying them)')
    .option('--listen <addr>', '(required) host:port to serve partition.* RPCs on (port 0 picks a free port, logged at start)')
    .option('--server-id <id>', '(required) stable id of this server (letters, digits, . _ -)')
    .option('--admin <addr>', 'host:port of the admin HTTP server (off unless given; no authentication, so bind loopback or a management network): GET /metrics (Prometheus text: partitions served, memtable bytes, log records, request rates and latencies; docs/metrics.md), GET /healthz (200 while the process is alive), GET /readyz (200 while registered with its lease confirmed valid, with the partitions it serves; else 503); port 0 picks a free port, logged as "admin server listening"')
    .option('--lease-ttl-ms <ms>', 'lease TTL: partitions move this long after the server dies', String(partitionLeaseTtlMs))
    .option('--log-level <level>', 'pino log level: fatal, error, warn, info, debug, trace', 'info')
    .action(roleAction('partition-server', async (command) => {
      await runPartitionServer(await loadRoleConfig(command, partitionServerConfig));
    }));
}

async function runPartitionServer(flags: PartitionServerFlags): Promise<void> {
  const logger = pino({ level: flags.logLevel, base: { role: 'partition-server', pid: process.pid } }, pino.destination({ sync: true }));
  // Before anything logs "listening" (waitForSignal says why).
  const stopRequested = waitForSignal(logger.child({ component: 'shutdown' }));
  const clock = new SystemClock();
  const leaseTtlMs = flags.leaseTtlMs;
  let started: PartitionServer | null = null;
  const registry = createProcessRegistry({ role: 'partition-server' });
  const admin = flags.admin === undefined ? null : await AdminServer.start({ address: flags.admin, registry, logger, readiness: () => readiness(started) });
  const metaStore = await connectEtcd({ endpoints: flags.etcd });
  const network = new TcpNetwork({ clock });
  const server = new PartitionServer({
    serverId: flags.serverId, metaStore, network, listenAddress: flags.listen, clock, logger, leaseTtlMs,
    streamManager: new StreamManagerProxy({ network, address: flags.streamManager }),
    random: new SeededRandom(randomBytes(8).readBigUInt64BE(0)),
    clientId: `${flags.serverId}-${process.pid}-${Date.now().toString(36)}`,
    // The partitions hold the blob tables: their schema turns data GC on and keeps splits at blob boundaries.
    table: blobTableSchema,
  });
  const metrics = new PartitionServerMetrics({ registry, server });
  await server.start();
  started = server;
  armFailpointsAfterReady();
  await stopRequested;
  await server.stop();
  metrics.close();
  await network.close();
  await metaStore.close();
  await admin?.close();
  logger.info('partition server exited');
}

/** /readyz: started, registered under a lease confirmed valid now (else it answers not_owner). */
function readiness(server: PartitionServer | null): Readiness {
  if (server === null) return { ready: false, reason: 'connecting to etcd and registering' };
  if (!server.leaseConfirmed) return { ready: false, reason: 'lease not confirmed valid (etcd unreachable, or stopping)' };
  return { ready: true, reason: `serving partitions [${server.servingPartitions().join(', ')}]` };
}
