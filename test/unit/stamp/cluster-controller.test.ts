// ClusterController election on virtual time (docs/cluster.md, "Controller election"): two real
// controllers over one EmbeddedMetaStore (on a SimDisk) and a SimNetwork, on a ManualClock, each
// seeing the store through a wrapper that counts its calls and can cut it off (a controller whose
// host lost etcd). Figures, in virtual milliseconds and MetaStore calls:
// - idle: what a leader and a standby ask the store in 20 s (a standby used to poll
//   controller/leader every 250 ms: 80 gets; it now follows the key's watch, re-checking every
//   controllerRecheckMs);
// - handover: the leader stops (L_C revoked): how long until the standby leads;
// - cut-off: the leader loses the store: L_C expires at its TTL, and the standby leads that long
//   after the cut plus how long the campaign takes (no poll interval on top).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { controllerLeaseTtlMs, controllerRecheckMs } from '../../../src/constants.ts';
import { SimDisk } from '../../../src/io/sim-disk.ts';
import { EmbeddedMetaStore } from '../../../src/metastore/embedded-meta-store.ts';
import type { KeyValue, KeyWatch, MetaStore, RangeOptions, Txn, TxnResult } from '../../../src/metastore/meta-store.ts';
import { SimNetwork } from '../../../src/rpc/sim-network.ts';
import { ClusterController } from '../../../src/stamp/cluster-controller.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { StorageError } from '../../../src/util/errors.ts';
import { SeededRandom } from '../../../src/util/random.ts';

const seed = BigInt(process.env['KURA_SEED'] ?? '20121228');
const idleMs = 20_000;

/** One controller's view of the shared store: counts its calls; cut() makes every call fail. */
class ControllerStore implements MetaStore {
  readonly calls = { get: 0, range: 0, txn: 0, grantLease: 0, keepAlive: 0, revokeLease: 0 };
  private readonly inner: MetaStore;
  private cutOff = false;

  constructor(inner: MetaStore) {
    this.inner = inner;
  }

  cut(): void {
    this.cutOff = true;
  }

  reads(): number {
    return this.calls.get + this.calls.range;
  }

  async get(key: string): Promise<KeyValue | null> {
    this.count('get');
    return this.inner.get(key);
  }

  async range(start: string, options: RangeOptions): Promise<KeyValue[]> {
    this.count('range');
    return this.inner.range(start, options);
  }

  async txn(txn: Txn): Promise<TxnResult> {
    this.count('txn');
    return this.inner.txn(txn);
  }

  async grantLease(ttlMs: number): Promise<number> {
    this.count('grantLease');
    return this.inner.grantLease(ttlMs);
  }

  async keepAlive(lease: number): Promise<void> {
    this.count('keepAlive');
    return this.inner.keepAlive(lease);
  }

  async revokeLease(lease: number): Promise<void> {
    this.count('revokeLease');
    return this.inner.revokeLease(lease);
  }

  watchKey(key: string, onChange: () => void): KeyWatch {
    return this.inner.watchKey(key, () => {
      if (!this.cutOff) onChange();
    });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private count(call: keyof ControllerStore['calls']): void {
    if (this.cutOff) throw new StorageError('meta.unavailable', 'cut off from the MetaStore (test)', { retryable: true });
    this.calls[call] += 1;
  }
}

class Election {
  readonly clock = new ManualClock(0);
  readonly random = new SeededRandom(seed);
  readonly network = new SimNetwork({ clock: this.clock, random: this.random, faults: { delayMsMin: 0, delayMsMax: 1 }, localAddress: 'client:1' });
  metaStore!: EmbeddedMetaStore;

  async open(): Promise<void> {
    this.metaStore = await EmbeddedMetaStore.open({ disk: new SimDisk({ random: this.random, name: 'sim:meta' }), directory: 'meta', clock: this.clock });
  }

  async start(controllerId: string): Promise<{ controller: ClusterController; store: ControllerStore }> {
    const store = new ControllerStore(this.metaStore);
    const controller = await this.drive(ClusterController.start({
      controllerId, metaStore: store, network: this.network.endpoint(`${controllerId}:1`), clock: this.clock, random: this.random,
      listenAddress: `${controllerId}:1`, replicaCountDefault: 3,
    }));
    return { controller, store };
  }

  /** Advances virtual time 1 ms at a time until `promise` settles (bounded). */
  async drive<T>(promise: Promise<T>, stepsMax = 60_000): Promise<T> {
    let done = false;
    promise.then(() => { done = true; }, () => { done = true; });
    for (let steps = 0; !done && steps < stepsMax; steps++) await this.clock.advance(1);
    assert.ok(done, `promise did not settle within ${stepsMax} ms of virtual time`);
    return promise;
  }

  /** Virtual ms until `controller` leads (bounded). */
  async untilLeading(controller: ClusterController, boundMs: number): Promise<number> {
    const startMs = this.clock.monotonicMs();
    while (controller.role().kind !== 'leading') {
      assert.ok(this.clock.monotonicMs() - startMs < boundMs, `${JSON.stringify(controller.role())} after ${boundMs} ms`);
      await this.clock.advance(1);
    }
    return this.clock.monotonicMs() - startMs;
  }
}

describe('ClusterController: election by watch and lease events', () => {
  it('a standby follows controller/leader by its watch: few reads idle, takeover at once on a stop, a TTL after a cut-off', async (t) => {
    const election = new Election();
    await election.open();
    const first = await election.start('c1');
    await election.untilLeading(first.controller, 5_000);
    const second = await election.start('c2');
    await election.clock.advance(100);
    assert.equal(second.controller.role().kind, 'standby');

    const before = { leader: { ...first.store.calls }, standby: second.store.reads() };
    await election.clock.advance(idleMs);
    const standbyReads = second.store.reads() - before.standby;
    const leaderCalls = Object.fromEntries(Object.entries(first.store.calls).map(([name, count]) => [name, count - before.leader[name as keyof typeof before.leader]]));
    t.diagnostic(`idle ${idleMs / 1000} s: standby ${standbyReads} MetaStore reads (a 250 ms poll: ${idleMs / 250}); leader ${JSON.stringify(leaderCalls)}`);
    assert.ok(standbyReads <= idleMs / controllerRecheckMs + 1, `a standby re-reads controller/leader once per recheck: ${standbyReads}`);
    assert.equal(first.controller.role().kind, 'leading', 'the leader keeps leading while idle');

    // Handover: the leader stops (L_C revoked, controller/leader deleted): the watch wakes the standby.
    const stopping = first.controller.stop();
    const handoverMs = await election.untilLeading(second.controller, controllerRecheckMs * 2);
    await election.drive(stopping);
    t.diagnostic(`handover on stop: the standby leads ${handoverMs} ms (virtual) after the leader began to stop`);
    assert.ok(handoverMs < controllerRecheckMs, `handover waited for the recheck (${handoverMs} ms): the watch did not wake the standby`);

    // Cut-off: the new leader loses the store; a fresh standby takes over once L_C expired.
    const third = await election.start('c3');
    await election.clock.advance(100);
    assert.equal(third.controller.role().kind, 'standby');
    second.store.cut();
    const takeoverMs = await election.untilLeading(third.controller, controllerLeaseTtlMs + controllerRecheckMs * 2);
    t.diagnostic(`cut-off leader: the standby leads ${takeoverMs} ms (virtual) after the cut (lease TTL ${controllerLeaseTtlMs} ms)`);
    assert.ok(takeoverMs <= controllerLeaseTtlMs + controllerRecheckMs, `takeover ${takeoverMs} ms`);
    assert.notEqual(second.controller.role().kind, 'leading', 'the cut-off leader stepped down (L_C lost)');

    await election.drive(Promise.all([second.controller.stop(), third.controller.stop()]));
    await election.drive(election.metaStore.close());
    await election.network.close();
  });
});
