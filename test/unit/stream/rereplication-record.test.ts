// Recording a re-replicated copy (src/stream/replica-record.ts, Rereplicator.recordReplica): the
// record re-checks its plan on the current map, so a copy never becomes a second replica in a
// fault domain nor takes an extent past its target. Found by the simulator (seeds 473710148346,
// 91508046018): the replica a copy was to replace came back live before the copy was recorded,
// and the copy was added as a fourth replica, in the same fault domain as the returned one.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { plannedVictim, recordDecision } from '../../../src/stream/replica-record.ts';
import type { DomainsOf } from '../../../src/stream/replica-record.ts';
import { gateAt, newFakeStamp, newManager, registerAll, setTailLength, settle, tail } from './fake-stamp.ts';

/** en<i> is in fd<i mod 3> and ud<i>, as in the simulator. */
const domainsOf: DomainsOf = (nodeId) => {
  const index = Number(nodeId.slice(2));
  return Number.isInteger(index) ? { faultDomain: `fd${index % 3}`, upgradeDomain: `ud${index}` } : undefined;
};

describe('recordDecision: the copy is recorded only on a map where it still fits', () => {
  const base = { replicas: ['en0', 'en1', 'en2'], domainsOf, targetId: 'en3', replicaTarget: 3 };

  it('replaces the planned victim while it is still not live', () => {
    const decision = recordDecision({ ...base, live: new Set(['en1', 'en2']), victim: 'en0' });
    assert.deepEqual(decision, { kind: 'record', replicas: ['en3', 'en1', 'en2'], victim: 'en0' });
  });

  it('drops the copy when the planned victim is live again (never a fourth replica in its fault domain)', () => {
    const decision = recordDecision({ ...base, live: new Set(['en0', 'en1', 'en2']), victim: 'en0' });
    assert.equal(decision.kind, 'drop');
  });

  it('drops the copy when the planned victim has left the map, or when none was planned and the extent is full', () => {
    assert.equal(recordDecision({ ...base, replicas: ['en4', 'en1', 'en2'], live: new Set(['en1', 'en2']), victim: 'en0' }).kind, 'drop');
    assert.equal(recordDecision({ ...base, live: new Set(['en1', 'en2']), victim: null }).kind, 'drop');
  });

  it('adds to an extent placed short, unless the copy shares a domain with a replica', () => {
    const short = { ...base, replicas: ['en1', 'en2'], live: new Set(['en1', 'en2']), victim: null };
    assert.deepEqual(recordDecision(short), { kind: 'record', replicas: ['en1', 'en2', 'en3'], victim: null });
    assert.equal(recordDecision({ ...short, targetId: 'en4' }).kind, 'drop', 'en4 is in fd1 with en1');
  });

  it('is a no-op when the map already names the target', () => {
    assert.deepEqual(recordDecision({ ...base, targetId: 'en1', live: new Set(['en1']), victim: 'en0' }), { kind: 'present' });
  });
});

describe('plannedVictim', () => {
  it('plans to replace the not-live replica in the target\'s fault domain, not the first not-live one', () => {
    const input = { replicas: ['en0', 'en1', 'en2'], live: new Set(['en2']), domainsOf, targetId: 'en4', replicaTarget: 3 };
    assert.equal(plannedVictim(input), 'en1', 'en4 is in fd1: replacing en0 would leave en1 and en4 together');
    const decision = recordDecision({ ...input, victim: plannedVictim(input) });
    assert.deepEqual(decision, { kind: 'record', replicas: ['en0', 'en4', 'en2'], victim: 'en1' });
  });

  it('plans an addition for an extent short of its target', () => {
    assert.equal(plannedVictim({ replicas: ['en1', 'en2'], live: new Set(['en1', 'en2']), domainsOf, targetId: 'en3', replicaTarget: 3 }), null);
  });
});

describe('StreamManager repair: the replaced replica comes back live while its copy runs', () => {
  it('does not record the copy, removes it from its target, and keeps three replicas in three fault domains', async (t) => {
    const stamp = await newFakeStamp(6, 473710148346);
    const manager = await newManager(stamp);
    await registerAll(stamp, manager);
    const view = await settle(stamp.clock, manager.createStream({ name: 'log' }));
    setTailLength(stamp, view, 4096);
    const sealedId = tail(view).extentId;
    const before = tail(view).replicas.map((r) => r.nodeId);
    const failing = before[1];
    assert.ok(failing !== undefined);
    // Its disk fails: the replica is not live, the seal leaves it in the map, repair replaces it.
    await manager.heartbeat({ nodeId: failing, extentCount: 1, failed: true });
    await settle(stamp.clock, manager.sealAndExtend({ streamId: view.streamId, extentId: sealedId }));
    const gate = gateAt('rereplication.copy.after-copy');
    try {
      const pass = manager.repairOnce();
      await settle(stamp.clock, gate.reached);
      const copies = [...stamp.nodes.values()].filter((n) => n.extents.has(sealedId) && !before.includes(n.nodeId));
      assert.equal(copies.length, 1, 'the copy is on its target, not recorded yet');
      // Back before the copy is recorded (a restart, its disk replaced, a transient failure).
      await manager.heartbeat({ nodeId: failing, extentCount: 1, failed: false });
      gate.open();
      const report = await settle(stamp.clock, pass);
      const after = (await manager.getStream(view.streamId)).extents.find((e) => e.extentId === sealedId);
      const replicas = after?.replicas.map((r) => r.nodeId) ?? [];
      assert.deepEqual(replicas, before, 'the map is unchanged: the returned replica stays, the copy is not added');
      assert.equal(new Set(replicas.map((id) => stamp.nodes.get(id)?.faultDomain)).size, replicas.length, 'no two replicas share a fault domain');
      assert.equal(report.copiesDropped, 1);
      assert.equal(report.extentsRepaired, 0);
      assert.equal(copies[0]?.extents.has(sealedId), false, 'the unrecorded copy was removed from its target');
      t.diagnostic(`copy of extent ${sealedId} to ${copies[0]?.nodeId} dropped: ${failing} came back live; replicas stay ${replicas.join(', ')}`);
    } finally {
      gate.close();
    }
  });
});
