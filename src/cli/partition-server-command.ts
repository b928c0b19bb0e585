// `kura partition-server`: a partition server process of a cluster. It only wires real
// implementations together (EtcdMetaStore, TcpNetwork, SystemClock, a StreamManagerProxy to the
// stream manager) around PartitionServer; all logic is in src/partition (STYLE.md principle 6).
//
// Lifecycle: connect to etcd → listen → register under a fresh lease (waits out the lease of a
// previous incarnation with the same --server-id) → "partition server listening" (JSON log line
// with the address) → serve what the map assigns until SIGTERM/SIGINT → stop (partitions closed,
// lease revoked so they move at once) → exit 0. kill -9 instead: the lease expires after
// --lease-ttl-ms and the partition manager moves the partitions.
//
// Fault model: etcd or the stream manager may be unreachable; the server then stops serving when
// its lease can no longer be confirmed, and registers again when it can.
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { pino } from 'pino';
import { partitionLeaseTtlMs } from '../constants.ts';
import { EtcdMetaStore } from '../metastore/etcd-meta-store.ts';
import { PartitionServer } from '../partition/partition-server.ts';
import { TcpNetwork } from '../rpc/tcp-network.ts';
import { StreamManagerProxy } from '../stream/stream-manager-proxy.ts';
import { SystemClock } from '../util/clock.ts';
import { SeededRandom } from '../util/random.ts';
import { positiveInteger, waitForSignal } from './process-lifecycle.ts';
import { blobTableSchema } from '../frontend/blob-service/blob-table-schema.ts';

interface PartitionServerFlags {
  readonly etcd: string;
  readonly streamManager: string;
  readonly listen: string;
  readonly serverId: string;
  readonly leaseTtlMs: string;
  readonly logLevel: string;
}

export function registerPartitionServerCommand(program: Command): void {
  program
    .command('partition-server')
    .description('Run a partition server: serves the key ranges the partition manager assigns to it, under a lease (docs/partition-protocol.md).')
    .requiredOption('--etcd <urls>', 'comma-separated etcd client URLs (the MetaStore shared with the partition manager and front ends)')
    .requiredOption('--stream-manager <addr>', 'host:port of the stream manager')
    .requiredOption('--listen <addr>', 'host:port to serve partition.* RPCs on (port 0 picks a free port, logged at start)')
    .requiredOption('--server-id <id>', 'stable id of this server (letters, digits, . _ -)')
    .option('--lease-ttl-ms <ms>', 'lease TTL: partitions move this long after the server dies', String(partitionLeaseTtlMs))
    .option('--log-level <level>', 'pino log level: fatal, error, warn, info, debug, trace', 'info')
    .action(async (flags: PartitionServerFlags) => {
      await runPartitionServer(flags);
    });
}

async function runPartitionServer(flags: PartitionServerFlags): Promise<void> {
  const logger = pino({ level: flags.logLevel, base: { role: 'partition-server', pid: process.pid } }, pino.destination({ sync: true }));
  const clock = new SystemClock();
  const leaseTtlMs = positiveInteger(flags.leaseTtlMs, '--lease-ttl-ms');
  const metaStore = await EtcdMetaStore.connect({ endpoints: flags.etcd.split(',').map((url) => url.trim()).filter((url) => url !== '') });
  const network = new TcpNetwork({ clock });
  const server = new PartitionServer({
    serverId: flags.serverId, metaStore, network, listenAddress: flags.listen, clock, logger, leaseTtlMs,
    streamManager: new StreamManagerProxy({ network, address: flags.streamManager }),
    random: new SeededRandom(randomBytes(8).readBigUInt64BE(0)),
    clientId: `${flags.serverId}-${process.pid}-${Date.now().toString(36)}`,
    // The partitions hold the blob tables: their schema turns data GC on and keeps splits at blob boundaries.
    table: blobTableSchema,
  });
  await server.start();
  await waitForSignal(logger.child({ component: 'shutdown' }));
  await server.stop();
  await network.close();
  await metaStore.close();
  logger.info('partition server exited');
}
