// ServerLease's onLost (src/partition/server-lease.ts): called once when the lease stops being
// confirmed valid (expired at the store, or its confirmed time ran out), never when the holder
// releases it on a stop: a stop used to log "lease no longer confirmed" and count a lost lease.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EmbeddedMetaStore } from '../../../src/metastore/embedded-meta-store.ts';
import { SimDisk } from '../../../src/io/sim-disk.ts';
import { ServerLease } from '../../../src/partition/server-lease.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { SeededRandom } from '../../../src/util/random.ts';

async function leaseOnFreshStore(): Promise<{ lease: ServerLease; clock: ManualClock; losses: () => number; close: () => Promise<void> }> {
  const clock = new ManualClock();
  const metaStore = await EmbeddedMetaStore.open({ disk: new SimDisk({ random: new SeededRandom(7) }), directory: 'meta', clock });
  let lost = 0;
  const lease = await ServerLease.grant({ metaStore, clock, ttlMs: 10_000, renewMs: 2_000, marginMs: 1_000, onLost: () => { lost += 1; } });
  return { lease, clock, losses: () => lost, close: () => metaStore.close() };
}

describe('ServerLease', () => {
  it('release() revokes the lease without reporting it lost', async () => {
    const { lease, losses, close } = await leaseOnFreshStore();
    try {
      assert.equal(lease.isValid(), true);
      await lease.release();
      assert.equal(lease.isValid(), false, 'a released lease is never valid again');
      assert.equal(losses(), 0, 'a release is not a loss');
    } finally {
      await close();
    }
  });

  it('a lease whose confirmed time runs out (renewals stopped) is reported lost once', async () => {
    const { lease, clock, losses, close } = await leaseOnFreshStore();
    try {
      lease.stopRenewing();
      await clock.advance(9_500);
      assert.equal(lease.isValid(), false);
      assert.equal(lease.isValid(), false);
      assert.equal(losses(), 1);
    } finally {
      await close();
    }
  });
});
