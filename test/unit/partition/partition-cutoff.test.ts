// A partition server cut off from the network, then healed: two faults the multi-host test
// (test/integration/cluster-netns.test.ts, a host cut off with its link down) found, pinned here on
// a simulated stamp (SimNetwork, ManualClock: the figures are virtual time, exact on every run).
//
// 1. The manager's maintenance asked every registered server for its status one after the other
//    with the default RPC deadline (10 s): the tick after the cut waited 10 s on the silent owner,
//    so its partition moved ~10 s after the cut with a 2 s lease. The calls now go out together,
//    each bounded by partitionStatusDeadlineMs.
// 2. A front end kept routing new requests by its cached map to the silent old owner: nothing
//    answered, nothing marked the map stale, so each write waited out partitionRpcDeadlineMs
//    (30 s) and failed, long after the partition had moved. The client now re-reads a map older
//    than partitionClientMapMaxAgeMs before routing, waiting at most partitionClientMapWaitMs for
//    it (a silent MetaStore must not stall the data path: test 3).
// 4. A server whose re-registration failed (the MetaStore unreachable past a call's deadline) never
//    tried again: after the heal it served nothing until restarted. Every map poll without a valid
//    lease now registers again (fixed in parallel by the simulator's work, ceb07f3; pinned here in
//    the multi-host shape: cut off from the MetaStore, healed, then given a partition).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { partitionClientMapMaxAgeMs, partitionClientMapWaitMs, partitionStatusDeadlineMs } from '../../../src/constants.ts';
import { PartitionClient } from '../../../src/partition/partition-client.ts';
import type { KeyValue, KeyWatch, MetaStore, RangeOptions, Txn, TxnResult } from '../../../src/metastore/meta-store.ts';
import type { Clock } from '../../../src/util/clock.ts';
import { StorageError } from '../../../src/util/errors.ts';
import { clusterLeaseTtlMs, key, PartitionCluster, text } from '../../helpers/partition-cluster.ts';

/** The stamp's MetaStore behind a switch: while cut, every call fails as an unreachable etcd does. */
class CuttableMetaStore implements MetaStore {
  cut = false;
  /** While cut: calls answer nothing for hangMs (a blackholed etcd until the call's deadline), then fail. */
  hang = false;
  private readonly hangMs = 5_000;
  private readonly clock: Clock;
  calls = 0;
  refused = 0;
  private readonly store: MetaStore;

  constructor(store: MetaStore, clock: Clock) {
    this.store = store;
    this.clock = clock;
  }

  get(key: string): Promise<KeyValue | null> {
    return this.through(() => this.store.get(key));
  }

  range(start: string, options: RangeOptions): Promise<KeyValue[]> {
    return this.through(() => this.store.range(start, options));
  }

  txn(txn: Txn): Promise<TxnResult> {
    return this.through(() => this.store.txn(txn));
  }

  grantLease(ttlMs: number): Promise<number> {
    return this.through(() => this.store.grantLease(ttlMs));
  }

  keepAlive(lease: number): Promise<void> {
    return this.through(() => this.store.keepAlive(lease));
  }

  revokeLease(lease: number): Promise<void> {
    return this.through(() => this.store.revokeLease(lease));
  }

  /** While cut, the watch is silent (an etcd member's stream cut off without an error). */
  watchKey(key: string, onChange: () => void): KeyWatch {
    return this.store.watchKey(key, () => {
      if (!this.cut) onChange();
    });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private async through<T>(call: () => Promise<T>): Promise<T> {
    this.calls += 1;
    if (!this.cut) return call();
    this.refused += 1;
    if (this.hang) await this.clock.sleep(this.hangMs);
    throw new StorageError('meta.unavailable', 'cut off from the MetaStore (test)', { retryable: true });
  }
}

describe('a partition server cut off and healed', () => {
  const clusters: PartitionCluster[] = [];
  after(async () => {
    for (const cluster of clusters) await cluster.close();
  });

  it('a blackholed owner\'s partition moves within lease TTL + one status deadline, not after a 10 s RPC deadline', async (t) => {
    const cluster = await PartitionCluster.start({ seed: 61, servers: ['ps-a'] });
    clusters.push(cluster);
    const { stamp, client } = cluster;
    await cluster.until(() => cluster.allServed());
    await cluster.addServer('ps-b');
    await stamp.drive(client.put(key('before'), text('before')));
    assert.equal((await cluster.map()).partitions[0]?.owner?.serverId, 'ps-a');
    // A few maintenance ticks ask both servers, as in a running cluster.
    await stamp.step(500);

    stamp.network.blackhole('ps-a:1'); // calls to it get no answer: only their deadline ends them
    cluster.server('ps-a').freezeLease(); // and it can no longer renew its lease
    const movedAfterMs = await cluster.until(async () => (await cluster.map()).partitions[0]?.owner?.serverId === 'ps-b', 60_000);
    const servedAfterMs = movedAfterMs + await cluster.until(() => cluster.allServed(), 60_000);
    const row = await stamp.drive(client.get(key('before')));
    t.diagnostic(`partition granted to ps-b ${movedAfterMs} ms (virtual) after the cut, served after ${servedAfterMs} ms (lease TTL ${clusterLeaseTtlMs} ms, status deadline ${partitionStatusDeadlineMs} ms; 10,137 ms before the fix)`);
    assert.ok(movedAfterMs <= clusterLeaseTtlMs + partitionStatusDeadlineMs + 500, `moved ${movedAfterMs} ms after the cut`);
    assert.notEqual(row, null, 'the row written before the cut is served by the new owner');
  });

  it('a front end whose cached map names the silent old owner sends a write to the new owner once the map moved', async (t) => {
    const cluster = await PartitionCluster.start({ seed: 63, servers: ['ps-a'] });
    clusters.push(cluster);
    const { stamp, client } = cluster;
    await cluster.until(() => cluster.allServed());
    await cluster.addServer('ps-b');
    await stamp.drive(client.put(key('before'), text('before')));
    stamp.network.blackhole('ps-a:1');
    cluster.server('ps-a').freezeLease();
    await cluster.until(async () => (await cluster.map()).partitions[0]?.owner?.serverId === 'ps-b' && (await cluster.allServed()), 60_000);

    const sentAtMs = stamp.clock.monotonicMs();
    const outcome = await stamp.drive(client.put(key('after'), text('after')).then(() => 'acknowledged', (error: unknown) => String(error)));
    const tookMs = stamp.clock.monotonicMs() - sentAtMs;
    t.diagnostic(`a write sent once ps-b served the partition: ${outcome} after ${tookMs} ms (virtual; map max age ${partitionClientMapMaxAgeMs} ms; before the fix: rpc.timeout after 30,000 ms)`);
    assert.equal(outcome, 'acknowledged');
    assert.ok(tookMs <= partitionClientMapMaxAgeMs + 1_000, `took ${tookMs} ms`);
  });

  it('a front end whose MetaStore falls silent keeps serving by its cached map: an aged map is waited for at most partitionClientMapWaitMs', async (t) => {
    const cluster = await PartitionCluster.start({ seed: 64, servers: ['ps-a'] });
    clusters.push(cluster);
    const { stamp } = cluster;
    await cluster.until(() => cluster.allServed());
    const cuttable = new CuttableMetaStore(stamp.metaStore, stamp.clock);
    const client = new PartitionClient({ metaStore: cuttable, network: stamp.network.endpoint('fe:2'), clock: stamp.clock });
    await stamp.drive(client.put(key('k0'), text('v0')));
    cuttable.cut = true;
    cuttable.hang = true;
    const tookMs: number[] = [];
    for (let index = 1; index <= 12; index++) {
      await stamp.step(600); // past the map's max age every other write
      const sentAtMs = stamp.clock.monotonicMs();
      await stamp.drive(client.put(key(`k${index}`), text(`v${index}`)));
      tookMs.push(stamp.clock.monotonicMs() - sentAtMs);
    }
    t.diagnostic(`12 writes with the MetaStore silent (its calls fail after 5 s): ${tookMs.join(', ')} ms (virtual; wait bound ${partitionClientMapWaitMs} ms); ${cuttable.refused} MetaStore calls unanswered`);
    assert.ok(cuttable.refused >= 2, 'aged maps were re-read');
    assert.ok(Math.max(...tookMs) <= partitionClientMapWaitMs + 100, `writes took ${tookMs.join(', ')} ms`);
  });

  it('a server whose re-registration failed while cut off registers again after the heal and takes partitions', async (t) => {
    const cluster = await PartitionCluster.start({ seed: 62, servers: ['ps-a'] });
    clusters.push(cluster);
    const { stamp, client } = cluster;
    await cluster.until(() => cluster.allServed());
    const cuttable = new CuttableMetaStore(stamp.metaStore, stamp.clock);
    const server = await cluster.addServer('ps-b', { metaStore: cuttable });
    const firstLease = server.leaseId;
    assert.ok(server.leaseConfirmed);

    cuttable.cut = true;
    await cluster.until(() => !server.leaseConfirmed, 30_000);
    await stamp.step(10_000); // registrations fail all along
    assert.equal(server.leaseConfirmed, false);
    const refusedWhileCut = cuttable.refused;
    cuttable.cut = false;
    const backAfterMs = await cluster.until(() => server.leaseConfirmed, 30_000);
    assert.notEqual(server.leaseId, firstLease, 'a fresh lease');

    // It is a usable server again: the owner dies and ps-b takes the partition.
    await stamp.drive(client.put(key('k'), text('v')));
    await stamp.drive(cluster.server('ps-a').crash());
    await cluster.until(async () => (await cluster.map()).partitions[0]?.owner?.serverId === 'ps-b' && (await cluster.allServed()), 60_000);
    const row = await stamp.drive(client.get(key('k')));
    t.diagnostic(`${refusedWhileCut} MetaStore calls refused while cut off; registered again ${backAfterMs} ms (virtual) after the heal (never, before the fix); then served the partition after ps-a died`);
    assert.ok(refusedWhileCut > 0);
    assert.notEqual(row, null);
  });
});
