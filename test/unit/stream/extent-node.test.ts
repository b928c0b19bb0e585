// ExtentNode and StreamClient on SimDisk + SimNetwork + ManualClock, with a small fake stream
// manager: the append ack rule (P1), append-id idempotency, epoch fencing across restarts,
// secondary ordering, seal truncation, corrupt blocks never served (P2), copyFrom, and the
// release-token check of node.wipe (P3). Every test prints its figures with t.diagnostic().
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { appendReplicaTimeoutMs } from '../../../src/constants.ts';
import { SimDisk } from '../../../src/io/sim-disk.ts';
import { SimNetwork } from '../../../src/rpc/sim-network.ts';
import type { RpcHeader, RpcResponse } from '../../../src/rpc/network.ts';
import { ExtentNode } from '../../../src/stream/extent-node.ts';
import { StreamClient } from '../../../src/stream/stream-client.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import type { StorageError } from '../../../src/util/errors.ts';
import type { StorageErrorCode } from '../../../src/util/errors.ts';
import { SeededRandom } from '../../../src/util/random.ts';
import { FakeStreamManager } from '../../helpers/fake-stream-manager.ts';
import { EmbeddedMetaStore } from '../../../src/metastore/embedded-meta-store.ts';
import { StreamManager } from '../../../src/stream/stream-manager.ts';
import { StreamManagerProxy, serveStreamManager } from '../../../src/stream/stream-manager-proxy.ts';
import type { StreamManagerApi } from '../../../src/stream/protocol.ts';

const seed = BigInt(process.env['KURA_SEED'] ?? '20240601');

interface NodeSlot {
  readonly nodeId: string;
  readonly address: string;
  readonly disk: SimDisk;
  node: ExtentNode | null;
}

class Harness {
  readonly clock = new ManualClock(0);
  readonly random = new SeededRandom(seed);
  readonly network = new SimNetwork({ clock: this.clock, random: this.random, faults: { delayMsMin: 0, delayMsMax: 1 }, localAddress: 'client:1' });
  readonly manager = new FakeStreamManager({ network: this.network.endpoint('sm:1') });
  /** What nodes register and heartbeat with: the fake, or a proxy to the real StreamManager. */
  nodeManager: StreamManagerApi = this.manager;
  readonly slots = new Map<string, NodeSlot>();
  readonly client = new StreamClient({ manager: this.manager, network: this.network, clock: this.clock, clientId: 'test-client' });
  private readonly rates = new Map<string, number>();

  /** Advances virtual time 1 ms at a time until `promise` settles (bounded). */
  async drive<T>(promise: Promise<T>, stepsMax = 200_000): Promise<T> {
    let done = false;
    promise.then(() => { done = true; }, () => { done = true; });
    for (let steps = 0; !done && steps < stepsMax; steps++) await this.clock.advance(1);
    assert.ok(done, `promise did not settle within ${stepsMax} ms of virtual time`);
    return promise;
  }

  /** Advances `ms` of virtual time and reports whether `promise` settled meanwhile. */
  async settledWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
    let done = false;
    promise.then(() => { done = true; }, () => { done = true; });
    for (let step = 0; step < ms && !done; step++) await this.clock.advance(1);
    return done;
  }

  async startNode(nodeId: string, options: { readonly rereplicationBytesPerSecond?: number } = {}): Promise<ExtentNode> {
    const slot = this.slots.get(nodeId) ?? { nodeId, address: `${nodeId}:1`, disk: new SimDisk({ random: this.random, name: `sim:${nodeId}` }), node: null };
    this.slots.set(nodeId, slot);
    if (options.rereplicationBytesPerSecond !== undefined) this.rates.set(nodeId, options.rereplicationBytesPerSecond);
    const rate = this.rates.get(nodeId);
    slot.node = await this.drive(ExtentNode.start({
      nodeId,
      disk: slot.disk,
      clock: this.clock,
      random: this.random,
      network: this.network.endpoint(slot.address),
      listenAddress: slot.address,
      manager: this.nodeManager,
      faultDomain: `fd-${nodeId}`,
      upgradeDomain: `ud-${nodeId}`,
      groupCommit: true,
      heartbeatIntervalMs: 500,
      ...(rate === undefined ? {} : { rereplicationBytesPerSecond: rate }),
    }));
    return slot.node;
  }

  async stopNode(nodeId: string): Promise<void> {
    const slot = this.slot(nodeId);
    if (slot.node !== null) await this.drive(slot.node.stop());
    slot.node = null;
  }

  slot(nodeId: string): NodeSlot {
    const slot = this.slots.get(nodeId);
    assert.ok(slot !== undefined, `no node ${nodeId}`);
    return slot;
  }

  async call(nodeId: string, method: string, header: RpcHeader, body: Buffer = Buffer.alloc(0), deadlineMs = 20_000): Promise<RpcResponse> {
    return this.network.call(this.slot(nodeId).address, { method, header, body }, { deadlineMs });
  }

  async info(nodeId: string, extentId: number): Promise<RpcHeader> {
    return (await this.drive(this.call(nodeId, 'extent.info', { extentId }))).header;
  }

  async close(): Promise<void> {
    for (const nodeId of this.slots.keys()) await this.stopNode(nodeId);
    await this.network.close();
  }
}

async function withHarness(t: TestContext, nodeIds: readonly string[], body: (harness: Harness) => Promise<void>): Promise<void> {
  t.diagnostic(`seed ${seed}`);
  const harness = new Harness();
  try {
    for (const nodeId of nodeIds) await harness.startNode(nodeId);
    await body(harness);
  } finally {
    await harness.close();
  }
}

async function rejectsWith(promise: Promise<unknown>, code: StorageErrorCode): Promise<StorageError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(isStorageError(error), `expected a StorageError, got ${String(error)}`);
    assert.equal(error.code, code, `expected ${code}, got ${error.code}: ${error.message}`);
    return error;
  }
  assert.fail(`expected ${code}, but the call succeeded`);
}

/** A unique, self-checking record: writer, sequence, filler. */
function record(sequence: number, bytes = 256): Buffer {
  const data = Buffer.alloc(bytes, sequence % 251);
  data.write(`rec:${sequence}:`, 0, 'utf8');
  return data;
}

function replicasOf(harness: Harness, nodeIds: readonly string[]): Array<{ nodeId: string; address: string }> {
  return nodeIds.map((nodeId) => ({ nodeId, address: harness.slot(nodeId).address }));
}

const three = ['en1', 'en2', 'en3'] as const;

describe('ExtentNode: append (P1)', () => {
  it('acknowledges only after every replica made the append durable; a silent secondary means no ack', async (t) => {
    await withHarness(t, three, async (h) => {
      const stream = await h.drive(h.manager.createStream({ name: 's' }));
      const extent = stream.extents[0];
      assert.ok(extent !== undefined);
      const appendHeader = (appendId: string) => ({ epoch: 1, extentId: extent.extentId, appendId, replicas: replicasOf(h, three) });
      const first = await h.drive(h.call('en1', 'extent.append', appendHeader('a-0'), record(0)));
      assert.deepEqual(first.header, { offset: 0, length: 256 });
      for (const nodeId of three) assert.equal((await h.info(nodeId, extent.extentId))['length'], 256, `${nodeId} holds the acked append`);

      h.network.blackhole(h.slot('en3').address);
      const pending = h.call('en1', 'extent.append', appendHeader('a-1'), record(1), 60_000);
      const settledEarly = await h.settledWithin(pending, appendReplicaTimeoutMs - 10);
      assert.equal(settledEarly, false, 'no answer while a secondary has not made it durable');
      await rejectsWith(h.drive(pending), 'rpc.timeout');
      h.network.heal();
      assert.equal((await h.info('en2', extent.extentId))['length'], 512, 'the reachable secondary wrote it, yet no ack was given');
      await rejectsWith(h.drive(h.call('en1', 'extent.append', appendHeader('a-2'), record(2))), 'extent.failed');
      t.diagnostic('appends acked 1, acked while a secondary was silent 0, appends accepted after the failure 0');
    });
  });

  it('answers a retried append id with the first result and writes it once', async (t) => {
    await withHarness(t, three, async (h) => {
      const stream = await h.drive(h.manager.createStream({ name: 's' }));
      const extentId = stream.extents[0]?.extentId ?? -1;
      const header = { epoch: 1, extentId, appendId: 'retry-me', replicas: replicasOf(h, three) };
      const results = [];
      for (let i = 0; i < 5; i++) results.push((await h.drive(h.call('en1', 'extent.append', header, record(7)))).header);
      const concurrent = await h.drive(Promise.all([0, 1, 2].map(() => h.call('en1', 'extent.append', header, record(7)))));
      for (const result of [...results, ...concurrent.map((response) => response.header)]) assert.deepEqual(result, { offset: 0, length: 256 });
      for (const nodeId of three) assert.equal((await h.info(nodeId, extentId))['length'], 256);
      const replay = await h.drive(h.call('en2', 'extent.replicate', { epoch: 1, extentId, appendId: 'retry-me', offset: 0 }, record(7)));
      assert.deepEqual(replay.header, { offset: 0, length: 256 });
      t.diagnostic('8 deliveries of one append id (5 sequential, 3 concurrent) + 1 replayed replicate → 1 write per replica');
    });
  });

  it('orders appends: concurrent appends get consecutive offsets and every replica holds the same bytes', async (t) => {
    await withHarness(t, three, async (h) => {
      const stream = await h.drive(h.manager.createStream({ name: 's' }));
      const count = 40;
      const acks = await h.drive(Promise.all(Array.from({ length: count }, (_, i) => h.client.append(stream.streamId, record(i, 100 + i)))));
      const offsets = acks.map((ack) => ack.offset);
      let expected = 0;
      for (const [i, ack] of acks.entries()) {
        assert.equal(ack.offset, expected, `append ${i}`);
        expected += 100 + i;
      }
      const extentId = acks[0]?.extentId ?? -1;
      const copies: Buffer[] = [];
      for (const nodeId of three) copies.push((await h.drive(h.call(nodeId, 'extent.read', { extentId, offset: 0, length: expected }))).body);
      assert.ok(copies.every((copy) => copy.equals(copies[0] ?? Buffer.alloc(0))), 'replicas are byte-identical');
      t.diagnostic(`${count} concurrent appends acked, offsets strictly consecutive (last ${offsets.at(-1)}), 3 identical replicas of ${expected} bytes`);
    });
  });
});

describe('ExtentNode: epochs, secondaries, seal', () => {
  it('rejects a stale epoch, also after a restart (node.json)', async (t) => {
    await withHarness(t, ['en1'], async (h) => {
      await h.drive(h.call('en1', 'extent.create', { epoch: 5, streamId: 1, extentId: 10 }));
      await rejectsWith(h.drive(h.call('en1', 'extent.create', { epoch: 4, streamId: 1, extentId: 11 })), 'extent.stale_epoch');
      await rejectsWith(h.drive(h.call('en1', 'extent.seal', { epoch: 3, extentId: 10, length: 0 })), 'extent.stale_epoch');
      await h.stopNode('en1');
      h.manager.epoch = 2; // a stale manager that the node outlived: its epoch must not lower the fence
      await h.startNode('en1');
      assert.equal(h.slot('en1').node?.highestEpoch, 5);
      await rejectsWith(h.drive(h.call('en1', 'extent.remove', { epoch: 4, extentId: 10 })), 'extent.stale_epoch');
      assert.equal((await h.info('en1', 10))['streamId'], 1, 'the extent survived the stale remove');
      t.diagnostic('stale commands rejected 3 of 3 (1 after restart); highest epoch persisted 5');
    });
  });

  it('applies replicate calls in offset order, waits for a gap, and refuses one that never fills', async (t) => {
    await withHarness(t, ['en2'], async (h) => {
      await h.drive(h.call('en2', 'extent.create', { epoch: 1, streamId: 1, extentId: 3 }));
      const replicate = (appendId: string, offset: number, data: Buffer) => h.call('en2', 'extent.replicate', { epoch: 1, extentId: 3, appendId, offset }, data);
      const second = replicate('b', 100, record(2, 50));
      const third = replicate('c', 150, record(3, 30));
      assert.equal(await h.settledWithin(Promise.race([second, third]), 100), false, 'ahead of the gap: waits');
      const first = replicate('a', 0, record(1, 100));
      const answers = await h.drive(Promise.all([first, second, third]));
      assert.deepEqual(answers.map((answer) => answer.header), [{ offset: 0, length: 100 }, { offset: 100, length: 50 }, { offset: 150, length: 30 }]);
      assert.equal((await h.info('en2', 3))['length'], 180);
      await rejectsWith(h.drive(replicate('x', 100, record(9, 50))), 'extent.offset_mismatch');
      const gap = replicate('e', 500, record(5, 10));
      await rejectsWith(h.drive(gap), 'extent.offset_mismatch');
      assert.equal((await h.info('en2', 3))['length'], 180, 'nothing written past the gap');
      t.diagnostic('out-of-order replicate calls 3 applied in order; overwrite refused 1; unfilled gap refused after the bounded wait');
    });
  });

  it('seals at the given length, truncating a longer replica; sealed extents refuse appends', async (t) => {
    await withHarness(t, ['en1', 'en2'], async (h) => {
      for (const nodeId of ['en1', 'en2']) await h.drive(h.call(nodeId, 'extent.create', { epoch: 1, streamId: 1, extentId: 4 }));
      await h.drive(h.call('en1', 'extent.replicate', { epoch: 1, extentId: 4, appendId: 'p', offset: 0 }, record(1, 300)));
      await h.drive(h.call('en1', 'extent.replicate', { epoch: 1, extentId: 4, appendId: 'q', offset: 300 }, record(2, 200)));
      await h.drive(h.call('en2', 'extent.replicate', { epoch: 1, extentId: 4, appendId: 'p', offset: 0 }, record(1, 300)));
      for (const nodeId of ['en1', 'en2']) await h.drive(h.call(nodeId, 'extent.seal', { epoch: 1, extentId: 4, length: 300 }));
      for (const nodeId of ['en1', 'en2']) {
        const info = await h.info(nodeId, 4);
        assert.deepEqual([info['length'], info['state']], [300, { kind: 'sealed', sealedLength: 300 }], nodeId);
      }
      await rejectsWith(h.drive(h.call('en1', 'extent.read', { extentId: 4, offset: 250, length: 100 })), 'extent.out_of_range');
      await rejectsWith(h.drive(h.call('en1', 'extent.append', { epoch: 1, extentId: 4, appendId: 'r', replicas: replicasOf(h, ['en1', 'en2']) }, record(3))), 'extent.sealed');
      const found = await h.drive(h.call('en1', 'extent.findAppend', { extentId: 4, appendId: 'q' }));
      assert.deepEqual(found.header, { found: false }, 'an append cut by the seal is not reported as landed');
      t.diagnostic('replica of 500 bytes truncated to the sealed 300; reads past it and appends refused');
    });
  });
});

describe('StreamClient and ExtentNode: reads (P2), failures, copies, wipes (P3)', () => {
  it('never serves a corrupt block: the read fails over and the corruption is reported', async (t) => {
    await withHarness(t, three, async (h) => {
      const stream = await h.drive(h.manager.createStream({ name: 's' }));
      const acks = [];
      for (let i = 0; i < 8; i++) acks.push(await h.drive(h.client.append(stream.streamId, record(i, 4096))));
      const extentId = acks[0]?.extentId ?? -1;
      await h.drive(h.clock.sleep(1000)); // let the store apply its journal to the extent file
      const flipped = flipBitsInExtentFiles(h.slot('en1').disk, extentId);
      assert.ok(flipped > 0, 'found an extent file to corrupt');
      let corruptServed = 0;
      for (const ack of acks) {
        const bytes = await h.drive(h.client.read(ack.extentId, ack.offset, ack.length));
        if (!bytes.equals(record(acks.indexOf(ack), 4096))) corruptServed += 1;
      }
      await rejectsWith(h.drive(h.call('en1', 'extent.read', { extentId, offset: 0, length: 8 * 4096 })), 'extent.corrupt');
      const reports = h.manager.corruptionReports.filter((report) => report.nodeId === 'en1');
      assert.ok(reports.length >= 1, 'corruption reported to the manager');
      assert.equal(corruptServed, 0);
      t.diagnostic(`bits flipped ${flipped} on en1; reads 8, corrupt served ${corruptServed}, corruption reports ${reports.length}, client skips ${h.client.stats().corruptReplicasSkipped}`);
    });
  });

  it('seals and extends when a replica fails, and no acknowledged append is lost', async (t) => {
    await withHarness(t, ['en1', 'en2', 'en3', 'en4'], async (h) => {
      h.manager.excluded.add('en4');
      const stream = await h.drive(h.manager.createStream({ name: 's' }));
      const acked: Array<{ extentId: number; offset: number; length: number; sequence: number }> = [];
      for (let i = 0; i < 30; i++) {
        if (i === 10) {
          h.network.blackhole(h.slot('en3').address);
          h.manager.excluded.delete('en4');
          h.manager.excluded.add('en3');
        }
        acked.push({ ...(await h.drive(h.client.append(stream.streamId, record(i, 1000)))), sequence: i });
      }
      h.network.heal();
      let lost = 0;
      for (const ack of acked) {
        const bytes = await h.drive(h.client.read(ack.extentId, ack.offset, ack.length, { streamId: stream.streamId }));
        if (!bytes.equals(record(ack.sequence, 1000))) lost += 1;
      }
      const extents = new Set(acked.map((ack) => ack.extentId));
      assert.equal(lost, 0);
      assert.ok(extents.size >= 2, 'the stream moved to a new extent');
      t.diagnostic(`appends acknowledged ${acked.length}, lost ${lost}; seals ${h.manager.seals}, extents used ${extents.size}, client retries ${h.client.stats().appendRetries}`);
    });
  });

  it('copyFrom builds a byte-identical sealed replica at the bounded rate', async (t) => {
    await withHarness(t, ['en1', 'en2'], async (h) => {
      const rate = 1024 * 1024;
      await h.startNode('en4', { rereplicationBytesPerSecond: rate });
      h.manager.excluded.add('en4');
      const stream = await h.drive(h.manager.createStream({ name: 's', replicaCount: 2 }));
      let length = 0;
      for (let i = 0; i < 12; i++) length += (await h.drive(h.client.append(stream.streamId, record(i, 256 * 1024)))).length;
      const extentId = stream.extents[0]?.extentId ?? -1;
      await h.drive(h.manager.sealAndExtend({ streamId: stream.streamId, extentId }));
      flipBitsInExtentFiles(h.slot('en1').disk, extentId); // the first source is bad: the copy must skip it
      const started = h.clock.monotonicMs();
      const sources = replicasOf(h, ['en1', 'en2']);
      await h.drive(h.call('en4', 'extent.copyFrom', { epoch: 1, streamId: stream.streamId, extentId, sealedLength: length, sources }, Buffer.alloc(0), 60_000));
      const elapsedMs = h.clock.monotonicMs() - started;
      const info = await h.info('en4', extentId);
      assert.deepEqual(info['state'], { kind: 'sealed', sealedLength: length });
      const original = (await h.drive(h.call('en2', 'extent.read', { extentId, offset: 0, length }))).body;
      const copy = (await h.drive(h.call('en4', 'extent.read', { extentId, offset: 0, length }))).body;
      assert.ok(copy.equals(original), 'copy is byte-identical');
      const floorMs = ((length - 1024 * 1024) / rate) * 1000;
      assert.ok(elapsedMs >= floorMs, `copy took ${elapsedMs} ms, the rate bound needs at least ${floorMs}`);
      t.diagnostic(`copied ${length} bytes in ${elapsedMs} ms of virtual time at a bound of ${rate} B/s, skipping a corrupt source; byte-identical`);
    });
  });

  it('node.wipe is refused without a valid release token and removes everything with one', async (t) => {
    await withHarness(t, ['en1', 'en2'], async (h) => {
      for (let extentId = 1; extentId <= 3; extentId++) await h.drive(h.call('en1', 'extent.create', { epoch: 1, streamId: 1, extentId }));
      const forged = `${Buffer.from(JSON.stringify({ nodeId: 'en1', disk: 'sim:en1' })).toString('base64url')}.forged`;
      await rejectsWith(h.drive(h.call('en1', 'node.wipe', { token: forged })), 'node.protected');
      const otherNode = await h.drive(h.manager.releaseToken('en2'));
      await rejectsWith(h.drive(h.call('en1', 'node.wipe', { token: otherNode })), 'node.protected');
      await rejectsWith(h.drive(h.call('en1', 'node.wipe', { token: 'garbage' })), 'node.protected');
      for (let extentId = 1; extentId <= 3; extentId++) assert.equal((await h.info('en1', extentId))['extentId'], extentId);
      assert.equal(h.manager.checkedTokens.length, 1, 'only the token naming this node was sent to the manager');
      const token = await h.drive(h.manager.releaseToken('en1'));
      const wiped = await h.drive(h.call('en1', 'node.wipe', { token }));
      assert.deepEqual(wiped.header, { removedExtents: 3 });
      await rejectsWith(h.drive(h.call('en1', 'extent.info', { extentId: 1 })), 'extent.not_found');
      t.diagnostic('wipes refused 3 of 3 invalid tokens with 0 extents removed; valid token removed 3');
    });
  });
});

describe('ExtentNode with the real StreamManager behind serveStreamManager (SimNetwork)', () => {
  /** The real manager on an EmbeddedMetaStore, served at sm:1; nodes and client use proxies. */
  async function realManager(h: Harness): Promise<{ manager: StreamManager; client: StreamClient; proxy: StreamManagerProxy }> {
    const metaStore = await h.drive(EmbeddedMetaStore.open({ disk: new SimDisk({ random: h.random }), directory: 'meta', clock: h.clock }));
    const smNetwork = h.network.endpoint('sm:1');
    const manager = new StreamManager({ metaStore, network: smNetwork, clock: h.clock, random: h.random, replicaCountDefault: 3 });
    await h.drive(manager.start());
    await h.drive(serveStreamManager(smNetwork, 'sm:1', manager));
    const proxy = new StreamManagerProxy({ network: h.network, address: 'sm:1' });
    h.nodeManager = proxy;
    const client = new StreamClient({ manager: proxy, network: h.network, clock: h.clock, clientId: 'real-sm-client' });
    return { manager, client, proxy };
  }

  it('appends through a replica failure: the manager seals at the minimum length, nothing acknowledged is lost', async (t) => {
    await withHarness(t, [], async (h) => {
      const { client, proxy } = await realManager(h);
      for (const nodeId of ['en1', 'en2', 'en3', 'en4']) await h.startNode(nodeId);
      const stream = await h.drive(proxy.createStream({ name: 'log' }));
      const first = stream.extents[0];
      assert.ok(first !== undefined && first.replicas.length === 3);
      const victim = first.replicas[2]?.nodeId ?? '';
      const acked: Array<{ extentId: number; offset: number; length: number; sequence: number }> = [];
      for (let i = 0; i < 24; i++) {
        if (i === 8) h.network.blackhole(h.slot(victim).address);
        acked.push({ ...(await h.drive(client.append(stream.streamId, record(i, 2000)))), sequence: i });
      }
      h.network.heal();
      let lost = 0;
      for (const ack of acked) {
        const bytes = await h.drive(client.read(ack.extentId, ack.offset, ack.length));
        if (!bytes.equals(record(ack.sequence, 2000))) lost += 1;
      }
      const view = await h.drive(proxy.getStream(stream.streamId));
      assert.equal(lost, 0);
      assert.equal(view.extents[0]?.state.kind, 'sealed');
      assert.ok(!(view.extents.at(-1)?.replicas.some((replica) => replica.nodeId === victim) ?? true), 'the new tail avoids the failed node');
      const stats = client.stats();
      t.diagnostic(`appends acknowledged ${acked.length}, lost ${lost}; extents ${view.extents.length}; retries ${stats.appendRetries}, found after seal ${stats.appendsFoundAfterSeal}`);
    });
  });

  it('serves every manager method over the network and rejects malformed headers', async (t) => {
    await withHarness(t, [], async (h) => {
      const { proxy } = await realManager(h);
      for (const nodeId of ['en1', 'en2', 'en3']) await h.startNode(nodeId);
      const stream = await h.drive(proxy.createStream({ name: 'proxy', replicaCount: 3 }));
      const extentId = stream.extents[0]?.extentId ?? -1;
      assert.deepEqual(await h.drive(proxy.liveReplicas('en2')), [extentId]);
      await h.drive(proxy.reportCorruption({ extentId, nodeId: 'en2' }));
      const after = await h.drive(proxy.getStream(stream.streamId));
      assert.equal(after.extents[0]?.state.kind, 'sealed', 'a corruption report seals the open extent');
      assert.equal(await h.drive(proxy.checkToken('not-a-token')), false);
      const bad = h.network.call('sm:1', { method: 'manager.getStream', header: { streamId: -1 }, body: Buffer.alloc(0) }, { deadlineMs: 1000 });
      await rejectsWith(h.drive(bad), 'config.invalid');
      const unknown = h.network.call('sm:1', { method: 'manager.format', header: {}, body: Buffer.alloc(0) }, { deadlineMs: 1000 });
      await rejectsWith(h.drive(unknown), 'config.invalid');
      t.diagnostic('9 manager methods round-tripped through serveStreamManager; 2 malformed requests rejected');
    });
  });

  it('a node holding live replicas cannot be wiped; an empty one can, with its release token', async (t) => {
    await withHarness(t, [], async (h) => {
      const { proxy } = await realManager(h);
      for (const nodeId of ['en1', 'en2', 'en3', 'en4']) await h.startNode(nodeId);
      const stream = await h.drive(proxy.createStream({ name: 'p3', replicaCount: 3 }));
      const holders = new Set(stream.extents[0]?.replicas.map((replica) => replica.nodeId));
      const holder = [...holders][0] ?? '';
      const empty = ['en1', 'en2', 'en3', 'en4'].find((nodeId) => !holders.has(nodeId)) ?? '';
      await rejectsWith(h.drive(proxy.releaseToken(holder)), 'node.protected');
      const token = await h.drive(proxy.releaseToken(empty));
      const forOther = await rejectsWith(h.drive(h.call(holder, 'node.wipe', { token })), 'node.protected');
      const wiped = await h.drive(h.call(empty, 'node.wipe', { token }));
      assert.deepEqual(wiped.header, { removedExtents: 0 });
      assert.equal((await h.info(holder, stream.extents[0]?.extentId ?? -1))['length'], 0, 'the holder kept its replica');
      t.diagnostic(`token for a node with live replicas refused; its token replayed on ${holder} refused (${forOther.code}); empty node ${empty} wiped`);
    });
  });
});

/** Flips one bit in the body of every block-sized region of the extent's file(s) on `disk`. */
function flipBitsInExtentFiles(disk: SimDisk, extentId: number): number {
  let flipped = 0;
  const marker = extentId.toString(16).padStart(16, '0');
  for (const [path, bytes] of disk.snapshotFiles('live')) {
    if (!path.includes(marker) || path.includes('journal') || bytes.length < 4096) continue;
    for (let offset = 1024; offset < bytes.length; offset += 4096) {
      disk.flipBit(path, offset, 3);
      flipped += 1;
    }
  }
  return flipped;
}


