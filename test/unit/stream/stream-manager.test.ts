// The stream manager's control path (docs/stream-protocol.md) on an EmbeddedMetaStore over a
// SimDisk and a SimNetwork on a ManualClock: the seal rule (smallest answering length), one new
// extent for concurrent seals, epoch fencing of a stale manager, release tokens and the 2012
// scenario (P3), repair after node loss with its figures, a returned node kept protected, a node
// that restarts inside the heartbeat timeout while its extent is sealed (sealed on registration,
// or replaced if short; the repair audit catches it without a registration), and damaged
// replicas (left out of the seal length, replaced; a seal over damage only).
//
// Extent nodes here are small fakes served on the SimNetwork (lengths only, no bytes) that obey
// the protocol's epoch rule; the byte-level behaviour is the extent node's own suite.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rpcDeadlineMsDefault } from '../../../src/constants.ts';
import { EmbeddedMetaStore } from '../../../src/metastore/embedded-meta-store.ts';
import { SimDisk } from '../../../src/io/sim-disk.ts';
import { SimNetwork } from '../../../src/rpc/sim-network.ts';
import type { RpcHeader, RpcRequest, RpcResponse } from '../../../src/rpc/network.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { SeededRandom } from '../../../src/util/random.ts';
import { StorageError, isStorageError } from '../../../src/util/errors.ts';
import { StreamManager } from '../../../src/stream/stream-manager.ts';
import { extentNodeRequests, parseHeader } from '../../../src/stream/protocol.ts';
import type { StreamView } from '../../../src/stream/protocol.ts';

const seed = 20121228;
const heartbeatTimeoutMs = 10_000;

interface FakeExtent {
  streamId: number;
  length: number;
  sealedLength: number | null;
  /** Its recovery could not prove it holds every acknowledged append (extent.info damaged). */
  damaged?: boolean;
}

/** A lengths-only extent node: create, info, seal (truncates), copyFrom, status; epoch-fenced. */
class FakeNode {
  readonly nodeId: string;
  readonly address: string;
  readonly faultDomain: string;
  readonly upgradeDomain: string;
  readonly extents = new Map<number, FakeExtent>();
  highestEpoch = 0;
  rejectedStale = 0;
  private readonly peers: ReadonlyMap<string, FakeNode>;

  constructor(index: number, peers: ReadonlyMap<string, FakeNode>) {
    this.nodeId = `en${index}`;
    this.address = `en${index}:7000`;
    this.faultDomain = `fd${index % 3}`;
    this.upgradeDomain = `ud${index}`; // upgrade domains orthogonal to fault domains, one per node
    this.peers = peers;
  }

  registration(): { nodeId: string; address: string; faultDomain: string; upgradeDomain: string; disk: string } {
    return { nodeId: this.nodeId, address: this.address, faultDomain: this.faultDomain, upgradeDomain: this.upgradeDomain, disk: `sim:${this.nodeId}` };
  }

  handle(request: RpcRequest): Promise<RpcResponse> {
    return Promise.resolve({ header: this.answer(request), body: Buffer.alloc(0) });
  }

  private admit(epoch: number): void {
    if (epoch < this.highestEpoch) {
      this.rejectedStale += 1;
      throw new StorageError('extent.stale_epoch', `epoch ${epoch} < ${this.highestEpoch}`);
    }
    this.highestEpoch = epoch;
  }

  private extent(extentId: number): FakeExtent {
    const extent = this.extents.get(extentId);
    if (extent === undefined) throw new StorageError('extent.not_found', `no extent ${extentId} on ${this.nodeId}`);
    return extent;
  }

  private answer(request: RpcRequest): RpcHeader {
    switch (request.method) {
      case 'extent.create': {
        const r = parseHeader(extentNodeRequests['extent.create'], request.header, request.method);
        this.admit(r.epoch);
        this.extents.set(r.extentId, { streamId: r.streamId, length: 0, sealedLength: null });
        return {};
      }
      case 'extent.info': {
        const r = parseHeader(extentNodeRequests['extent.info'], request.header, request.method);
        const e = this.extent(r.extentId);
        const state = e.sealedLength === null ? { kind: 'open' } : { kind: 'sealed', sealedLength: e.sealedLength };
        return e.damaged === true ? { length: e.length, state, damaged: true } : { length: e.length, state };
      }
      case 'extent.seal': {
        const r = parseHeader(extentNodeRequests['extent.seal'], request.header, request.method);
        this.admit(r.epoch);
        const e = this.extent(r.extentId);
        if (e.length < r.length) throw new StorageError('extent.out_of_range', 'replica shorter than the sealed length');
        e.length = r.length;
        e.sealedLength = r.length;
        return {};
      }
      case 'extent.copyFrom': {
        const r = parseHeader(extentNodeRequests['extent.copyFrom'], request.header, request.method);
        this.admit(r.epoch);
        const source = r.sources.map((s) => this.peers.get(s.nodeId)?.extents.get(r.extentId)).find((e) => e !== undefined && e.length >= r.sealedLength);
        if (source === undefined) throw new StorageError('stream.unavailable', 'no source holds the extent');
        this.extents.set(r.extentId, { streamId: r.streamId, length: r.sealedLength, sealedLength: r.sealedLength });
        return { length: r.sealedLength };
      }
      case 'node.status':
        return { extentIds: [...this.extents.keys()] };
      default:
        throw new StorageError('config.invalid', `fake node does not serve ${request.method}`);
    }
  }
}

interface Stamp {
  readonly clock: ManualClock;
  readonly network: SimNetwork;
  readonly metaStore: EmbeddedMetaStore;
  readonly nodes: Map<string, FakeNode>;
  readonly random: SeededRandom;
}

async function newStamp(nodeCount: number): Promise<Stamp> {
  const clock = new ManualClock();
  const random = new SeededRandom(seed);
  const network = new SimNetwork({ clock, random, localAddress: 'sm:9000' });
  const metaStore = await EmbeddedMetaStore.open({ disk: new SimDisk({ random }), directory: 'meta', clock });
  const nodes = new Map<string, FakeNode>();
  for (let i = 0; i < nodeCount; i++) {
    const node = new FakeNode(i, nodes);
    nodes.set(node.nodeId, node);
    await network.listen(node.address, (request) => node.handle(request));
  }
  return { clock, network, metaStore, nodes, random };
}

async function newManager(stamp: Stamp, nodeHeartbeatTimeoutMs = heartbeatTimeoutMs): Promise<StreamManager> {
  const manager = new StreamManager({
    metaStore: stamp.metaStore, network: stamp.network, clock: stamp.clock, random: stamp.random, replicaCountDefault: 3, nodeHeartbeatTimeoutMs,
  });
  await manager.start();
  return manager;
}

/** Runs a call to completion, moving virtual time 1 ms at a time (the SimNetwork's delays). */
async function settle<T>(clock: ManualClock, promise: Promise<T>, limitMs = 120_000): Promise<T> {
  let done = false;
  promise.then(() => { done = true; }, () => { done = true; });
  for (let elapsed = 0; !done && elapsed < limitMs; elapsed++) await clock.advance(1);
  return promise;
}

/** As settle, while every node not in `silent` heartbeats every 2 s of virtual time. */
async function settleBeating<T>(stamp: Stamp, manager: StreamManager, promise: Promise<T>, silent: ReadonlySet<string>): Promise<T> {
  let done = false;
  promise.then(() => { done = true; }, () => { done = true; });
  for (let elapsed = 1; !done && elapsed < 120_000; elapsed++) {
    await stamp.clock.advance(1);
    if (elapsed % 2_000 !== 0) continue;
    for (const node of stamp.nodes.values()) {
      if (!silent.has(node.nodeId)) await manager.heartbeat({ nodeId: node.nodeId, extentCount: node.extents.size, failed: false });
    }
  }
  return promise;
}

async function registerAll(stamp: Stamp, manager: StreamManager): Promise<void> {
  for (const node of stamp.nodes.values()) await manager.registerNode(node.registration());
}

/** Advances time in heartbeat steps; every node not in `silent` heartbeats each step. */
async function passTime(stamp: Stamp, manager: StreamManager, ms: number, silent: ReadonlySet<string> = new Set()): Promise<void> {
  const stepMs = 2_000;
  for (let elapsed = 0; elapsed < ms; elapsed += stepMs) {
    await stamp.clock.advance(stepMs);
    for (const node of stamp.nodes.values()) {
      if (!silent.has(node.nodeId)) await manager.heartbeat({ nodeId: node.nodeId, extentCount: node.extents.size, failed: false });
    }
  }
}

function tail(view: StreamView): StreamView['extents'][number] {
  const last = view.extents.at(-1);
  assert.ok(last !== undefined);
  return last;
}

/** Simulates appends: every replica of the tail extent gets `lengths[i]` bytes. */
function setLengths(stamp: Stamp, view: StreamView, lengths: readonly number[]): void {
  for (const [index, replica] of tail(view).replicas.entries()) {
    const extent = stamp.nodes.get(replica.nodeId)?.extents.get(tail(view).extentId);
    assert.ok(extent !== undefined);
    extent.length = lengths[index] ?? 0;
  }
}

async function rejects(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => isStorageError(error) && error.code === code);
}

describe('StreamManager', () => {
  it('creates a stream with three replicas in distinct fault and upgrade domains', async (t) => {
    const stamp = await newStamp(6);
    const manager = await newManager(stamp);
    await registerAll(stamp, manager);
    const view = await settle(stamp.clock, manager.createStream({ name: 'log' }));
    const replicas = tail(view).replicas.map((r) => stamp.nodes.get(r.nodeId)!);
    assert.equal(replicas.length, 3);
    assert.equal(new Set(replicas.map((n) => n.faultDomain)).size, 3);
    assert.equal(new Set(replicas.map((n) => n.upgradeDomain)).size, 3);
    for (const node of replicas) assert.ok(node.extents.has(tail(view).extentId));
    assert.equal(tail(view).epoch, manager.epoch);
    t.diagnostic(`epoch ${manager.epoch}, extent ${tail(view).extentId} on ${replicas.map((n) => `${n.nodeId}/${n.faultDomain}/${n.upgradeDomain}`).join(', ')}`);
  });

  it('seals at the smallest length among the answering replicas and extends once under concurrent calls', async (t) => {
    const stamp = await newStamp(6);
    const manager = await newManager(stamp);
    await registerAll(stamp, manager);
    const view = await settle(stamp.clock, manager.createStream({ name: 'log' }));
    const extentId = tail(view).extentId;
    setLengths(stamp, view, [4096, 1024, 8192]);
    const calls = Array.from({ length: 5 }, () => manager.sealAndExtend({ streamId: view.streamId, extentId }));
    const views = await settle(stamp.clock, Promise.all(calls));
    for (const after of views) {
      assert.equal(after.extents.length, 2, 'one new extent, not one per call');
      assert.deepEqual(after.extents[0]?.state, { kind: 'sealed', sealedLength: 1024 });
      assert.equal(after.extents[1]?.state.kind, 'open');
    }
    for (const replica of tail(view).replicas) {
      assert.deepEqual(stamp.nodes.get(replica.nodeId)?.extents.get(extentId), { streamId: view.streamId, length: 1024, sealedLength: 1024 });
    }
    t.diagnostic(`5 concurrent sealAndExtend calls -> 1 new extent; sealed at 1024 of lengths 4096/1024/8192`);
  });

  it('seals around a replica that does not answer', async () => {
    const stamp = await newStamp(6);
    const manager = await newManager(stamp);
    await registerAll(stamp, manager);
    const view = await settle(stamp.clock, manager.createStream({ name: 'log' }));
    setLengths(stamp, view, [300, 200, 100]);
    const silent = tail(view).replicas[2]!;
    stamp.network.blackhole(silent.address);
    const after = await settle(stamp.clock, manager.sealAndExtend({ streamId: view.streamId, extentId: tail(view).extentId }));
    assert.deepEqual(after.extents[0]?.state, { kind: 'sealed', sealedLength: 200 });
  });

  it('leaves a node whose extent.create failed out of placement until it heartbeats again', async (t) => {
    const stamp = await newStamp(6);
    // A heartbeat timeout well above the create deadline: en0 stays "not lost" throughout.
    const manager = await newManager(stamp, 4 * rpcDeadlineMsDefault);
    await registerAll(stamp, manager);
    const dead = stamp.nodes.get('en0')!;
    stamp.network.blackhole(dead.address);
    const streamsMade = 8;
    const startMs = stamp.clock.monotonicMs();
    const placed: string[][] = [];
    const spentMs: number[] = [];
    for (let i = 0; i < streamsMade; i++) {
      const before = stamp.clock.monotonicMs();
      const view = await settleBeating(stamp, manager, manager.createStream({ name: `s${i}` }), new Set(['en0']));
      spentMs.push(stamp.clock.monotonicMs() - before);
      placed.push(tail(view).replicas.map((r) => r.nodeId));
    }
    const totalMs = stamp.clock.monotonicMs() - startMs;
    for (const nodeIds of placed) {
      assert.equal(nodeIds.length, 3, 'three replicas: en3 stands in for en0 in fd0');
      assert.ok(!nodeIds.includes('en0'));
    }
    const slow = spentMs.filter((ms) => ms >= rpcDeadlineMsDefault).length;
    assert.equal(slow, 1, `one placement waited for en0's create to time out, not every one (waits: ${spentMs.join(', ')} ms)`);
    stamp.network.heal();
    await manager.heartbeat({ nodeId: 'en0', extentCount: dead.extents.size, failed: false });
    let again = 0;
    for (let i = 0; i < 12 && again === 0; i++) {
      const view = await settle(stamp.clock, manager.createStream({ name: `back${i}` }));
      if (tail(view).replicas.some((r) => r.nodeId === 'en0')) again = i + 1;
    }
    assert.ok(again > 0, 'placed on en0 again after its heartbeat');
    t.diagnostic(`en0 blackholed: ${streamsMade} streams placed with 3 replicas in ${totalMs} virtual ms (per stream ${spentMs.join(', ')} ms); after its heartbeat en0 took a replica of new stream #${again}`);
  });

  it('still places on a node a create failed on when leaving it out would cost a replica (3 nodes)', async (t) => {
    const stamp = await newStamp(3);
    const manager = await newManager(stamp, 4 * rpcDeadlineMsDefault);
    await registerAll(stamp, manager);
    stamp.network.blackhole('en0:7000');
    const during = await settleBeating(stamp, manager, manager.createStream({ name: 'during' }), new Set(['en0']));
    assert.deepEqual(tail(during).replicas.map((r) => r.nodeId).sort(), ['en1', 'en2'], 'placed around the silent node, with a shortfall');
    stamp.network.heal();
    const after = await settle(stamp.clock, manager.createStream({ name: 'after' }));
    assert.deepEqual(tail(after).replicas.map((r) => r.nodeId).sort(), ['en0', 'en1', 'en2'], 'no heartbeat yet, but leaving en0 out would place 2 replicas: it is tried');
    t.diagnostic('3-node stamp: a create that failed on en0 does not keep the next extent at 2 replicas');
  });

  it('fences a stale manager: its MetaStore writes fail and nodes reject its epoch', async (t) => {
    const stamp = await newStamp(6);
    const older = await newManager(stamp);
    await registerAll(stamp, older);
    const view = await settle(stamp.clock, older.createStream({ name: 'log' }));
    const newer = await newManager(stamp);
    assert.equal(newer.epoch, older.epoch + 1);
    await settle(stamp.clock, newer.createStream({ name: 'other' }));
    setLengths(stamp, view, [10, 10, 10]);
    const node = stamp.nodes.get(tail(view).replicas[0]!.nodeId)!;
    // The older manager still believes it leads: its seal attempt reads the replicas, then its
    // txn fails on the epoch compare and it stops.
    await rejects(settle(stamp.clock, older.sealAndExtend({ streamId: view.streamId, extentId: tail(view).extentId })), 'extent.stale_epoch');
    assert.ok(older.fenced);
    await rejects(older.createStream({ name: 'late' }), 'extent.stale_epoch');
    // A node that has seen the newer epoch (here: the newer manager sealed through it) rejects
    // any command of the older one.
    await settle(stamp.clock, newer.sealAndExtend({ streamId: view.streamId, extentId: tail(view).extentId }));
    const stale = stamp.network.call(node.address, { method: 'extent.seal', header: { epoch: older.epoch, extentId: tail(view).extentId, length: 0 }, body: Buffer.alloc(0) });
    await rejects(settle(stamp.clock, stale), 'extent.stale_epoch');
    const reopened = await settle(stamp.clock, newer.getStream(view.streamId));
    assert.equal(reopened.extents.length, 2, 'only the newer manager extended the stream');
    t.diagnostic(`stale epoch ${older.epoch} fenced by ${newer.epoch}; node rejections: ${node.rejectedStale}`);
  });

  it('2012: refuses release for nodes holding replicas in every fault domain; repair empties a lost node, which then gets a token', async (t) => {
    const stamp = await newStamp(6);
    const manager = await newManager(stamp);
    await registerAll(stamp, manager);
    const streams = await sealedStreams(stamp, manager, 6);
    const holders = [...stamp.nodes.values()].filter((n) => n.extents.size > 0);
    assert.equal(new Set(holders.map((n) => n.faultDomain)).size, 3, 'replicas span all three fault domains');
    // The outage's action: "prepare" every node. Each needs a token; each is refused.
    let refused = 0;
    for (const node of holders) {
      assert.ok((await manager.liveReplicas(node.nodeId)).length > 0);
      await rejects(manager.releaseToken(node.nodeId), 'node.protected');
      refused += 1;
    }
    assert.equal(refused, holders.length);
    const victim = [...holders].sort((a, b) => b.extents.size - a.extents.size)[0]!;
    await passTime(stamp, manager, heartbeatTimeoutMs + 2_000, new Set([victim.nodeId]));
    assert.ok(manager.extentsBelowTarget() === 0, 'nothing counted below target before a scan');
    const report = await settle(stamp.clock, manager.repairOnce());
    assert.ok(report.extentsRepaired > 0);
    assert.equal(report.extentsUnrecoverable + report.extentsWithoutTarget + report.copyFailures, 0);
    assert.equal(manager.extentsBelowTarget(), 0);
    await assertFullyReplicated(stamp, manager, streams, victim.nodeId);
    assert.deepEqual(await manager.liveReplicas(victim.nodeId), []);
    const token = await manager.releaseToken(victim.nodeId);
    assert.equal(await manager.checkToken(token), true);
    for (const node of holders.filter((n) => n !== victim)) await rejects(manager.releaseToken(node.nodeId), 'node.protected');
    t.diagnostic(`release refused for ${refused}/${holders.length} replica-holding nodes in 3 fault domains`);
    t.diagnostic(`node ${victim.nodeId} lost: ${report.extentsRepaired} extents repaired (${report.replicasCopied} replicas, ${report.bytesCopied} bytes copied) in ${report.durationMs} ms simulated; bandwidth bound ${report.bandwidthBoundMs.toFixed(1)} ms; ${report.nodesMarkedLost} node marked lost`);
    t.diagnostic(`emptied node ${victim.nodeId} got a release token; ${holders.length - 1} others still refused`);
  });

  it('voids a release token when anything is placed on the node after it was issued', async () => {
    const stamp = await newStamp(7);
    const manager = await newManager(stamp);
    const fresh = stamp.nodes.get('en6')!;
    for (const node of stamp.nodes.values()) if (node !== fresh) await manager.registerNode(node.registration());
    await sealedStreams(stamp, manager, 3);
    await manager.registerNode(fresh.registration());
    const token = await manager.releaseToken(fresh.nodeId);
    assert.equal(await manager.tokenRefusal(token), null);
    const view = await settle(stamp.clock, manager.createStream({ name: 'after' }));
    assert.ok(tail(view).replicas.some((r) => r.nodeId === fresh.nodeId), 'the empty node is least loaded, so it is chosen');
    assert.equal(await manager.tokenRefusal(token), 'placement');
    assert.equal(await manager.checkToken(token), false);
    assert.equal(await manager.tokenRefusal(`${token.slice(0, -2)}xx`), 'signature');
    await stamp.clock.advance(16 * 60_000);
    await rejects(manager.releaseToken(fresh.nodeId), 'node.protected');
  });

  it('expires tokens and voids them on a new epoch', async () => {
    const stamp = await newStamp(4);
    const manager = await newManager(stamp);
    await registerAll(stamp, manager);
    const token = await manager.releaseToken('en3');
    await stamp.clock.advance(16 * 60_000);
    assert.equal(await manager.tokenRefusal(token), 'expired');
    const second = await manager.releaseToken('en3');
    const newer = await newManager(stamp);
    assert.equal(await newer.tokenRefusal(second), 'epoch');
    assert.equal(await manager.checkToken(second), false, 'the superseded manager refuses its own token');
    assert.ok(manager.fenced);
  });

  it('keeps a node that returns after being lost protected until reconciled, and reports what it holds', async (t) => {
    const stamp = await newStamp(6);
    const manager = await newManager(stamp);
    await registerAll(stamp, manager);
    const streams = await sealedStreams(stamp, manager, 4);
    const victim = [...stamp.nodes.values()].sort((a, b) => b.extents.size - a.extents.size)[0]!;
    const heldBefore = victim.extents.size;
    await passTime(stamp, manager, heartbeatTimeoutMs + 2_000, new Set([victim.nodeId]));
    await rejects(manager.heartbeat({ nodeId: victim.nodeId, extentCount: heldBefore, failed: false }), 'node.not_found');
    await settle(stamp.clock, manager.repairOnce());
    await manager.registerNode(victim.registration());
    await rejects(manager.releaseToken(victim.nodeId), 'node.protected');
    const view = await settle(stamp.clock, manager.createStream({ name: 'while-returned' }));
    assert.ok(!tail(view).replicas.some((r) => r.nodeId === victim.nodeId), 'a returned node gets no placement');
    const report = await settle(stamp.clock, manager.reconcileNode(victim.nodeId));
    assert.equal(report.orphaned.length, heldBefore, 'everything it held was replaced while it was away');
    assert.equal(victim.extents.size, heldBefore, 'nothing deleted');
    await assertFullyReplicated(stamp, manager, streams, victim.nodeId);
    const token = await manager.releaseToken(victim.nodeId);
    assert.equal(await manager.checkToken(token), true);
    t.diagnostic(`returned node ${victim.nodeId}: refused while returned; reconciled: ${report.orphaned.length} orphaned extents reported, 0 deleted`);
  });

  it('re-seals a returned node that still holds its replicas and puts it back in service', async () => {
    const stamp = await newStamp(3);
    const manager = await newManager(stamp);
    await registerAll(stamp, manager);
    await sealedStreams(stamp, manager, 2);
    const node = stamp.nodes.get('en0')!;
    await passTime(stamp, manager, heartbeatTimeoutMs + 2_000, new Set([node.nodeId]));
    const pass = await settle(stamp.clock, manager.repairOnce());
    assert.ok(pass.extentsWithoutTarget > 0, 'three domains, one down: nowhere to copy');
    assert.ok(manager.extentsBelowTarget() > 0);
    for (const extent of node.extents.values()) if (extent.sealedLength === null) extent.length += 7; // unacknowledged bytes
    await manager.registerNode(node.registration());
    const report = await settle(stamp.clock, manager.reconcileNode(node.nodeId));
    assert.deepEqual(report.orphaned, []);
    assert.equal(report.missing.length, 0);
    assert.ok(report.sealed.length > 0);
    for (const extent of node.extents.values()) assert.notEqual(extent.sealedLength, null, 'every replica it holds is sealed');
    await settle(stamp.clock, manager.repairOnce());
    assert.equal(manager.extentsBelowTarget(), 0);
  });

  it('replaces a replica reported corrupt', async (t) => {
    const stamp = await newStamp(6);
    const manager = await newManager(stamp);
    await registerAll(stamp, manager);
    const view = await settle(stamp.clock, manager.createStream({ name: 'log' }));
    setLengths(stamp, view, [5000, 5000, 5000]);
    const extentId = tail(view).extentId;
    const bad = tail(view).replicas[1]!.nodeId;
    await settle(stamp.clock, manager.reportCorruption({ extentId, nodeId: bad }));
    const sealed = await manager.getStream(view.streamId);
    assert.deepEqual(sealed.extents[0]?.state, { kind: 'sealed', sealedLength: 5000 }, 'an open extent is sealed first');
    const report = await settle(stamp.clock, manager.repairOnce());
    assert.equal(report.extentsRepaired, 1);
    const after = await manager.getStream(view.streamId);
    const replicas = after.extents[0]!.replicas.map((r) => r.nodeId);
    assert.equal(replicas.length, 3);
    assert.ok(!replicas.includes(bad));
    assert.equal(new Set(replicas.map((id) => stamp.nodes.get(id)!.faultDomain)).size, 3);
    t.diagnostic(`corrupt replica on ${bad} replaced: ${report.bytesCopied} bytes copied`);
  });

  it('runs repair passes on the clock until closed', async () => {
    const stamp = await newStamp(6);
    const manager = await newManager(stamp);
    await registerAll(stamp, manager);
    const streams = await sealedStreams(stamp, manager, 3);
    const victim = stamp.nodes.get(streams[0]!.extents[0]!.replicas[0]!.nodeId)!;
    manager.startRepairLoop(5_000);
    await passTime(stamp, manager, heartbeatTimeoutMs + 12_000, new Set([victim.nodeId]));
    await settle(stamp.clock, manager.close());
    await assertFullyReplicated(stamp, manager, streams, victim.nodeId);
  });

  it('drains a node by repair, copying from it while it is still up, then releases it', async (t) => {
    const stamp = await newStamp(6);
    const manager = await newManager(stamp);
    await registerAll(stamp, manager);
    const streams = await sealedStreams(stamp, manager, 4);
    const node = [...stamp.nodes.values()].sort((a, b) => b.extents.size - a.extents.size)[0]!;
    await rejects(manager.releaseToken(node.nodeId), 'node.protected');
    await manager.drainNode(node.nodeId);
    assert.ok((await manager.liveReplicas(node.nodeId)).length > 0, 'draining alone releases nothing');
    const report = await settle(stamp.clock, manager.repairOnce());
    await assertFullyReplicated(stamp, manager, streams, node.nodeId);
    const token = await manager.releaseToken(node.nodeId);
    assert.equal(await manager.checkToken(token), true);
    t.diagnostic(`drained ${node.nodeId}: ${report.extentsRepaired} extents moved, ${report.bytesCopied} bytes, then released`);
  });

  it('tells a node declared lost by a previous manager to register again', async () => {
    const stamp = await newStamp(4);
    const first = await newManager(stamp);
    await registerAll(stamp, first);
    await passTime(stamp, first, heartbeatTimeoutMs + 2_000, new Set(['en1']));
    await settle(stamp.clock, first.repairOnce());
    const second = await newManager(stamp);
    await rejects(second.heartbeat({ nodeId: 'en1', extentCount: 0, failed: false }), 'node.not_found');
    await second.registerNode(stamp.nodes.get('en1')!.registration());
    await rejects(second.releaseToken('en1'), 'node.protected');
  });

  it('does not churn extents when a lost node\'s replicas have nowhere to go, and places fully once a target appears', async (t) => {
    const stamp = await newStamp(6);
    const manager = await newManager(stamp);
    for (const nodeId of ['en0', 'en1', 'en2']) await manager.registerNode(stamp.nodes.get(nodeId)!.registration());
    const streams = await sealedStreams(stamp, manager, 2);
    const extentCount = async (): Promise<number> => {
      let count = 0;
      for (const stream of streams) count += (await manager.getStream(stream.streamId)).extents.length;
      return count;
    };
    const before = await extentCount();
    const passes = 10;
    const perPass: number[] = [];
    const sealedPerPass: number[] = [];
    for (let pass = 0; pass < passes; pass++) {
      await passTime(stamp, manager, pass === 0 ? heartbeatTimeoutMs + 2_000 : 2_000, new Set(['en2', 'en3', 'en4', 'en5']));
      const report = await settle(stamp.clock, manager.repairOnce());
      perPass.push(await extentCount());
      sealedPerPass.push(report.extentsSealed);
      assert.equal(report.extentsRepaired, 0, 'nothing can be repaired: the lost node\'s fault domain has no other node');
    }
    assert.deepEqual(sealedPerPass, [streams.length, ...Array<number>(passes - 1).fill(0)]);
    const created = (perPass.at(-1) ?? 0) - before;
    assert.equal(created, streams.length, 'one seal (and one new extent) per stream whose open tail lost a replica, then none');
    assert.equal(perPass.at(-1), perPass[0], 'no extent created after the first pass');
    const stuck = manager.extentsBelowTarget();
    assert.equal(stuck, 3 * streams.length, 'the shortfall is reported: two sealed extents and the 2-replica tail per stream');
    const newcomer = stamp.nodes.get('en5')!;
    await manager.registerNode(newcomer.registration());
    const healed = await settle(stamp.clock, manager.repairOnce());
    await settle(stamp.clock, manager.repairOnce());
    assert.equal(manager.extentsBelowTarget(), 0);
    await assertFullyReplicated(stamp, manager, streams, 'en2');
    const final = await extentCount();
    t.diagnostic(`lost en2 with no other node in its fault domain: ${passes} repair passes created ${created} extents (${streams.length} streams; extents per pass ${perPass.join(', ')}; before the fix: 20, one per stream per pass); ${stuck} extents reported below target; after en5 joined fd2: ${healed.replicasCopied} replicas copied, tails resealed once (${final - (perPass.at(-1) ?? 0)} new extents), 0 below target`);
  });

  it('reports a shortfall on a single-domain stamp and refuses placement with no node', async () => {
    const stamp = await newStamp(6);
    const manager = await newManager(stamp);
    await rejects(settle(stamp.clock, manager.createStream({ name: 'nowhere' })), 'stream.no_placement');
    const lonely = stamp.nodes.get('en0')!;
    await manager.registerNode(lonely.registration());
    const view = await settle(stamp.clock, manager.createStream({ name: 'one' }));
    assert.deepEqual(tail(view).replicas.map((r) => r.nodeId), ['en0']);
  });
});

/** Creates `count` streams, each with a sealed first extent of a distinct length and an open tail. */
async function sealedStreams(stamp: Stamp, manager: StreamManager, count: number): Promise<StreamView[]> {
  const views: StreamView[] = [];
  for (let i = 0; i < count; i++) {
    const view = await settle(stamp.clock, manager.createStream({ name: `stream-${i}` }));
    const length = (i + 1) * 1024 * 1024;
    setLengths(stamp, view, [length, length, length]);
    views.push(await settle(stamp.clock, manager.sealAndExtend({ streamId: view.streamId, extentId: tail(view).extentId })));
  }
  return views;
}

/** Every extent of the streams has three replicas in distinct fault domains, none on `gone`. */
async function assertFullyReplicated(stamp: Stamp, manager: StreamManager, streams: readonly StreamView[], gone: string): Promise<void> {
  for (const stream of streams) {
    const view = await manager.getStream(stream.streamId);
    for (const extent of view.extents) {
      const ids = extent.replicas.map((r) => r.nodeId);
      assert.equal(ids.length, 3, `extent ${extent.extentId} has ${ids.length} replicas`);
      assert.ok(!ids.includes(gone), `extent ${extent.extentId} still on ${gone}`);
      assert.equal(new Set(ids.map((id) => stamp.nodes.get(id)!.faultDomain)).size, 3);
      if (extent.state.kind === 'sealed') {
        for (const id of ids) assert.equal(stamp.nodes.get(id)!.extents.get(extent.extentId)?.sealedLength, extent.state.sealedLength);
      }
    }
  }
}

/** Seals the tail of a fresh stream while `victim` (replica `victimIndex`) is unreachable. */
async function sealWhileDown(stamp: Stamp, manager: StreamManager, victimIndex: number, length: number): Promise<{ view: StreamView; extentId: number; victim: FakeNode }> {
  const view = await settle(stamp.clock, manager.createStream({ name: 'log' }));
  setLengths(stamp, view, [length, length, length]);
  const extentId = tail(view).extentId;
  const victim = stamp.nodes.get(tail(view).replicas[victimIndex]!.nodeId)!;
  stamp.network.blackhole(victim.address);
  const after = await settle(stamp.clock, manager.sealAndExtend({ streamId: view.streamId, extentId }));
  assert.deepEqual(after.extents[0]?.state, { kind: 'sealed', sealedLength: length });
  assert.equal(victim.extents.get(extentId)?.sealedLength, null, 'the victim missed the seal');
  return { view: after, extentId, victim };
}

/** Registers the node again (a restart) and waits for the check its registration started. */
async function restart(stamp: Stamp, manager: StreamManager, node: FakeNode): Promise<void> {
  stamp.network.heal();
  await manager.registerNode(node.registration());
  await settle(stamp.clock, manager.reconciliationsIdle());
}

/** Every replica the map records for the extent holds it sealed at the recorded length. */
async function assertMapReplicasSealed(stamp: Stamp, manager: StreamManager, streamId: number, extentId: number): Promise<number> {
  const extent = (await manager.getStream(streamId)).extents.find((e) => e.extentId === extentId)!;
  assert.equal(extent.state.kind, 'sealed');
  const sealedLength = extent.state.kind === 'sealed' ? extent.state.sealedLength : -1;
  for (const replica of extent.replicas) {
    assert.deepEqual(stamp.nodes.get(replica.nodeId)?.extents.get(extentId)?.sealedLength, sealedLength, `${replica.nodeId} sealed at ${sealedLength}`);
  }
  return extent.replicas.length;
}

describe('StreamManager: replicas that missed a seal or lost data', () => {
  it('seals a node that restarts inside the heartbeat timeout during a seal, on registration', async (t) => {
    const stamp = await newStamp(6);
    const manager = await newManager(stamp);
    await registerAll(stamp, manager);
    const startedMs = stamp.clock.monotonicMs();
    const { view, extentId, victim } = await sealWhileDown(stamp, manager, 1, 4096);
    // It restarts with unacknowledged bytes past the seal (an in-flight replicate it took).
    victim.extents.get(extentId)!.length = 4096 + 700;
    const downMs = stamp.clock.monotonicMs() - startedMs;
    assert.ok(downMs < heartbeatTimeoutMs, `down ${downMs} ms, inside the heartbeat timeout`);
    await restart(stamp, manager, victim);
    const report = manager.lastReconcile(victim.nodeId);
    assert.ok(report !== null && report.trigger === 'registration' && report.lifecycle === 'in_service');
    assert.deepEqual(report.resealed, [extentId]);
    assert.equal(report.missing.length, 0);
    const replicas = await assertMapReplicasSealed(stamp, manager, view.streamId, extentId);
    assert.equal(victim.extents.get(extentId)?.length, 4096, 'the unacknowledged 700 bytes were cut');
    t.diagnostic(`${victim.nodeId} down ${downMs} ms (< ${heartbeatTimeoutMs} ms timeout) during the seal; on registration: ${report.resealed.length} resealed, ${report.missing.length} replaced; ${replicas}/3 map replicas sealed at 4096`);
  });

  it('replaces the replica of a node that restarts short of the sealed length', async (t) => {
    const stamp = await newStamp(6);
    const manager = await newManager(stamp);
    await registerAll(stamp, manager);
    const { view, extentId, victim } = await sealWhileDown(stamp, manager, 2, 4096);
    // It crashed before the last appends reached it: the other two acknowledged... nothing past
    // their common length, but the seal (4096) is past what it holds.
    victim.extents.get(extentId)!.length = 3000;
    await restart(stamp, manager, victim);
    const report = manager.lastReconcile(victim.nodeId)!;
    assert.deepEqual(report.missing, [extentId]);
    const repair = await settle(stamp.clock, manager.repairOnce());
    assert.equal(repair.extentsRepaired, 1);
    const replicas = await assertMapReplicasSealed(stamp, manager, view.streamId, extentId);
    const after = (await manager.getStream(view.streamId)).extents[0]!;
    assert.ok(!after.replicas.some((r) => r.nodeId === victim.nodeId), 'the short replica left the map');
    assert.equal(victim.extents.get(extentId)?.length, 3000, 'and was not deleted from its node');
    t.diagnostic(`${victim.nodeId} restarted holding 3000 of a 4096 seal: marked missing on registration, replaced by repair (${repair.bytesCopied} bytes copied); ${replicas}/3 map replicas sealed at 4096`);
  });

  it('the repair audit seals a replica that missed a seal even if its node never registers again', async (t) => {
    const stamp = await newStamp(6);
    const manager = await newManager(stamp);
    await registerAll(stamp, manager);
    const { view, extentId, victim } = await sealWhileDown(stamp, manager, 0, 2048);
    victim.extents.get(extentId)!.length = 2048 + 99;
    stamp.network.heal(); // a partition heals; the node never restarted
    const repair = await settle(stamp.clock, manager.repairOnce());
    assert.ok(repair.replicasAudited >= 3);
    assert.equal(repair.replicasResealed, 1);
    await assertMapReplicasSealed(stamp, manager, view.streamId, extentId);
    t.diagnostic(`audit: ${repair.replicasAudited} replicas checked, ${repair.replicasResealed} resealed, ${repair.replicasMarkedBad} marked bad`);
  });

  it('leaves a damaged replica out of the seal length and replaces it', async (t) => {
    const stamp = await newStamp(6);
    const manager = await newManager(stamp);
    await registerAll(stamp, manager);
    const view = await settle(stamp.clock, manager.createStream({ name: 'log' }));
    setLengths(stamp, view, [4096, 1000, 4096]);
    const extentId = tail(view).extentId;
    const hurt = stamp.nodes.get(tail(view).replicas[1]!.nodeId)!;
    hurt.extents.get(extentId)!.damaged = true;
    const after = await settle(stamp.clock, manager.sealAndExtend({ streamId: view.streamId, extentId }));
    assert.deepEqual(after.extents[0]?.state, { kind: 'sealed', sealedLength: 4096 });
    const repair = await settle(stamp.clock, manager.repairOnce());
    assert.equal(repair.extentsRepaired, 1);
    await assertMapReplicasSealed(stamp, manager, view.streamId, extentId);
    assert.ok(!(await manager.getStream(view.streamId)).extents[0]!.replicas.some((r) => r.nodeId === hurt.nodeId));
    assert.equal(repair.extentsSealedOverDamage, 0);
    t.diagnostic(`lengths 4096 / 1000 (damaged) / 4096: sealed at 4096 (the min rule alone: 1000, losing 3096 acknowledged bytes); damaged replica replaced, ${repair.bytesCopied} bytes copied`);
  });

  it('with every replica damaged, waits for a silent live one, then seals at the largest length and flags it', async (t) => {
    const stamp = await newStamp(6);
    const manager = await newManager(stamp);
    await registerAll(stamp, manager);
    const view = await settle(stamp.clock, manager.createStream({ name: 'log' }));
    setLengths(stamp, view, [3000, 2000, 2500]);
    const extentId = tail(view).extentId;
    const replicas = tail(view).replicas.map((r) => stamp.nodes.get(r.nodeId)!);
    for (const node of replicas.slice(0, 2)) node.extents.get(extentId)!.damaged = true;
    stamp.network.blackhole(replicas[2]!.address);
    await rejects(settle(stamp.clock, manager.sealAndExtend({ streamId: view.streamId, extentId })), 'stream.unavailable');
    assert.equal((await manager.getStream(view.streamId)).extents[0]?.state.kind, 'open', 'not sealed while an alive replica may hold more');
    // The silent node is lost for good: nothing better will answer.
    await passTime(stamp, manager, heartbeatTimeoutMs + 2_000, new Set([replicas[2]!.nodeId]));
    const after = await settle(stamp.clock, manager.sealAndExtend({ streamId: view.streamId, extentId }));
    assert.deepEqual(after.extents[0]?.state, { kind: 'sealed', sealedLength: 3000 });
    const repair = await settle(stamp.clock, manager.repairOnce());
    assert.equal(repair.extentsSealedOverDamage, 1);
    assert.equal(manager.extentsSealedOverDamage(), 1);
    await assertMapReplicasSealed(stamp, manager, view.streamId, extentId);
    t.diagnostic(`all answering replicas damaged (3000, 2000): refused while a live replica was silent; then sealed at 3000 and flagged; repair copied ${repair.replicasCopied} replicas from the 3000 one`);
  });

  it('seals an open extent whose restarted replica reports damage, and replaces that replica', async (t) => {
    const stamp = await newStamp(6);
    const manager = await newManager(stamp);
    await registerAll(stamp, manager);
    const view = await settle(stamp.clock, manager.createStream({ name: 'log' }));
    setLengths(stamp, view, [5000, 5000, 5000]);
    const extentId = tail(view).extentId;
    const hurt = stamp.nodes.get(tail(view).replicas[0]!.nodeId)!;
    Object.assign(hurt.extents.get(extentId)!, { length: 1200, damaged: true });
    await restart(stamp, manager, hurt);
    const report = manager.lastReconcile(hurt.nodeId)!;
    assert.deepEqual(report.missing, [extentId]);
    const sealed = await manager.getStream(view.streamId);
    assert.deepEqual(sealed.extents[0]?.state, { kind: 'sealed', sealedLength: 5000 });
    assert.equal(sealed.extents.length, 2, 'the stream moved on');
    await settle(stamp.clock, manager.repairOnce());
    await assertMapReplicasSealed(stamp, manager, view.streamId, extentId);
    t.diagnostic(`restarted primary reported its open extent damaged at 1200 of 5000: sealed at 5000 without it, replica replaced`);
  });
});
