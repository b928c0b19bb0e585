// A stream manager that finds a stream changed under its sealAndExtend: after a leader change the
// stale manager, still running, stops as fenced (extent.stale_epoch); a change by a writer that did
// not fence it is a plain conflict, decided again. Never an assertion (a process would exit 70).
// Found by the simulator (seed 141941150494): the stale leader had created its new extent when
// the new leader extended the stream, and extendStream asserted "stream 2 was extended by someone
// else".
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AssertionFailure } from '../../../src/util/assert.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import { extentKey, streamKey } from '../../../src/stream/protocol.ts';
import type { ExtentRecord, StreamRecord } from '../../../src/stream/protocol.ts';
import { gateAt, newFakeStamp, newManager, registerAll, setTailLength, settle, tail } from './fake-stamp.ts';
import type { FakeStamp } from './fake-stamp.ts';

/** The error a call ended with (it must end with one). */
async function failure(stamp: FakeStamp, promise: Promise<unknown>): Promise<unknown> {
  try {
    await settle(stamp.clock, promise);
  } catch (error) {
    return error;
  }
  return assert.fail('expected the call to fail');
}

describe('StreamManager: a stream extended by another writer during sealAndExtend', () => {
  it('a stale leader stops as fenced (extent.stale_epoch), not on an assertion, and the new leader\'s extension stands', async (t) => {
    const stamp = await newFakeStamp(6, 141941150494);
    const older = await newManager(stamp);
    await registerAll(stamp, older);
    const view = await settle(stamp.clock, older.createStream({ name: 'log' }));
    setTailLength(stamp, view, 2048);
    const sealedId = tail(view).extentId;
    const gate = gateAt('stream-manager.extend.after-create');
    try {
      // The older leader has sealed the extent and created its new one when the leader changes.
      const stale = older.sealAndExtend({ streamId: view.streamId, extentId: sealedId });
      await settle(stamp.clock, gate.reached);
      const newer = await newManager(stamp);
      const extended = await settle(stamp.clock, newer.sealAndExtend({ streamId: view.streamId, extentId: sealedId }));
      gate.open();
      const error = await failure(stamp, stale);
      assert.ok(!(error instanceof AssertionFailure), `an assertion failed: ${String(error)}`);
      assert.ok(isStorageError(error, 'extent.stale_epoch'), `expected extent.stale_epoch, got ${String(error)}`);
      assert.ok(older.fenced, 'the stale manager is fenced for good');
      const after = await newer.getStream(view.streamId);
      assert.deepEqual(after.extents.map((e) => e.extentId), extended.extents.map((e) => e.extentId), 'only the new leader extended the stream');
      assert.equal(after.extents.length, 2);
      t.diagnostic(`stale epoch ${older.epoch} fenced by ${newer.epoch} in extendStream: ${error.code}`);
    } finally {
      gate.close();
    }
  });

  it('a change by a writer that did not fence it is a plain conflict: decided again, the call returns the current stream', async (t) => {
    const stamp = await newFakeStamp(6, 141941150495);
    const manager = await newManager(stamp);
    await registerAll(stamp, manager);
    const view = await settle(stamp.clock, manager.createStream({ name: 'log' }));
    setTailLength(stamp, view, 2048);
    const sealedId = tail(view).extentId;
    const gate = gateAt('stream-manager.extend.after-create');
    try {
      const call = manager.sealAndExtend({ streamId: view.streamId, extentId: sealedId });
      await settle(stamp.clock, gate.reached);
      const otherId = await extendBehindTheManager(stamp, view.streamId, tail(view).replicas.map((r) => r.nodeId), manager.epoch);
      gate.open();
      const after = await settle(stamp.clock, call);
      assert.equal(manager.fenced, false);
      assert.deepEqual(after.extents.map((e) => e.extentId), [sealedId, otherId], 'the other writer\'s extension stands; no second one');
      assert.deepEqual(after.extents[0]?.state, { kind: 'sealed', sealedLength: 2048 });
      t.diagnostic(`stream extended to ${otherId} under the call: decided again, no new extent recorded`);
    } finally {
      gate.close();
    }
  });
});

/** Appends an extent to the stream straight in the MetaStore (the epoch does not move). */
async function extendBehindTheManager(stamp: FakeStamp, streamId: number, replicas: readonly string[], epoch: number): Promise<number> {
  const kv = await stamp.metaStore.get(streamKey(streamId));
  assert.ok(kv !== null);
  const stream = JSON.parse(kv.value) as StreamRecord;
  const extentId = 1_000;
  const extent: ExtentRecord = { extentId, streamId, replicas: [...replicas], state: { kind: 'open' }, createdEpoch: epoch };
  const next: StreamRecord = { ...stream, extentIds: [...stream.extentIds, extentId] };
  const result = await stamp.metaStore.txn({
    compare: [{ key: streamKey(streamId), modRevision: kv.modRevision }],
    success: [{ kind: 'put', key: streamKey(streamId), value: JSON.stringify(next) }, { kind: 'put', key: extentKey(extentId), value: JSON.stringify(extent) }],
  });
  assert.ok(result.succeeded);
  return extentId;
}
