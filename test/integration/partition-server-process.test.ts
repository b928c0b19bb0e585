// Real processes on 127.0.0.1 with real fsync: etcd, `kura stream-manager --etcd`, three
// `kura extent-node`s, `kura partition-manager` and two `kura partition-server`s. Writers stream
// unique conditional puts through a PartitionClient (in this process, over TCP and etcd); the
// owning partition server is killed with SIGKILL mid-stream; the other takes the partition over
// (lease expiry → reassignment → seal + checkpoint + log replay). Afterwards every acknowledged
// write must read back exactly ("N acknowledged, 0 lost").
// Figures: acknowledged / lost, indeterminate writes (resolved by a conditional retry), takeover
// time (kill → first acknowledged write on the new owner) and the log records it replayed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { EtcdMetaStore } from '../../src/metastore/etcd-meta-store.ts';
import { PartitionClient } from '../../src/partition/partition-client.ts';
import { readMap } from '../../src/partition/partition-map.ts';
import { TcpNetwork } from '../../src/rpc/tcp-network.ts';
import { SystemClock } from '../../src/util/clock.ts';
import { isStorageError } from '../../src/util/errors.ts';
import type { Column } from '../../src/wire/partition-row.ts';
import { freePort } from '../helpers/kura-serve.ts';
import { RoleProcess, useClusterBase } from '../helpers/role-process.ts';

const leaseTtlMs = 2_000;
const writersConcurrent = 4;
/** Writes before each kill: the second failover replays a log about 5× longer. */
const phases = [300, 1500];
const writesAfterKill = 200;
const runTimeMaxMs = 120_000;

async function scrape(role: RoleProcess): Promise<string> {
  const response = await fetch(`http://${role.addressOf('admin server listening')}/metrics`);
  assert.equal(response.status, 200);
  return response.text();
}

/** The value of the first series of `name` carrying every label of `labels` (NaN if none). */
function sample(metrics: string, name: string, labels: Readonly<Record<string, string>> = {}): number {
  const line = metrics.split('\n').find((candidate) => (candidate.startsWith(`${name}{`) || candidate.startsWith(`${name} `))
    && Object.entries(labels).every(([label, value]) => candidate.includes(`${label}="${value}"`)));
  return line === undefined ? Number.NaN : Number(line.slice(line.lastIndexOf(' ') + 1));
}

function text(value: string): Column[] {
  return [{ name: 'v', value: { kind: 'string', value } }];
}

describe('kura partition-server processes', () => {
  const clusterBase = useClusterBase('ps');

  it('kill -9 of the owning partition server mid-stream, twice with a longer log: the other takes over, N acknowledged, 0 lost', async (t) => {
    const { root, etcd, endpoints } = await clusterBase();
    const sm = await RoleProcess.start('stream-manager', ['stream-manager', '--etcd', endpoints, '--listen', '127.0.0.1:0', '--repair-interval-ms', '60000'], 'stream manager listening');
    const smAddress = sm.addressOf('stream manager listening');
    for (const nodeId of ['en1', 'en2', 'en3']) {
      await RoleProcess.start(nodeId, [
        'extent-node', '--disk', join(root, nodeId), '--fault-domain', `fd-${nodeId}`, '--upgrade-domain', `ud-${nodeId}`,
        '--listen', `127.0.0.1:${await freePort()}`, '--manager', smAddress, '--node-id', nodeId,
      ], 'extent node listening');
    }
    const servers = new Map<string, RoleProcess>();
    const serverArgs = (serverId: string): string[] => [
      'partition-server', '--etcd', endpoints, '--stream-manager', smAddress, '--listen', '127.0.0.1:0', '--server-id', serverId, '--lease-ttl-ms', String(leaseTtlMs),
      '--admin', '127.0.0.1:0',
    ];
    for (const serverId of ['ps-a', 'ps-b']) {
      servers.set(serverId, await RoleProcess.start(serverId, serverArgs(serverId), 'partition server listening'));
    }
    const manager = await RoleProcess.start('partition-manager', [
      'partition-manager', '--etcd', endpoints, '--stream-manager', smAddress, '--lease-ttl-ms', String(leaseTtlMs), '--tick-ms', '200', '--admin', '127.0.0.1:0',
    ], 'partition manager leading');

    const clock = new SystemClock();
    const metaStore = await EtcdMetaStore.connect({ endpoints: etcd.endpoints });
    const network = new TcpNetwork({ clock });
    const client = new PartitionClient({ metaStore, network, clock, attemptsMax: 12 });
    try {
      const acknowledged = new Map<string, string>();
      const figures: string[] = [];
      for (const [phase, writesBeforeKill] of phases.entries()) {
        if (phase > 0) {
          // The server killed in the previous phase comes back (same id: it waits out its old lease).
          const dead = [...servers.entries()].find(([, role]) => role.child.exitCode !== null || role.child.signalCode !== null);
          assert.ok(dead !== undefined);
          servers.set(dead[0], await RoleProcess.start(dead[0], serverArgs(dead[0]), 'partition server listening'));
        }
        const result = await writeAndKill({ client, metaStore, clock, servers, acknowledged, phase, writesBeforeKill });
        const survivor = [...servers.keys()].find((serverId) => serverId !== result.victim) ?? '';
        const loaded = servers.get(survivor)?.lines.filter((line) => line.includes('"partition loaded"')).at(-1) ?? '{}';
        const load = JSON.parse(loaded) as { replayed?: number; durationMs?: number };
        figures.push(`log of ${load.replayed ?? '?'} records: kill -9 of ${result.victim} → first write acknowledged by ${survivor} after ${result.takeoverMs} ms (load ${load.durationMs?.toFixed(0) ?? '?'} ms, lease TTL ${leaseTtlMs} ms)`);
        t.diagnostic(`phase ${phase}: ${result.indeterminate} indeterminate attempts (${result.resolvedByRetry} found applied on retry, ${result.unresolved} unresolved)`);
        assert.equal(result.unresolved, 0);
        assert.ok(result.takeoverMs > 0, 'the survivor acknowledged writes after the takeover');
      }
      let lost = 0;
      for (const [name, value] of acknowledged) {
        const row = await client.get(Buffer.from(name));
        const column = row?.columns[0]?.value;
        if (column?.kind !== 'string' || column.value !== value) lost += 1;
      }
      t.diagnostic(`${acknowledged.size} acknowledged, ${lost} lost`);
      for (const figure of figures) t.diagnostic(`failover: ${figure}`);
      assert.equal(lost, 0);
      // The admin ports (docs/metrics.md): the owner's request counters and the manager's reassignments.
      const owner = (await readMap(metaStore))?.map.partitions[0]?.owner?.serverId ?? '';
      const ownerRole = servers.get(owner);
      assert.ok(ownerRole !== undefined);
      const serverMetrics = await scrape(ownerRole);
      const managerMetrics = await scrape(manager);
      const puts = sample(serverMetrics, 'kura_partition_requests_total', { method: 'partition.put', status: 'ok' });
      t.diagnostic(`metrics: ${owner} kura_partition_served ${sample(serverMetrics, 'kura_partition_served')}, puts ok ${puts}; manager assignments ${sample(managerMetrics, 'kura_partition_assignments_total')}, leading ${sample(managerMetrics, 'kura_partition_manager_leading')}`);
      assert.equal(sample(serverMetrics, 'kura_partition_served'), 1);
      assert.ok(puts > 0);
      assert.equal(sample(managerMetrics, 'kura_partition_manager_leading'), 1);
      assert.ok(sample(managerMetrics, 'kura_partition_assignments_total') >= phases.length + 1, 'bootstrap and every failover assigned the partition');
    } finally {
      await network.close();
      await metaStore.close();
    }
  });
});

interface PhaseOptions {
  readonly client: PartitionClient;
  readonly metaStore: EtcdMetaStore;
  readonly clock: SystemClock;
  readonly servers: ReadonlyMap<string, RoleProcess>;
  readonly acknowledged: Map<string, string>;
  readonly phase: number;
  readonly writesBeforeKill: number;
}

/** Unique conditional puts from several writers; the owner is killed -9 after writesBeforeKill. */
async function writeAndKill(options: PhaseOptions): Promise<{ victim: string; takeoverMs: number; indeterminate: number; resolvedByRetry: number; unresolved: number }> {
  const { client, clock } = options;
  let indeterminate = 0;
  let resolvedByRetry = 0;
  let unresolved = 0;
  let issued = 0;
  let killedAtMs = 0;
  let takeoverMs = 0;
  let victim = '';
  const startedMs = Date.now();
  const put = async (name: string): Promise<boolean> => {
    // 100 attempts, 100 ms apart: patient enough for a lease expiry, a tick and a load.
    for (let attempt = 0; attempt < 100; attempt++) {
      const sentMs = Date.now();
      try {
        await client.put(Buffer.from(name), text(name), { ifNoneMatch: '*' });
        options.acknowledged.set(name, name);
        // Sent after the kill: only the new owner can have acknowledged it.
        if (killedAtMs > 0 && sentMs > killedAtMs && takeoverMs === 0) takeoverMs = Date.now() - killedAtMs;
        return true;
      } catch (error) {
        if (isStorageError(error, 'partition.exists')) {
          resolvedByRetry += 1;
          return true;
        }
        indeterminate += 1;
        await clock.sleep(100);
      }
    }
    return false;
  };
  const writer = async (writerId: number): Promise<void> => {
    for (let sequence = 0; issued < options.writesBeforeKill + writesAfterKill && Date.now() - startedMs < runTimeMaxMs; sequence++) {
      issued += 1;
      if (issued === options.writesBeforeKill) {
        victim = (await readMap(options.metaStore))?.map.partitions[0]?.owner?.serverId ?? '';
        killedAtMs = Date.now();
        options.servers.get(victim)?.child.kill('SIGKILL');
      }
      if (!(await put(`p${options.phase}-w${writerId}-${String(sequence).padStart(6, '0')}`))) unresolved += 1;
    }
  };
  await Promise.all(Array.from({ length: writersConcurrent }, (_, writerId) => writer(writerId)));
  assert.ok(victim !== '' && killedAtMs > 0, 'the owner was killed mid-stream');
  return { victim, takeoverMs, indeterminate, resolvedByRetry, unresolved };
}
