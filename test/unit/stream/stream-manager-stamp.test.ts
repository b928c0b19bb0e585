// The stream manager with real ExtentNodes and a StreamClient: a whole simulated stamp (6 nodes
// in 3 fault domains on SimDisks, an EmbeddedMetaStore on a SimDisk, SimNetwork, ManualClock).
// Appends are acknowledged, a node is killed mid-stream, the client seals and carries on, the
// manager re-replicates every extent from real bytes (verified copyFrom at the node's bounded
// rate), every acknowledged byte reads back, the dead node gets a release token, a live one is
// refused, and a node that saw a newer manager rejects the older one. A replica whose journal
// rotted after it was synced (extent file not yet synced) restarts damaged: the manager seals
// over the undamaged replicas at the acknowledged length and replaces it; so does a replica whose
// open extent's synced tail rotted after its journal was retired (a damaged tail, not a torn one).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { SimDisk } from '../../../src/io/sim-disk.ts';
import { EmbeddedMetaStore } from '../../../src/metastore/embedded-meta-store.ts';
import { SimNetwork } from '../../../src/rpc/sim-network.ts';
import { ExtentNode } from '../../../src/stream/extent-node.ts';
import { StreamClient } from '../../../src/stream/stream-client.ts';
import { StreamManager } from '../../../src/stream/stream-manager.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import { SeededRandom } from '../../../src/util/random.ts';
import { streamEvents } from '../../../src/util/stream-events.ts';
import type { StreamSealEvent } from '../../../src/util/stream-events.ts';
import { journalBatchesInFlightMax } from '../../../src/constants.ts';
import { decodeJournalHeader, journalRecordHeaderBytes } from '../../../src/wire/journal-format.ts';

const seed = BigInt(process.env['KURA_SEED'] ?? '28122012');
const nodeCount = 6;
const recordBytes = 64 * 1024;

/**
 * Timers at whole milliseconds. ExtentNode jitters its heartbeat by a fraction of a millisecond,
 * which leaves a ManualClock at a fractional time, and ExtentStore asserts that an extent's
 * createdAtMs (from nowMs()) is an integer; until that is settled in those files, this stamp keeps
 * virtual time integral.
 */
class WholeMillisecondClock extends ManualClock {
  override setTimer(ms: number, callback: () => void): ReturnType<ManualClock['setTimer']> {
    return super.setTimer(Math.ceil(ms), callback);
  }
}

class Stamp {
  readonly clock = new WholeMillisecondClock(0);
  readonly random = new SeededRandom(seed);
  readonly network = new SimNetwork({ clock: this.clock, random: this.random, faults: { delayMsMin: 0, delayMsMax: 1 }, localAddress: 'client:1' });
  readonly nodes = new Map<string, ExtentNode>();
  readonly disks = new Map<string, SimDisk>();
  metaStore!: EmbeddedMetaStore;
  manager!: StreamManager;
  client!: StreamClient;

  async start(): Promise<void> {
    this.metaStore = await EmbeddedMetaStore.open({ disk: new SimDisk({ random: this.random, name: 'sim:meta' }), directory: 'meta', clock: this.clock });
    this.manager = await this.newManager('sm:1');
    this.client = new StreamClient({ manager: this.manager, network: this.network, clock: this.clock, clientId: 'stamp-client' });
    for (let i = 0; i < nodeCount; i++) await this.startNode(`en${i}`, i);
  }

  async newManager(address: string): Promise<StreamManager> {
    const manager = new StreamManager({ metaStore: this.metaStore, network: this.network.endpoint(address), clock: this.clock, random: this.random, replicaCountDefault: 3 });
    await manager.start();
    return manager;
  }

  async startNode(nodeId: string, index: number): Promise<void> {
    const disk = new SimDisk({ random: this.random, name: `sim:${nodeId}` });
    this.disks.set(nodeId, disk);
    const node = await this.drive(ExtentNode.start({
      nodeId, disk, clock: this.clock, random: this.random, network: this.network.endpoint(`${nodeId}:1`), listenAddress: `${nodeId}:1`,
      manager: this.manager, faultDomain: `fd${index % 3}`, upgradeDomain: `ud${index}`, groupCommit: true,
    }));
    this.nodes.set(nodeId, node);
  }

  /** Advances virtual time 1 ms at a time until `promise` settles (bounded). */
  async drive<T>(promise: Promise<T>, stepsMax = 300_000): Promise<T> {
    let done = false;
    promise.then(() => { done = true; }, () => { done = true; });
    for (let steps = 0; !done && steps < stepsMax; steps++) await this.clock.advance(1);
    assert.ok(done, `promise did not settle within ${stepsMax} ms of virtual time`);
    return promise;
  }

  /** Power loss of a node: un-synced writes dropped; the process is gone (its store is not closed cleanly). */
  async crashNode(nodeId: string): Promise<void> {
    const disk = this.disks.get(nodeId);
    assert.ok(disk !== undefined);
    disk.crash();
    await this.drive(this.nodes.get(nodeId)!.stop()).catch(() => undefined);
    this.nodes.delete(nodeId);
  }

  async restartNode(nodeId: string): Promise<ExtentNode> {
    const index = Number(nodeId.slice(2));
    const node = await this.drive(ExtentNode.start({
      nodeId, disk: this.disks.get(nodeId)!, clock: this.clock, random: this.random, network: this.network.endpoint(`${nodeId}:1`), listenAddress: `${nodeId}:1`,
      manager: this.manager, faultDomain: `fd${index % 3}`, upgradeDomain: `ud${index}`, groupCommit: true,
    }));
    this.nodes.set(nodeId, node);
    return node;
  }

  async stop(): Promise<void> {
    await this.drive(this.manager.close());
    for (const node of this.nodes.values()) await this.drive(node.stop());
    await this.network.close();
  }
}

/** Position of the journal record of `extentId` at `offset` in a node's (only) journal file. */
function journalRecordPosition(disk: SimDisk, extentId: number, offset: number): { path: string; position: number } {
  for (const [path, bytes] of disk.snapshotFiles('durable')) {
    if (!path.startsWith('journal/')) continue;
    for (let position = 0; position + journalRecordHeaderBytes <= bytes.length;) {
      const header = decodeJournalHeader(bytes.subarray(position, position + journalRecordHeaderBytes));
      if (header.extentId === extentId && header.offset === offset) return { path, position };
      position += journalRecordHeaderBytes + header.bodyBytes;
    }
  }
  assert.fail(`no journal record of extent ${extentId} at ${offset}`);
}

function record(streamId: number, sequence: number): Buffer {
  const body = Buffer.alloc(recordBytes, `${streamId}:${sequence}:`);
  return Buffer.concat([createHash('sha256').update(body).digest(), body.subarray(32)]);
}

describe('StreamManager on a simulated stamp of real extent nodes', () => {
  it('loses a node mid-stream, re-replicates every extent from real bytes and loses nothing acknowledged', async (t) => {
    t.diagnostic(`seed ${seed}`);
    const stamp = new Stamp();
    await stamp.start();
    try {
      const acked: { streamId: number; extentId: number; offset: number; data: Buffer }[] = [];
      const streams = [];
      for (let s = 0; s < 6; s++) streams.push(await stamp.drive(stamp.manager.createStream({ name: `log-${s}` })));
      const holders = new Map<string, number>();
      for (const stream of streams) for (const r of stream.extents[0]!.replicas) holders.set(r.nodeId, (holders.get(r.nodeId) ?? 0) + 1);
      const victimId = [...holders.entries()].sort((a, b) => b[1] - a[1])[0]![0];
      for (let sequence = 0; sequence < 16; sequence++) {
        if (sequence === 8) await stamp.drive(stamp.nodes.get(victimId)!.stop());
        for (const stream of streams) {
          const data = record(stream.streamId, sequence);
          const result = await stamp.drive(stamp.client.append(stream.streamId, data));
          acked.push({ streamId: stream.streamId, extentId: result.extentId, offset: result.offset, data });
        }
      }
      await stamp.drive(stamp.clock.advance(12_000)); // past the heartbeat timeout: the victim is lost
      const startedMs = stamp.clock.monotonicMs();
      const report = await stamp.drive(stamp.manager.repairOnce());
      const repairMs = stamp.clock.monotonicMs() - startedMs;
      assert.equal(report.extentsUnrecoverable + report.copyFailures + report.extentsWithoutTarget, 0);
      assert.equal(stamp.manager.extentsBelowTarget(), 0);
      for (const stream of streams) {
        const view = await stamp.manager.getStream(stream.streamId);
        for (const extent of view.extents) {
          const ids = extent.replicas.map((r) => r.nodeId);
          assert.equal(ids.length, 3);
          assert.ok(!ids.includes(victimId));
          assert.equal(new Set(ids.map((id) => Number(id.slice(2)) % 3)).size, 3, 'three fault domains');
        }
      }
      for (const entry of acked) {
        const bytes = await stamp.drive(stamp.client.read(entry.extentId, entry.offset, entry.data.length, { streamId: entry.streamId }));
        assert.ok(bytes.equals(entry.data), `acknowledged record at ${entry.extentId}@${entry.offset} reads back`);
      }
      assert.deepEqual(await stamp.manager.liveReplicas(victimId), []);
      const token = await stamp.manager.releaseToken(victimId);
      assert.equal(await stamp.manager.checkToken(token), true);
      const live = streams[0]!.extents[0]!.replicas.find((r) => r.nodeId !== victimId)!;
      await assert.rejects(stamp.manager.releaseToken(live.nodeId), (error: unknown) => isStorageError(error, 'node.protected'));
      const wipe = stamp.network.call(live.address, { method: 'node.wipe', header: { token }, body: Buffer.alloc(0) });
      await assert.rejects(stamp.drive(wipe), (error: unknown) => isStorageError(error));
      t.diagnostic(`${acked.length} appends acknowledged (${acked.length * recordBytes} bytes), ${acked.length} read back byte-exact, 0 lost; client stats ${JSON.stringify(stamp.client.stats())}`);
      t.diagnostic(`node ${victimId} lost: ${report.extentsRepaired} extents repaired, ${report.replicasCopied} replicas, ${report.bytesCopied} bytes copied in ${repairMs} ms of virtual time (bandwidth bound ${report.bandwidthBoundMs.toFixed(1)} ms at 64 MiB/s per target)`);
      t.diagnostic(`release: token for emptied ${victimId} valid; ${live.nodeId} refused; wipe of ${live.nodeId} with ${victimId}'s token refused`);
    } finally {
      await stamp.stop();
    }
  });

  it('seals over a replica whose synced journal rotted before its extent file was synced, and replaces it', async (t) => {
    t.diagnostic(`seed ${seed}`);
    const stamp = new Stamp();
    await stamp.start();
    const seals: StreamSealEvent[] = [];
    const unsubscribe = streamEvents.streamSeal.subscribe((event) => seals.push(event));
    try {
      const stream = await stamp.drive(stamp.manager.createStream({ name: 'log' }));
      const tail = stream.extents[0]!;
      const victimId = tail.replicas[1]!.nodeId;
      const acked: { extentId: number; offset: number; data: Buffer }[] = [];
      const append = async (sequence: number): Promise<void> => {
        const data = record(stream.streamId, sequence);
        const result = await stamp.drive(stamp.client.append(stream.streamId, data));
        acked.push({ extentId: result.extentId, offset: result.offset, data });
      };
      for (let sequence = 0; sequence < 4; sequence++) await append(sequence);
      await stamp.drive(stamp.clock.advance(200)); // the background sync makes these 4 durable in the extent files
      // Acknowledged from the journal (the extent files are synced 50 ms later at the earliest):
      // record 4, then D more, so record 4 lies before the journal's last in-flight window (rot
      // inside it reads as a torn window: docs/formats/journal.md, "What the torn window costs").
      for (let sequence = 4; sequence < 5 + journalBatchesInFlightMax; sequence++) await append(sequence);
      const ackedLength = acked.length * recordBytes;
      await stamp.crashNode(victimId);
      const disk = stamp.disks.get(victimId)!;
      const rotted = journalRecordPosition(disk, tail.extentId, 4 * recordBytes);
      disk.flipBit(rotted.path, rotted.position + journalRecordHeaderBytes + 1000, 5);
      const restarted = await stamp.restartNode(victimId);
      assert.equal(restarted.storeRecovery().extentsMarkedDamaged, 1);
      const info = stamp.network.call(`${victimId}:1`, { method: 'extent.info', header: { extentId: tail.extentId }, body: Buffer.alloc(0) });
      const answer = (await stamp.drive(info)).header;
      assert.equal(answer['damaged'], true);
      const damagedLength = Number(answer['length']);
      await stamp.drive(stamp.manager.reconciliationsIdle());
      await stamp.drive(stamp.clock.advance(100));
      const view = await stamp.manager.getStream(stream.streamId);
      assert.deepEqual(view.extents[0]!.state, { kind: 'sealed', sealedLength: ackedLength }, 'sealed at the acknowledged length, not the damaged replica\'s');
      assert.deepEqual(seals.map((event) => [event.extentId, event.sealedLength, event.damage]), [[tail.extentId, ackedLength, 'excluded']], 'one seal, published with its damaged replica excluded');
      await append(acked.length);
      const repair = await stamp.drive(stamp.manager.repairOnce());
      const after = await stamp.manager.getStream(stream.streamId);
      const replicas = after.extents[0]!.replicas.map((r) => r.nodeId);
      assert.equal(replicas.length, 3);
      assert.ok(!replicas.includes(victimId), 'the damaged replica was replaced');
      assert.equal(new Set(replicas.map((id) => Number(id.slice(2)) % 3)).size, 3, 'three fault domains');
      for (const entry of acked) {
        const bytes = await stamp.drive(stamp.client.read(entry.extentId, entry.offset, entry.data.length, { streamId: stream.streamId }));
        assert.ok(bytes.equals(entry.data), `acknowledged record at ${entry.extentId}@${entry.offset} reads back`);
      }
      await stamp.drive(restarted.stop());
      await stamp.restartNode(victimId);
      const again = (await stamp.drive(stamp.network.call(`${victimId}:1`, { method: 'extent.info', header: { extentId: tail.extentId }, body: Buffer.alloc(0) }))).header;
      assert.equal(again['damaged'], true, 'a second restart still reports the replica damaged');
      assert.equal(stamp.nodes.get(victimId)!.status().failed, false, 'a damaged replica does not fail its node');
      t.diagnostic(`${acked.length} appends acknowledged, ${acked.length} read back byte-exact, 0 lost; the rotted replica came back at ${damagedLength} of ${ackedLength} bytes: the old rule (smallest length, damage unknown) would have sealed at ${damagedLength}, cutting ${ackedLength - damagedLength} acknowledged bytes from every replica; sealed at ${ackedLength}, replica replaced (${repair.replicasCopied} copied, ${repair.bytesCopied} bytes); still damaged after a second restart`);
    } finally {
      unsubscribe();
      await stamp.stop();
    }
  });

  it('seals over a replica whose synced open tail rotted (journal retired), and replaces it', async (t) => {
    const stamp = new Stamp();
    await stamp.start();
    try {
      const stream = await stamp.drive(stamp.manager.createStream({ name: 'log' }));
      const tail = stream.extents[0]!;
      const victimId = tail.replicas[2]!.nodeId;
      const acked: { extentId: number; offset: number; data: Buffer }[] = [];
      for (let sequence = 0; sequence < 5; sequence++) {
        const data = record(stream.streamId, sequence);
        const result = await stamp.drive(stamp.client.append(stream.streamId, data));
        acked.push({ extentId: result.extentId, offset: result.offset, data });
      }
      const ackedLength = 5 * recordBytes;
      // A clean stop syncs the extent file and retires the journal: only the file holds the appends.
      await stamp.drive(stamp.nodes.get(victimId)!.stop());
      stamp.nodes.delete(victimId);
      const disk = stamp.disks.get(victimId)!;
      const prefix = `extents/${tail.extentId.toString(16).padStart(16, '0')}-`;
      const [path, bytes] = [...disk.snapshotFiles('durable')].find(([name]) => name.startsWith(prefix) && name.endsWith('.ext'))!;
      disk.flipBit(path, bytes.length - 1000, 3); // the last block's body: bit rot, not a torn write
      const restarted = await stamp.restartNode(victimId);
      assert.equal(restarted.storeRecovery().extentTailsDamaged, 1);
      assert.equal(restarted.storeRecovery().extentsMarkedDamaged, 1);
      await stamp.drive(stamp.manager.reconciliationsIdle());
      await stamp.drive(stamp.clock.advance(100));
      const view = await stamp.manager.getStream(stream.streamId);
      assert.deepEqual(view.extents[0]!.state, { kind: 'sealed', sealedLength: ackedLength }, 'sealed at the acknowledged length');
      const repair = await stamp.drive(stamp.manager.repairOnce());
      const replicas = (await stamp.manager.getStream(stream.streamId)).extents[0]!.replicas.map((r) => r.nodeId);
      assert.equal(replicas.length, 3);
      assert.ok(!replicas.includes(victimId), 'the damaged replica was replaced');
      let lost = 0;
      for (const entry of acked) {
        const read = await stamp.drive(stamp.client.read(entry.extentId, entry.offset, entry.data.length, { streamId: stream.streamId }));
        if (!read.equals(entry.data)) lost += entry.data.length;
      }
      assert.equal(lost, 0);
      t.diagnostic(`open tail rotted on 1 of 3 replicas (journal retired): marked damaged, sealed at ${ackedLength} (the old recovery cut the block and the seal minimum cut ${recordBytes} acknowledged bytes from every replica); ${acked.length} appends read back, 0 acknowledged bytes lost; replica replaced (${repair.bytesCopied} bytes copied)`);
    } finally {
      await stamp.stop();
    }
  });

  it('fences an older manager at real nodes once they have seen the newer epoch', async (t) => {
    const stamp = new Stamp();
    await stamp.start();
    try {
      const stream = await stamp.drive(stamp.manager.createStream({ name: 'log' }));
      await stamp.drive(stamp.client.append(stream.streamId, record(stream.streamId, 0)));
      const older = stamp.manager;
      const newer = await stamp.newManager('sm:2');
      const tail = stream.extents[0]!;
      const extended = await stamp.drive(newer.sealAndExtend({ streamId: stream.streamId, extentId: tail.extentId }));
      assert.deepEqual(extended.extents[0]!.state, { kind: 'sealed', sealedLength: recordBytes });
      await assert.rejects(stamp.drive(older.createStream({ name: 'stale' })), (error: unknown) => isStorageError(error, 'extent.stale_epoch'));
      assert.ok(older.fenced);
      const stale = { method: 'extent.create', header: { epoch: older.epoch, streamId: stream.streamId, extentId: 999 }, body: Buffer.alloc(0) };
      let rejected = 0;
      for (const replica of tail.replicas) {
        await assert.rejects(stamp.drive(stamp.network.call(replica.address, stale)), (error: unknown) => isStorageError(error, 'extent.stale_epoch'));
        rejected += 1;
      }
      await stamp.drive(newer.close());
      t.diagnostic(`${rejected}/${tail.replicas.length} real nodes rejected epoch ${older.epoch} after the newer manager (epoch ${newer.epoch}) sealed through them; the older one's txns failed`);
    } finally {
      await stamp.stop();
    }
  });
});
