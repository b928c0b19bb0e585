// `kura stream-manager`: the stream manager process of a cluster. It only wires real
// implementations together (an EmbeddedMetaStore on a RealDisk, or an EtcdMetaStore; TcpNetwork;
// SystemClock) and serves the StreamManager over the network with serveStreamManager; all logic
// is in src/stream (STYLE.md principle 6).
//
// Lifecycle: [--admin: "admin server listening"; /readyz 503 until the epoch is taken] → open
// the MetaStore → take the next epoch (a compare txn: a stale manager left running is fenced
// from then on) → listen → "stream manager listening" (JSON log line with the address and
// epoch) → repair loop → serve until SIGTERM/SIGINT → stop the loop, close the server, the
// network, the MetaStore and the admin port → exit 0. A second signal exits at once (1).
//
// Fault model: if another manager takes a newer epoch, this one's calls answer
// extent.stale_epoch and its repair loop stops; the operator (or a supervisor) stops it.
import { mkdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { pino } from 'pino';
import { replicaCountDefault, repairIntervalMs } from '../constants.ts';
import { RealDisk } from '../io/real-disk.ts';
import { AdminServer } from '../observability/admin-server.ts';
import type { Readiness } from '../observability/admin-server.ts';
import { createProcessRegistry } from '../observability/process-registry.ts';
import { StreamManagerMetrics } from '../observability/stream-manager-metrics.ts';
import { EmbeddedMetaStore } from '../metastore/embedded-meta-store.ts';
import { connectEtcd } from '../metastore/connect-etcd.ts';
import type { MetaStore } from '../metastore/meta-store.ts';
import { TcpNetwork } from '../rpc/tcp-network.ts';
import { StreamManager } from '../stream/stream-manager.ts';
import { serveStreamManager } from '../stream/stream-manager-proxy.ts';
import { SystemClock } from '../util/clock.ts';
import type { Clock } from '../util/clock.ts';
import { StorageError } from '../util/errors.ts';
import { SeededRandom } from '../util/random.ts';
import { positiveInteger, waitForSignal } from './process-lifecycle.ts';

interface StreamManagerFlags {
  readonly meta?: string;
  readonly etcd?: string;
  readonly listen: string;
  readonly replicas: string;
  readonly repairIntervalMs: string;
  readonly admin?: string;
  readonly logLevel: string;
}

export function registerStreamManagerCommand(program: Command): void {
  program
    .command('stream-manager')
    .description('Run the stream manager: places replicas, seals and re-replicates extents, issues release tokens (P3).')
    .option('--meta <dir>', 'directory of an embedded MetaStore (single-machine stamps); exclusive with --etcd')
    .option('--etcd <urls>', 'comma-separated etcd client URLs (multi-machine stamps); exclusive with --meta')
    .requiredOption('--listen <addr>', 'host:port to serve manager.* RPCs on (port 0 picks a free port, logged at start)')
    .option('--replicas <n>', 'replicas per extent unless a stream asks otherwise', String(replicaCountDefault))
    .option('--repair-interval-ms <ms>', 'time between re-replication passes', String(repairIntervalMs))
    .option('--admin <addr>', 'host:port of the admin HTTP server (off unless given; no authentication, so bind loopback or a management network): GET /metrics (Prometheus text, incl. kura_extents_below_target), GET /healthz (200 while the process is alive), GET /readyz (200 once this manager holds an epoch and no newer manager fenced it, else 503); port 0 picks a free port, logged as "admin server listening"')
    .option('--log-level <level>', 'pino log level: fatal, error, warn, info, debug, trace', 'info')
    .action(async (flags: StreamManagerFlags) => {
      await runStreamManager(flags);
    });
}

async function runStreamManager(flags: StreamManagerFlags): Promise<void> {
  const logger = pino({ level: flags.logLevel, base: { role: 'stream-manager', pid: process.pid } }, pino.destination({ sync: true }));
  // Before anything logs "listening" (waitForSignal says why).
  const stopRequested = waitForSignal(logger.child({ component: 'shutdown' }));
  const clock = new SystemClock();
  const replicas = positiveInteger(flags.replicas, '--replicas');
  const intervalMs = positiveInteger(flags.repairIntervalMs, '--repair-interval-ms');
  let leading: StreamManager | null = null;
  const registry = createProcessRegistry({ role: 'stream-manager' });
  const admin = flags.admin === undefined ? null : await AdminServer.start({ address: flags.admin, registry, logger, readiness: () => readiness(leading) });
  const metaStore = await openMetaStore(flags, clock);
  const network = new TcpNetwork({ clock });
  const manager = new StreamManager({
    metaStore,
    network,
    clock,
    random: new SeededRandom(randomBytes(8).readBigUInt64BE(0)),
    logger,
    replicaCountDefault: replicas,
  });
  const { epoch } = await manager.start();
  leading = manager;
  new StreamManagerMetrics({ registry, manager });
  const server = await serveStreamManager(network, flags.listen, manager);
  logger.info({ address: server.address, epoch, replicas }, 'stream manager listening');
  manager.startRepairLoop(intervalMs);
  await stopRequested;
  await manager.close();
  await server.close();
  await network.close();
  await metaStore.close();
  await admin?.close();
  logger.info('stream manager exited');
}

/** /readyz: this manager took an epoch (start returned) and no newer manager has fenced it. */
function readiness(manager: StreamManager | null): Readiness {
  if (manager === null) return { ready: false, reason: 'opening the MetaStore and taking an epoch' };
  if (manager.fenced) return { ready: false, reason: `fenced: a newer manager superseded epoch ${manager.epoch}` };
  return { ready: true, reason: `leading at epoch ${manager.epoch}` };
}

async function openMetaStore(flags: StreamManagerFlags, clock: Clock): Promise<MetaStore> {
  if ((flags.meta === undefined) === (flags.etcd === undefined)) {
    throw new StorageError('config.invalid', 'give exactly one of --meta DIR or --etcd URLS');
  }
  if (flags.meta !== undefined) {
    await mkdir(flags.meta, { recursive: true });
    return EmbeddedMetaStore.open({ disk: new RealDisk({ root: flags.meta }), directory: 'meta', clock });
  }
  const endpoints = (flags.etcd ?? '').split(',').map((url) => url.trim()).filter((url) => url !== '');
  return connectEtcd({ endpoints });
}


