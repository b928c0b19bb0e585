// StreamManagerProxy given several controller addresses (docs/cluster.md, "Finding the leader"):
// a call moves on from a standby (manager.not_leader) and from an address nobody listens on
// (rpc.unreachable), sticks to the address that answered, follows a leader change, and fails with
// the last answer when no address leads. In one process on a LocalNetwork, with a fake manager.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LocalNetwork } from '../../../src/rpc/local-network.ts';
import type { StreamManagerApi } from '../../../src/stream/protocol.ts';
import { StreamManagerProxy, serveStreamManager } from '../../../src/stream/stream-manager-proxy.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { StorageError, isStorageError } from '../../../src/util/errors.ts';
import { FakeStreamManager } from '../../helpers/fake-stream-manager.ts';

interface ControllerPort {
  leading: boolean;
  calls: number;
}

describe('StreamManagerProxy over several controllers', () => {
  it('finds the leader past a standby and a dead address, sticks to it, follows a change', async (t) => {
    const network = new LocalNetwork({ clock: new ManualClock() });
    const manager = new FakeStreamManager({ network });
    // Each port routes to the manager while its controller leads, else answers not_leader.
    const c0: ControllerPort = { leading: false, calls: 0 };
    const c1: ControllerPort = { leading: false, calls: 0 };
    for (const [index, state] of [c0, c1].entries()) {
      const api = (): StreamManagerApi => {
        state.calls += 1;
        if (!state.leading) throw new StorageError('manager.not_leader', `c${index} is not the leader`, { retryable: true });
        return manager;
      };
      await serveStreamManager(network.endpoint(`c${index}:1`), `c${index}:1`, api);
    }
    const proxy = new StreamManagerProxy({ network: network.endpoint('node'), address: ['dead:1', 'c0:1', 'c1:1'] });

    // Nobody leads: the caller gets the last answer, retryable.
    const registration = { nodeId: 'en1', address: 'en1:1', faultDomain: 'fd1', upgradeDomain: 'ud1', disk: 'd1' };
    const refused = await proxy.registerNode(registration).catch((error: unknown) => error);
    assert.ok(isStorageError(refused, 'manager.not_leader') && refused.retryable);

    c1.leading = true;
    await proxy.registerNode(registration);
    assert.ok(manager.nodes.has('en1'), 'the leader applied the registration');
    const firstCalls = { c0: c0.calls, c1: c1.calls };
    const beat = { nodeId: 'en1', extentCount: 0, failed: false };
    for (let index = 0; index < 5; index++) await proxy.heartbeat(beat);
    assert.deepEqual({ c0: c0.calls - firstCalls.c0, c1: c1.calls - firstCalls.c1 }, { c0: 0, c1: 5 }, 'sticks to the leader');

    c1.leading = false;
    c0.leading = true;
    await proxy.heartbeat(beat);
    const afterChange = c0.calls;
    await proxy.heartbeat(beat);
    assert.equal(manager.heartbeats, 7, 'every heartbeat reached the manager exactly once');
    assert.equal(c0.calls, afterChange + 1, 'sticks to the new leader');
    t.diagnostic(`calls: c0 ${c0.calls}, c1 ${c1.calls}; the dead address was skipped on every miss`);
  });

  it('refuses an empty address list', () => {
    const network = new LocalNetwork({ clock: new ManualClock() });
    assert.throws(() => new StreamManagerProxy({ network, address: [] }), (error: unknown) => isStorageError(error, 'config.invalid'));
  });
});
