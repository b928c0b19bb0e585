// `kura frontend`: a stateless Blob front end of a cluster (docs/cluster.md, "Front ends"). It only
// wires real implementations together (EtcdMetaStore for the partition map, TcpNetwork to the
// partition servers, SystemClock) around ClusterFrontend (src/stamp/cluster-frontend.ts). Several
// may run at once behind any load balancer.
//
// Lifecycle: validate the configuration (exit 1 naming the bad field) → [--admin: /readyz 503
// "waiting for the partition map" / "loading accounts"] → wait for the map and the accounts
// (devstoreaccount1 created in a fresh cluster) → listen → "frontend listening" (JSON log line with
// the address) → /readyz 200 → SIGTERM/SIGINT: /readyz 503 "draining", stop accepting, requests in
// flight finish (at most --drain-timeout-ms) → exit 0. A second signal exits at once (1).
//
// Started by `kura dev-cluster` (an IPC channel from its parent): it also serves the client
// connections the dev cluster's balancer hands over on that channel (src/cluster/tcp-balancer.ts,
// "Hand-off"), and says when it starts draining so the balancer stops at once.
import type { Command } from 'commander';
import { Socket } from 'node:net';
import { pino } from 'pino';
import { z } from 'zod';
import { dataCacheMibLimit, frontendDataCacheBytes, frontendDrainTimeoutMs, inlineBodyBytesDefault, inlineBodyBytesLimit } from '../constants.ts';
import { copySourceAllowDefault, parseCopySourcePolicy } from '../frontend/blob-service/copy-source-policy.ts';
import { connectEtcd } from '../metastore/connect-etcd.ts';
import { AdminServer, parseListenAddress, type Readiness } from '../observability/admin-server.ts';
import { createProcessRegistry } from '../observability/process-registry.ts';
import { registerBlobRaceMetrics } from '../observability/blob-race-metrics.ts';
import { registerBlobSweepMetrics } from '../observability/blob-sweep-metrics.ts';
import { connectionDrainingMessage, connectionHandOffMessage } from '../cluster/role-process.ts';
import { TcpNetwork } from '../rpc/tcp-network.ts';
import { ClusterFrontend, type FrontendPhase } from '../stamp/cluster-frontend.ts';
import { SystemClock } from '../util/clock.ts';
import { waitForSignal } from './process-lifecycle.ts';
import { copySourceRules, etcdUrls, hostPort, loadRoleConfig, logLevel, positiveInteger, roleAction } from './role-config.ts';
import { collect, dataCacheMibHelp } from './serve-command.ts';
import { armFailpointsAfterReady } from '../util/failpoints.ts';

const frontendConfig = z.object({
  etcd: etcdUrls,
  listen: hostPort,
  admin: hostPort.optional(),
  drainTimeoutMs: positiveInteger,
  copySourceAllow: copySourceRules.optional(),
  inlineBodyBytes: z.coerce.number().int().min(0).max(inlineBodyBytesLimit),
  dataCacheMib: z.coerce.number().int().min(0).max(dataCacheMibLimit),
  logLevel,
});
type FrontendConfig = z.infer<typeof frontendConfig>;

export function registerFrontendCommand(program: Command): void {
  program
    .command('frontend')
    .description('Run a stateless Blob front end of a cluster: Azure Blob REST over the partition servers, partition map and accounts from etcd (docs/cluster.md). Run several behind a load balancer.')
    .option('--config <file>', 'JSON file of settings, keys = these flags in camelCase (e.g. {"listen": "0.0.0.0:10000"}); flags override it')
    .option('--etcd <urls>', 'comma-separated etcd client URLs (required)')
    .option('--listen <addr>', 'host:port of the Blob endpoint (required; no TLS, so loopback or a private network; port 0 picks one, logged as "frontend listening")')
    .option('--admin <addr>', 'host:port of the admin HTTP server (no authentication): /metrics, /healthz, /readyz (200 once the partition map is readable and the accounts are loaded; 503 while starting or draining)')
    .option('--drain-timeout-ms <ms>', 'on SIGTERM, how long requests in flight may take to finish before they are cut', String(frontendDrainTimeoutMs))
    .option('--copy-source-allow <rule>', 'hosts copy operations may fetch sources from, outside this endpoint (repeatable, or a list in --config): public (default: public addresses only), none, any, a CIDR or host[:port]. The --admin address and the etcd endpoints are always refused. docs/copy-sources.md', collect)
    .option('--inline-body-bytes <n>', 'Put Blob bodies of 1..n bytes are stored inline in the blob row, one durable append per small Put Blob (docs/blob-schema.md, "Inline bodies"); 0 = off', String(inlineBodyBytesDefault))
    .option('--data-cache-mib <n>', dataCacheMibHelp, String(frontendDataCacheBytes / (1024 * 1024)))
    .option('--log-level <level>', 'pino log level: fatal, error, warn, info, debug, trace', 'info')
    .action(roleAction('frontend', async (command) => {
      await runFrontend(await loadRoleConfig(command, frontendConfig));
    }));
}

async function runFrontend(config: FrontendConfig): Promise<void> {
  const logger = pino({ level: config.logLevel, base: { role: 'frontend', pid: process.pid } }, pino.destination({ sync: true }));
  const clock = new SystemClock();
  const stopRequested = waitForSignal(logger.child({ component: 'shutdown' }));
  const abort = new AbortController();
  void stopRequested.then(() => abort.abort());
  let frontend: ClusterFrontend | null = null;
  acceptHandOffs(() => frontend);
  const registry = createProcessRegistry({ role: 'frontend' });
  registerBlobSweepMetrics(registry, () => frontend?.sweepCounts() ?? null);
  registerBlobRaceMetrics(registry, () => frontend?.raceCounts() ?? null);
  const admin = config.admin === undefined ? null : await AdminServer.start({ address: config.admin, registry, logger, readiness: () => readiness(frontend?.phase ?? null) });
  try {
    // etcd unreachable at start is fatal (exit 1 naming it): a supervisor restarts the role.
    const metaStore = await connectEtcd({ endpoints: config.etcd });
    const network = new TcpNetwork({ clock });
    try {
      const { host, port } = parseListenAddress(config.listen);
      const denied = [...(config.admin === undefined ? [] : [config.admin]), ...config.etcd.map((url) => new URL(url).host)];
      const copySource = { policy: parseCopySourcePolicy(config.copySourceAllow ?? copySourceAllowDefault, denied) };
      frontend = new ClusterFrontend({ metaStore, network, clock, logger, host, port, copySource, inlineBodyBytesMax: config.inlineBodyBytes, dataCacheBytes: config.dataCacheMib * 1024 * 1024 });
      if (await frontend.start(abort.signal)) {
        armFailpointsAfterReady();
        await stopRequested;
      }
      if (process.connected) process.send?.(connectionDrainingMessage, undefined, undefined, () => undefined);
      await frontend.drain(config.drainTimeoutMs);
    } finally {
      await network.close();
      await metaStore.close();
    }
  } finally {
    await admin?.close();
  }
  logger.info('frontend exited');
}

/** Serves the connections a parent hands over (dev-cluster); without a parent channel, nothing.
 * The channel never keeps the process alive, and a hand-off that cannot be served is closed. */
function acceptHandOffs(current: () => ClusterFrontend | null): void {
  if (process.send === undefined) return;
  process.on('message', (message, handle) => {
    if (message !== connectionHandOffMessage || !(handle instanceof Socket)) return;
    if (current()?.acceptConnection(handle) !== true) handle.destroy();
  });
  process.on('disconnect', () => undefined);
  process.channel?.unref();
}

function readiness(phase: FrontendPhase | null): Readiness {
  const current: FrontendPhase = phase ?? { kind: 'waiting_for_map' };
  switch (current.kind) {
    case 'waiting_for_map':
      return { ready: false, reason: 'waiting for the partition map (is a controller leading and a partition server up?)' };
    case 'loading_accounts':
      return { ready: false, reason: 'loading accounts from the partition layer' };
    case 'serving':
      return { ready: true, reason: `serving on ${current.address}` };
    case 'draining':
      return { ready: false, reason: 'draining: finishing requests in flight' };
    case 'stopped':
      return { ready: false, reason: 'stopped' };
  }
}
