// manager.dropExtents on the real stream layer (three ExtentNodes on SimDisks, SimNetwork,
// virtual clock; docs/stream-protocol.md, "Dropping extents"): extents leave the stream record,
// their records and their replicas' files; the tail and open extents are refused; a deposed owner
// is fenced; a retry is idempotent; a node that was down when the drop happened deletes its
// replica when it registers again. Figures: bytes on the disks before and after.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StreamClient } from '../../../src/stream/stream-client.ts';
import { StreamManagerProxy, serveStreamManager } from '../../../src/stream/stream-manager-proxy.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import { StampBackend } from '../../helpers/partition-stamp.ts';

const chunk = Buffer.alloc(256 * 1024, 7);

async function streamWithExtents(stamp: StampBackend, count: number): Promise<{ streamId: number; client: StreamClient; sealed: number[] }> {
  const streamId = (await stamp.drive(stamp.manager.createStream({ name: 'gc' }))).streamId;
  const client = new StreamClient({ manager: stamp.manager, network: stamp.network, clock: stamp.clock, clientId: 'gc-test' });
  for (let i = 0; i < count; i++) {
    await stamp.drive(client.append(streamId, chunk));
    const tail = (await stamp.drive(stamp.manager.getStream(streamId))).extents.at(-1);
    assert.ok(tail !== undefined);
    await stamp.drive(stamp.manager.sealAndExtend({ streamId, extentId: tail.extentId }));
  }
  client.invalidate(streamId);
  const view = await stamp.drive(stamp.manager.getStream(streamId));
  return { streamId, client, sealed: view.extents.slice(0, -1).map((extent) => extent.extentId) };
}

describe('manager.dropExtents', () => {
  it('removes sealed extents from the stream, the MetaStore and every replica', async (t) => {
    const stamp = await StampBackend.start(11);
    try {
      const { streamId, client, sealed } = await streamWithExtents(stamp, 4);
      const before = await stamp.diskBytesUsed();
      const [first, second, third, fourth] = sealed;
      assert.ok(first !== undefined && second !== undefined && third !== undefined && fourth !== undefined);
      const answer = await stamp.drive(stamp.manager.dropExtents({ streamId, extentIds: [first, third], ownerEpoch: 0 }));
      assert.deepEqual(answer.dropped, [first, third]);
      const view = await stamp.drive(stamp.manager.getStream(streamId));
      assert.deepEqual(view.extents.map((extent) => extent.extentId).slice(0, 2), [second, fourth]);
      await assert.rejects(stamp.drive(client.read(first, 0, 16, { streamId })), (error) => isStorageError(error, 'extent.not_found'));
      assert.equal((await stamp.drive(client.read(second, 0, 16, { streamId }))).length, 16);
      for (const nodeId of ['en0', 'en1', 'en2']) assert.ok(!(await stamp.drive(stamp.manager.liveReplicas(nodeId))).includes(first));
      assert.equal(await stamp.drive(stamp.manager.finishRemovals()), 0, 'no removal left pending');
      const after = await stamp.diskBytesUsed();
      assert.ok(before - after >= 2 * 3 * chunk.length, `freed ${before - after} bytes`);
      // A retry (outcome unknown) is idempotent; the tail, open extents and other streams' extents are refused.
      assert.deepEqual((await stamp.drive(stamp.manager.dropExtents({ streamId, extentIds: [first], ownerEpoch: 0 }))).dropped, []);
      const tail = view.extents.at(-1)?.extentId ?? -1;
      await assert.rejects(stamp.drive(stamp.manager.dropExtents({ streamId, extentIds: [tail], ownerEpoch: 0 })), (error) => isStorageError(error, 'config.invalid'));
      t.diagnostic(`4 sealed extents of ${chunk.length} bytes × 3 replicas; dropped 2: disk ${before} → ${after} bytes`);
    } finally {
      await stamp.close();
    }
  });

  it('is fenced by the owner epoch and works through the RPC proxy', async () => {
    const stamp = await StampBackend.start(12);
    try {
      const { streamId, sealed } = await streamWithExtents(stamp, 2);
      const tail = (await stamp.drive(stamp.manager.getStream(streamId))).extents.at(-1)?.extentId ?? -1;
      await stamp.drive(stamp.manager.sealAndExtend({ streamId, extentId: tail, ownerEpoch: 5 }));
      const [first, second] = sealed;
      assert.ok(first !== undefined && second !== undefined);
      const server = await serveStreamManager(stamp.network, 'sm-rpc:1', stamp.manager);
      const proxy = new StreamManagerProxy({ network: stamp.network, address: 'sm-rpc:1' });
      await assert.rejects(stamp.drive(proxy.dropExtents({ streamId, extentIds: [first], ownerEpoch: 4 })), (error) => isStorageError(error, 'stream.fenced'));
      await assert.rejects(stamp.drive(proxy.dropExtents({ streamId, extentIds: [first], ownerEpoch: 6 })), (error) => isStorageError(error, 'config.invalid'));
      assert.deepEqual((await stamp.drive(proxy.dropExtents({ streamId, extentIds: [first, second], ownerEpoch: 5 }))).dropped, [first, second]);
      await server.close();
    } finally {
      await stamp.close();
    }
  });

  it('a replica down at the drop is removed when its node registers again', async (t) => {
    const stamp = await StampBackend.start(13);
    try {
      const { streamId, sealed } = await streamWithExtents(stamp, 2);
      const [first] = sealed;
      assert.ok(first !== undefined);
      await stamp.stopNode(2);
      const during = await stamp.diskBytesUsed();
      await stamp.drive(stamp.manager.dropExtents({ streamId, extentIds: [first], ownerEpoch: 0 }));
      assert.equal(await stamp.drive(stamp.manager.finishRemovals()), 1, 'the down node still owes a remove');
      const node = await stamp.restartNode(2);
      await stamp.step(200);
      assert.equal(await stamp.drive(stamp.manager.finishRemovals()), 0);
      assert.ok(!node.status().extentIds.includes(first), 'the returned node no longer holds the dropped extent');
      t.diagnostic(`disk with en2 down after the drop: ${during} → after it returned: ${await stamp.diskBytesUsed()} bytes`);
    } finally {
      await stamp.close();
    }
  });
});
