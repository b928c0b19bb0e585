// `kura extent-node`: one extent node process per disk. It only wires real implementations
// together (RealDisk, TcpNetwork, SystemClock, a StreamManagerProxy to the manager process) and
// hands them to ExtentNode, which holds all the logic (STYLE.md principle 6).
//
// Lifecycle: [--admin: "admin server listening", /healthz 200, /readyz 503 while the store
// recovers] → start → "extent node listening" (JSON log line with the address) → serve until
// SIGTERM or SIGINT → stop heartbeats and the server, close the store, close the admin port →
// exit 0. A second signal during shutdown exits at once (1). kill -9 is survived by the
// ExtentStore's journal replay.
import { mkdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { pino } from 'pino';
import { z } from 'zod';
import type { Logger } from 'pino';
import { extentReadCacheBytes } from '../constants.ts';
import { RealDisk } from '../io/real-disk.ts';
import { AdminServer } from '../observability/admin-server.ts';
import type { Readiness } from '../observability/admin-server.ts';
import { ExtentNodeMetrics } from '../observability/extent-node-metrics.ts';
import { createProcessRegistry } from '../observability/process-registry.ts';
import { TcpNetwork } from '../rpc/tcp-network.ts';
import { ExtentNode } from '../stream/extent-node.ts';
import { StreamManagerProxy } from '../stream/stream-manager-proxy.ts';
import { SystemClock } from '../util/clock.ts';
import { SeededRandom } from '../util/random.ts';
import { waitForSignal } from './process-lifecycle.ts';
import { addressList, hostPort, identifier, loadRoleConfig, logLevel, roleAction } from './role-config.ts';
import { armFailpointsAfterReady } from '../util/failpoints.ts';

const bytesPerMiB = 1024 * 1024;

const extentNodeConfig = z.object({
  disk: z.string().min(1, 'expected a directory'),
  faultDomain: z.string().min(1, 'expected a fault domain name').max(64),
  upgradeDomain: z.string().min(1, 'expected an upgrade domain name').max(64),
  listen: hostPort,
  advertise: hostPort.optional(),
  manager: addressList,
  nodeId: identifier,
  admin: hostPort.optional(),
  groupCommit: z.boolean(),
  readCacheMib: z.union([z.number(), z.string().regex(/^\d+$/, 'expected a whole number of MiB').transform(Number)], { error: 'expected a whole number of MiB (0 turns the cache off)' })
    .pipe(z.number().int('expected a whole number of MiB').min(0).max(65_536)),
  logLevel,
});
type ExtentNodeFlags = z.infer<typeof extentNodeConfig>;

export function registerExtentNodeCommand(program: Command): void {
  program
    .command('extent-node')
    .description('Run one extent node: serve the replicas stored on one disk to the stream layer, registered with a stream manager.')
    .option('--config <file>', 'JSON file of settings, keys = these flags in camelCase (e.g. {"disk": "/mnt/a/kura", "nodeId": "en1"}); flags override it')
    .option('--disk <dir>', 'directory holding this node\'s extent files, journal and node.json (created if absent; required)')
    .option('--fault-domain <fd>', 'fault domain of this disk (rack, power, switch): no two replicas of an extent share one')
    .option('--upgrade-domain <ud>', 'upgrade domain of this node: no two replicas of an extent share one; upgrades go one domain at a time')
    .option('--listen <addr>', '(required) host:port to serve extent-node RPCs on (port 0 picks a free port, logged at start)')
    .option('--advertise <addr>', 'host:port registered with the stream manager, if it differs from --listen')
    .option('--manager <addrs>', '(required) host:port of the stream manager to register with and heartbeat to; in a cluster, every controller\'s address, comma-separated (the leader is found by trying them)')
    .option('--node-id <id>', '(required) stable identity of this node ([A-Za-z0-9._-], up to 64); a disk keeps the id it was first used with')
    .option('--admin <addr>', 'host:port of the admin HTTP server (off unless given; no authentication, so bind loopback or a management network): GET /metrics (Prometheus text), GET /healthz (200 while the process is alive), GET /readyz (200 once the store is open and its disk has not failed, else 503); port 0 picks a free port, logged as "admin server listening"')
    .option('--read-cache-mib <n>', 'MiB of recently read, verified blocks kept in memory to serve hot reads without the disk read (the CRC re-checked on sampled hits; an entry is read from disk again after 30 s; scrub always reads the disk); 0 turns it off (the P4 off switch)', String(extentReadCacheBytes / bytesPerMiB))
    .option('--no-group-commit', 'fsync every append into its extent file before acking, without the journal batching (the P4 off switch)')
    .option('--log-level <level>', 'pino log level: fatal, error, warn, info, debug, trace', 'info')
    .action(roleAction('extent-node', async (command) => {
      await runExtentNode(await loadRoleConfig(command, extentNodeConfig));
    }));
}

async function runExtentNode(flags: ExtentNodeFlags): Promise<void> {
  const logger = pino({ level: flags.logLevel, base: { role: 'extent-node', pid: process.pid } }, pino.destination({ sync: true }));
  // Before anything logs "listening" (waitForSignal says why).
  const stopRequested = waitForSignal(logger.child({ component: 'shutdown' }));
  await mkdir(flags.disk, { recursive: true });
  const clock = new SystemClock();
  const network = new TcpNetwork({ clock });
  // Metrics subscribe before the store opens, so corruption found by recovery is counted.
  let started: ExtentNode | null = null;
  const observability = flags.admin === undefined ? null : await startObservability(flags.admin, logger, () => readiness(started));
  const node = await ExtentNode.start({
    nodeId: flags.nodeId,
    disk: new RealDisk({ root: flags.disk, logger }),
    clock,
    random: new SeededRandom(randomBytes(8).readBigUInt64BE(0)),
    network,
    listenAddress: flags.listen,
    ...(flags.advertise === undefined ? {} : { advertisedAddress: flags.advertise }),
    manager: new StreamManagerProxy({ network, address: flags.manager }),
    faultDomain: flags.faultDomain,
    upgradeDomain: flags.upgradeDomain,
    groupCommit: flags.groupCommit,
    readCacheBytes: flags.readCacheMib * bytesPerMiB,
    logger,
  });
  started = node;
  armFailpointsAfterReady();
  observability?.metrics.watch(node);
  await stopRequested;
  await node.stop();
  await network.close();
  await observability?.admin.close();
  observability?.metrics.close();
  logger.info('extent node exited');
}

async function startObservability(address: string, logger: Logger, ready: () => Readiness): Promise<{ admin: AdminServer; metrics: ExtentNodeMetrics }> {
  const registry = createProcessRegistry({ role: 'extent-node' });
  const metrics = new ExtentNodeMetrics({ registry });
  const admin = await AdminServer.start({ address, registry, logger, readiness: ready });
  return { admin, metrics };
}

/** /readyz: the store is open (start returned) and the node neither stops nor has a failed disk. */
function readiness(node: ExtentNode | null): Readiness {
  if (node === null) return { ready: false, reason: 'opening the extent store (journal replay)' };
  if (!node.ready) return { ready: false, reason: node.status().failed ? 'local disk failed' : 'stopping' };
  return { ready: true, reason: node.status().registered ? 'serving' : 'serving; not registered with the stream manager yet' };
}

