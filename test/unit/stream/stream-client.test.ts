// StreamClient's append retry policy (docs/stream-protocol.md, "Append", steps 7-8) on a
// SimNetwork and a ManualClock: rpc.overloaded (nothing applied) is retried on the same extent
// after exponential back-offs on the clock, and only a primary that stays overloaded past
// streamAppendOverloadRetriesMax, or any other failure, makes the client seal and move on.
//
// The primaries are small scripted fakes (they answer extent.append from a list of outcomes and
// record when each attempt arrived); the manager is a fake StreamManagerApi that counts seals.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { streamAppendBackoffMsMax, streamAppendBackoffMsMin, streamAppendOverloadRetriesMax } from '../../../src/constants.ts';
import { SimNetwork } from '../../../src/rpc/sim-network.ts';
import type { RpcRequest, RpcResponse } from '../../../src/rpc/network.ts';
import { StreamClient } from '../../../src/stream/stream-client.ts';
import type { ExtentView, StreamManagerApi, StreamView } from '../../../src/stream/protocol.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { StorageError } from '../../../src/util/errors.ts';
import { SeededRandom } from '../../../src/util/random.ts';

const seed = 20191201;

type Outcome = 'ok' | 'overloaded' | 'failed';

/** A primary that answers extent.append with the next scripted outcome ('ok' once the script ends). */
class ScriptedPrimary {
  readonly attemptsAtMs: number[] = [];
  private readonly script: Outcome[];
  private readonly clock: ManualClock;

  constructor(clock: ManualClock, script: readonly Outcome[]) {
    this.clock = clock;
    this.script = [...script];
  }

  handle(request: RpcRequest): Promise<RpcResponse> {
    if (request.method === 'extent.findAppend') return Promise.resolve({ header: { found: false }, body: Buffer.alloc(0) });
    assert.equal(request.method, 'extent.append');
    this.attemptsAtMs.push(this.clock.monotonicMs());
    const outcome = this.script.shift() ?? 'ok';
    if (outcome === 'overloaded') return Promise.reject(new StorageError('rpc.overloaded', 'extent queue full', { retryable: true }));
    if (outcome === 'failed') return Promise.reject(new StorageError('extent.failed', 'a secondary failed'));
    return Promise.resolve({ header: { offset: 0, length: request.body.length }, body: Buffer.alloc(0) });
  }
}

/** Stream 1: extent 1 on `en1`, extended to extent 2 on `en2` by sealAndExtend. */
class FakeManager implements StreamManagerApi {
  seals = 0;

  private extent(extentId: number, state: ExtentView['state']): ExtentView {
    return { extentId, streamId: 1, replicas: [{ nodeId: `en${extentId}`, address: `en${extentId}:1` }], state, epoch: 1 };
  }

  getStream(): Promise<StreamView> {
    const extents = this.seals === 0 ? [this.extent(1, { kind: 'open' })] : [this.extent(1, { kind: 'sealed', sealedLength: 0 }), this.extent(2, { kind: 'open' })];
    return Promise.resolve({ streamId: 1, name: 's', extents });
  }

  sealAndExtend(): Promise<StreamView> {
    this.seals += 1;
    return this.getStream();
  }

  registerNode(): Promise<{ epoch: number }> { return Promise.resolve({ epoch: 1 }); }
  heartbeat(): Promise<{ epoch: number }> { return Promise.resolve({ epoch: 1 }); }
  createStream(): Promise<StreamView> { return this.getStream(); }
  reportCorruption(): Promise<void> { return Promise.resolve(); }
  dropExtents(): Promise<{ dropped: readonly number[] }> { return Promise.resolve({ dropped: [] }); }
  liveReplicas(): Promise<readonly number[]> { return Promise.resolve([]); }
  releaseToken(): Promise<string> { return Promise.reject(new StorageError('node.protected', 'not in this test')); }
  checkToken(): Promise<boolean> { return Promise.resolve(false); }
}

async function harness(script: readonly Outcome[], options: { readonly jitter?: boolean } = {}): Promise<{ clock: ManualClock; client: StreamClient; manager: FakeManager; first: ScriptedPrimary; second: ScriptedPrimary }> {
  const clock = new ManualClock(0);
  const random = new SeededRandom(seed);
  const network = new SimNetwork({ clock, random, faults: { delayMsMin: 0, delayMsMax: 0 }, localAddress: 'client:1' });
  const first = new ScriptedPrimary(clock, script);
  const second = new ScriptedPrimary(clock, []);
  await network.listen('en1:1', (request) => first.handle(request));
  await network.listen('en2:1', (request) => second.handle(request));
  const manager = new FakeManager();
  const client = new StreamClient({ manager, network, clock, clientId: 'c', ...(options.jitter === true ? { random } : {}) });
  return { clock, client, manager, first, second };
}

async function settle<T>(clock: ManualClock, promise: Promise<T>, limitMs = 60_000): Promise<T> {
  let done = false;
  promise.then(() => { done = true; }, () => { done = true; });
  for (let elapsed = 0; !done && elapsed < limitMs; elapsed++) await clock.advance(1);
  return promise;
}

function gaps(times: readonly number[]): number[] {
  return times.slice(1).map((time, index) => time - (times[index] ?? 0));
}

describe('StreamClient append retry policy', () => {
  it('backs off on rpc.overloaded and retries the same extent without sealing', async (t) => {
    const h = await harness(['overloaded', 'overloaded', 'overloaded']);
    const result = await settle(h.clock, h.client.append(1, Buffer.from('record')));
    assert.equal(result.extentId, 1);
    assert.equal(h.manager.seals, 0, 'no seal for an overload');
    assert.deepEqual(gaps(h.first.attemptsAtMs), [streamAppendBackoffMsMin, streamAppendBackoffMsMin * 2, streamAppendBackoffMsMin * 4]);
    const stats = h.client.stats();
    assert.equal(stats.appendOverloadRetries, 3);
    assert.equal(stats.appendRetries, 0, 'no attempt on another extent');
    t.diagnostic(`3 overloads: 4 attempts on extent 1 at +${gaps(h.first.attemptsAtMs).join(', +')} ms, 0 seals, ${stats.appendBackoffMs} ms backing off`);
  });

  it('seals once the primary stays overloaded past the bound, and carries on on the new extent', async (t) => {
    const h = await harness(Array.from({ length: 50 }, (): Outcome => 'overloaded'));
    const result = await settle(h.clock, h.client.append(1, Buffer.from('record')));
    assert.equal(result.extentId, 2);
    assert.equal(h.manager.seals, 1);
    assert.equal(h.first.attemptsAtMs.length, streamAppendOverloadRetriesMax + 1);
    const waits = gaps(h.first.attemptsAtMs);
    assert.ok(waits.every((wait, i) => wait === Math.min(streamAppendBackoffMsMax, streamAppendBackoffMsMin * 2 ** i)), `back-offs ${waits.join(', ')}`);
    t.diagnostic(`always overloaded: ${h.first.attemptsAtMs.length} attempts on extent 1 (back-offs ${waits.join(', ')} ms, ${h.client.stats().appendBackoffMs} ms total), then 1 seal and the append landed on extent 2`);
  });

  it('seals at once on a failure that may be partly applied, and after one back-off when the overload came from a secondary', async (t) => {
    const failed = await harness(['failed']);
    await settle(failed.clock, failed.client.append(1, Buffer.from('record')));
    assert.equal(failed.manager.seals, 1);
    assert.equal(failed.first.attemptsAtMs.length, 1, 'extent.failed is not retried on the same extent');
    assert.equal(failed.client.stats().appendBackoffMs, 0);
    // A secondary was overloaded: the primary wrote locally, its extent stopped accepting, and
    // the retry is answered extent.failed.
    const secondary = await harness(['overloaded', 'failed']);
    const result = await settle(secondary.clock, secondary.client.append(1, Buffer.from('record')));
    assert.equal(result.extentId, 2);
    assert.equal(secondary.manager.seals, 1);
    assert.equal(secondary.first.attemptsAtMs.length, 2);
    t.diagnostic(`extent.failed: 1 attempt, sealed; overload then extent.failed: 2 attempts (${secondary.client.stats().appendBackoffMs} ms back-off), sealed`);
  });

  it('jitters back-offs between half and all of the exponential value, in whole milliseconds', async () => {
    const h = await harness(['overloaded', 'overloaded', 'overloaded', 'overloaded'], { jitter: true });
    await settle(h.clock, h.client.append(1, Buffer.from('record')));
    for (const [i, wait] of gaps(h.first.attemptsAtMs).entries()) {
      const full = Math.min(streamAppendBackoffMsMax, streamAppendBackoffMsMin * 2 ** i);
      assert.ok(Number.isInteger(wait) && wait >= full / 2 && wait <= full, `wait ${wait} for retry ${i}`);
    }
    assert.equal(h.manager.seals, 0);
  });
});
