// StreamManagerMetrics on a simulated stamp (the harness style of
// test/unit/stream/stream-manager-stamp.test.ts): three real ExtentNodes in three fault domains
// on SimDisks, the real StreamManager on an EmbeddedMetaStore, SimNetwork, ManualClock. A node
// holding replicas is stopped; once it is past the heartbeat timeout a repair pass has no fourth
// fault domain to copy to, so kura_extents_below_target must read > 0 (the alert's condition);
// a fourth node joins, the next pass repairs, and the gauge must read 0 again. The epoch and
// fenced gauges follow the manager, including when a newer manager takes over.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { SimDisk } from '../../../src/io/sim-disk.ts';
import { EmbeddedMetaStore } from '../../../src/metastore/embedded-meta-store.ts';
import { StreamManagerMetrics } from '../../../src/observability/stream-manager-metrics.ts';
import { SimNetwork } from '../../../src/rpc/sim-network.ts';
import { ExtentNode } from '../../../src/stream/extent-node.ts';
import { StreamClient } from '../../../src/stream/stream-client.ts';
import { StreamManager } from '../../../src/stream/stream-manager.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { SeededRandom } from '../../../src/util/random.ts';

const seed = BigInt(process.env['KURA_SEED'] ?? '31102012');

class Stamp {
  readonly clock = new ManualClock(0);
  readonly random = new SeededRandom(seed);
  readonly network = new SimNetwork({ clock: this.clock, random: this.random, faults: { delayMsMin: 0, delayMsMax: 1 }, localAddress: 'client:1' });
  readonly nodes = new Map<string, ExtentNode>();
  metaStore!: EmbeddedMetaStore;
  manager!: StreamManager;
  client!: StreamClient;

  async start(nodeCount: number): Promise<void> {
    this.metaStore = await EmbeddedMetaStore.open({ disk: new SimDisk({ random: this.random, name: 'sim:meta' }), directory: 'meta', clock: this.clock });
    this.manager = await this.newManager('sm:1');
    this.client = new StreamClient({ manager: this.manager, network: this.network, clock: this.clock, clientId: 'metrics-client' });
    for (let i = 0; i < nodeCount; i++) await this.startNode(`en${i}`, i);
  }

  async newManager(address: string): Promise<StreamManager> {
    const manager = new StreamManager({ metaStore: this.metaStore, network: this.network.endpoint(address), clock: this.clock, random: this.random, replicaCountDefault: 3 });
    await manager.start();
    return manager;
  }

  async startNode(nodeId: string, index: number): Promise<void> {
    const node = await this.drive(ExtentNode.start({
      nodeId, disk: new SimDisk({ random: this.random, name: `sim:${nodeId}` }), clock: this.clock, random: this.random,
      network: this.network.endpoint(`${nodeId}:1`), listenAddress: `${nodeId}:1`, manager: this.manager,
      faultDomain: `fd${index}`, upgradeDomain: `ud${index}`, groupCommit: true,
    }));
    this.nodes.set(nodeId, node);
  }

  async stopNode(nodeId: string): Promise<void> {
    const node = this.nodes.get(nodeId);
    assert.ok(node !== undefined);
    await this.drive(node.stop());
    this.nodes.delete(nodeId);
  }

  /** Advances virtual time 1 ms at a time until `promise` settles (bounded). */
  async drive<T>(promise: Promise<T>, stepsMax = 300_000): Promise<T> {
    let done = false;
    promise.then(() => { done = true; }, () => { done = true; });
    for (let steps = 0; !done && steps < stepsMax; steps++) await this.clock.advance(1);
    assert.ok(done, `promise did not settle within ${stepsMax} ms of virtual time`);
    return promise;
  }

  async stop(): Promise<void> {
    await this.drive(this.manager.close());
    for (const node of this.nodes.values()) await this.drive(node.stop());
    await this.network.close();
  }
}

async function gauge(registry: Registry, name: string): Promise<number> {
  const metric = registry.getSingleMetric(name);
  assert.ok(metric !== undefined, `${name} is registered`);
  const value = (await metric.get()).values[0]?.value;
  assert.ok(value !== undefined, `${name} has a value`);
  return value;
}

async function labelled(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const metric = registry.getSingleMetric(name);
  assert.ok(metric !== undefined, `${name} is registered`);
  const match = (await metric.get()).values.find((value) => Object.entries(labels).every(([key, expected]) => String(value.labels[key]) === expected));
  return match?.value ?? 0;
}

describe('StreamManagerMetrics on a simulated stamp', () => {
  it('reads kura_extents_below_target > 0 while a lost node\'s replicas have nowhere to go, and 0 after repair', async (t) => {
    t.diagnostic(`seed ${seed}`);
    const stamp = new Stamp();
    await stamp.start(3);
    try {
      const registry = new Registry();
      const metrics = new StreamManagerMetrics({ registry, manager: stamp.manager });
      const seal = async (damage: string): Promise<number> => labelled(registry, 'kura_stream_seal_total', { damage });
      assert.equal(await seal('none'), 0, 'seal counters exist at 0');
      const stream = await stamp.drive(stamp.manager.createStream({ name: 'log' }));
      for (let i = 0; i < 4; i++) await stamp.drive(stamp.client.append(stream.streamId, Buffer.alloc(8192, i)));
      assert.equal(await gauge(registry, 'kura_extents_below_target'), 0, 'healthy stamp');
      assert.equal(await gauge(registry, 'kura_stream_manager_epoch'), stamp.manager.epoch);
      assert.equal(await gauge(registry, 'kura_stream_manager_fenced'), 0);

      await stamp.stopNode('en1');
      await stamp.drive(stamp.clock.sleep(12_000)); // past the heartbeat timeout
      const lost = await stamp.drive(stamp.manager.repairOnce());
      const belowWhileLost = await gauge(registry, 'kura_extents_below_target');
      assert.ok(belowWhileLost > 0, `below target while en1 is lost: ${belowWhileLost}`);

      await stamp.startNode('en3', 3);
      const repaired = await stamp.drive(stamp.manager.repairOnce());
      const belowAfterRepair = await gauge(registry, 'kura_extents_below_target');
      assert.equal(belowAfterRepair, 0, `after en3 joined: ${JSON.stringify(repaired)}`);
      const found = await gauge(registry, 'kura_repair_extents_found_total');
      const fixed = await gauge(registry, 'kura_repair_extents_fixed_total');
      assert.equal(await gauge(registry, 'kura_repair_passes_total'), 2);
      assert.equal(found, lost.extentsBelowTarget + repaired.extentsBelowTarget, 'found: what each pass found, summed');
      assert.equal(fixed, repaired.extentsRepaired);
      assert.ok(fixed > 0 && fixed <= found);
      assert.equal(await gauge(registry, 'kura_repair_extents_sealed_total'), lost.extentsSealed + repaired.extentsSealed);
      assert.equal(await seal('none'), lost.extentsSealed + repaired.extentsSealed, 'every seal here was a repair seal with undamaged answers');
      assert.equal(await gauge(registry, 'kura_extents_sealed_over_damage'), 0);
      t.diagnostic(`en1 lost: pass found ${lost.extentsBelowTarget} below target (${lost.extentsWithoutTarget} without a target), gauge ${belowWhileLost}; en3 joined: pass repaired ${repaired.extentsRepaired} (${repaired.bytesCopied} bytes copied), gauge ${belowAfterRepair}; counters: 2 passes, found ${found}, fixed ${fixed}, seals ${await seal('none')}`);

      const newer = await stamp.newManager('sm:2');
      // The older manager notices at its next MetaStore write.
      await assert.rejects(stamp.drive(stamp.manager.createStream({ name: 'late' })));
      assert.equal(await gauge(registry, 'kura_stream_manager_fenced'), 1, 'the superseded manager reads fenced');
      t.diagnostic(`newer manager at epoch ${newer.epoch}: old manager's fenced gauge 1`);
      await stamp.drive(newer.close());
      metrics.close();
    } finally {
      await stamp.stop();
    }
  });
});
