// A cluster front end's PartitionClient follows pm/map by an etcd watch (followMap): a map write
// reaches it without any request of its own (an idle client never re-reads the map otherwise),
// and it keeps doing so after etcd was killed and restarted (the watch resumes). Real etcd (one
// member, test/helpers/etcd.ts); the map is written as the partition manager writes it (a compare
// on its modRevision). Figures: the time from a write's commit to the client holding its version.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { EtcdMetaStore } from '../../src/metastore/etcd-meta-store.ts';
import { PartitionClient } from '../../src/partition/partition-client.ts';
import { mapKey, readMap, type PartitionMap } from '../../src/partition/partition-map.ts';
import { TcpNetwork } from '../../src/rpc/tcp-network.ts';
import { SystemClock } from '../../src/util/clock.ts';
import { startEtcd, type EtcdCluster } from '../helpers/etcd.ts';

const writes = 20;
const arrivalMaxMs = 1_000;

function mapAt(version: number): PartitionMap {
  const streams = { meta: 1, log: 2, checkpoint: 3, data: 4 };
  return { version, managerEpoch: 1, nextPartitionId: 1, partitions: [{ partitionId: 0, low: '', high: null, streams, inheritedData: [], ownerEpoch: version, owner: null }] };
}

/** Writes the next map version as the manager does; returns it. */
async function writeNextMap(store: EtcdMetaStore): Promise<number> {
  const read = await readMap(store);
  const version = (read?.map.version ?? 0) + 1;
  const result = await store.txn({ compare: [{ key: mapKey, modRevision: read?.modRevision ?? 0 }], success: [{ kind: 'put', key: mapKey, value: JSON.stringify(mapAt(version)) }] });
  assert.equal(result.succeeded, true);
  return version;
}

/** Milliseconds until the client holds `version` (fails after arrivalMaxMs). */
async function arrival(client: PartitionClient, version: number, sinceMs: number, timeoutMs = arrivalMaxMs): Promise<number> {
  while (client.mapVersion < version) {
    assert.ok(performance.now() - sinceMs < timeoutMs, `map v${version} did not reach the client within ${timeoutMs} ms (it holds v${client.mapVersion})`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return performance.now() - sinceMs;
}

function percentile(sorted: readonly number[], fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))] ?? Number.NaN;
}

describe('PartitionClient.followMap on etcd', { timeout: 90_000 }, () => {
  let cluster: EtcdCluster | null = null;
  const closers: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const close of closers.reverse()) await close();
    await cluster?.stop();
  });

  it('every map write reaches an idle client through the watch, also after etcd restarts', async (t) => {
    cluster = await startEtcd();
    const member = cluster.members[0];
    assert.ok(member !== undefined);
    const writer = await EtcdMetaStore.connect({ endpoints: cluster.endpoints, callTimeoutMs: 1_000 });
    const reader = await EtcdMetaStore.connect({ endpoints: cluster.endpoints, callTimeoutMs: 1_000 });
    const network = new TcpNetwork();
    const client = new PartitionClient({ metaStore: reader, network, clock: new SystemClock() });
    closers.push(() => writer.close(), () => reader.close(), () => network.close(), () => client.close());
    client.followMap();
    const first = await writeNextMap(writer);
    await arrival(client, first, performance.now(), 10_000);
    const arrivalsMs: number[] = [];
    for (let i = 0; i < writes; i++) {
      const startedMs = performance.now();
      const version = await writeNextMap(writer);
      arrivalsMs.push(await arrival(client, version, startedMs));
    }
    arrivalsMs.sort((a, b) => a - b);
    await member.kill();
    await member.restart();
    const restartedMs = performance.now();
    let resumed = 0;
    for (;;) {
      try {
        resumed = await writeNextMap(writer);
        break;
      } catch (error) {
        assert.ok(performance.now() - restartedMs < 30_000, `etcd not writable 30 s after its restart: ${String(error)}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    const afterRestartMs = await arrival(client, resumed, restartedMs, 30_000);
    t.diagnostic(`${writes} map writes, write + arrival at an idle client: p50 ${percentile(arrivalsMs, 0.5).toFixed(1)} ms, max ${percentile(arrivalsMs, 1).toFixed(1)} ms; `
      + `after an etcd kill -9 + restart, the first write (v${resumed}) arrived ${afterRestartMs.toFixed(0)} ms after etcd was healthy again; client map reads ${client.stats().mapRefreshes}`);
  });
});
