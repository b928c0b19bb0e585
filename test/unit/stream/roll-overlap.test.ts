// A roll (sealAndExtend of a stream's tail) creates the next extent while it seals the tail, so the
// stream waits for the longer of the two, not their sum (docs/stream-protocol.md, Seal, step 5).
// The new extent is still recorded only after the seal; when the seal fails, the extent created
// for it is removed from its nodes (it was never recorded, so nothing refers to it).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isStorageError } from '../../../src/util/errors.ts';
import { gateAt, newFakeStamp, newManager, registerAll, setTailLength, settle, tail } from './fake-stamp.ts';
import type { FakeStamp } from './fake-stamp.ts';
import type { StreamManager } from '../../../src/stream/stream-manager.ts';
import type { StreamView } from '../../../src/stream/protocol.ts';

/** Extent ids held by any node, other than `except`. */
function heldExcept(stamp: FakeStamp, except: number): number[] {
  const held = new Set<number>();
  for (const node of stamp.nodes.values()) for (const extentId of node.extents.keys()) if (extentId !== except) held.add(extentId);
  return [...held];
}

/** A 6-node stamp with one stream whose tail holds 4096 bytes on every replica. */
async function streamWithTail(seed: number): Promise<{ stamp: FakeStamp; manager: StreamManager; view: StreamView; sealedId: number }> {
  const stamp = await newFakeStamp(6, seed);
  const manager = await newManager(stamp);
  await registerAll(stamp, manager);
  const view = await settle(stamp.clock, manager.createStream({ name: 'data' }));
  setTailLength(stamp, view, 4096);
  return { stamp, manager, view, sealedId: tail(view).extentId };
}

describe('StreamManager: a roll creates the next extent while it seals the tail', () => {
  it('the next extent exists on its nodes while the seal is held after its record; it becomes the tail after the seal', async (t) => {
    const { stamp, manager, view, sealedId } = await streamWithTail(930301);
    const gate = gateAt('stream-manager.seal.after-record');
    try {
      const call = manager.sealAndExtend({ streamId: view.streamId, extentId: sealedId });
      await settle(stamp.clock, gate.reached);
      let waitedMs = 0;
      for (; heldExcept(stamp, sealedId).length === 0 && waitedMs < 5_000; waitedMs++) await stamp.clock.advance(1);
      const created = heldExcept(stamp, sealedId);
      assert.equal(created.length, 1, 'the next extent was created while the seal waited');
      const duringSeal = await manager.getStream(view.streamId);
      assert.deepEqual(duringSeal.extents.map((e) => e.extentId), [sealedId], 'not recorded before the seal completes');
      gate.open();
      const after = await settle(stamp.clock, call);
      assert.deepEqual(after.extents.map((e) => e.extentId), [sealedId, created[0]]);
      assert.deepEqual(after.extents[0]?.state, { kind: 'sealed', sealedLength: 4096 });
      t.diagnostic(`extent ${String(created[0])} created ${waitedMs} ms (virtual) into a seal held at its record; recorded as the tail after it`);
    } finally {
      gate.close();
    }
  });

  it('a seal that fails removes the extent created for the roll from its nodes', async (t) => {
    const { stamp, manager, view, sealedId } = await streamWithTail(930302);
    for (const replica of tail(view).replicas) stamp.network.blackhole(replica.address);
    let error: unknown = null;
    await settle(stamp.clock, manager.sealAndExtend({ streamId: view.streamId, extentId: sealedId })).catch((caught: unknown) => { error = caught; });
    assert.ok(isStorageError(error, 'stream.unavailable'), `expected stream.unavailable, got ${String(error)}`);
    for (let ms = 0; ms < 1_000; ms++) await stamp.clock.advance(1);
    assert.deepEqual(heldExcept(stamp, sealedId), [], 'no node holds an unrecorded extent');
    assert.deepEqual((await manager.getStream(view.streamId)).extents.map((e) => e.extentId), [sealedId]);
    t.diagnostic(`no replica of ${sealedId} answered: the seal failed (${(error as Error).message}); the extent created for the roll was removed, 0 left on nodes`);
  });
});
