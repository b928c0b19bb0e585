// SimNetwork's fault injection: seeded determinism, delays and link order, drops, partitions,
// isolation, blackholes, expired requests and copied bodies. Every test runs on a ManualClock.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SimNetwork } from '../../../src/rpc/sim-network.ts';
import type { SimNetworkFaults } from '../../../src/rpc/sim-network.ts';
import type { RpcHandler, RpcResponse } from '../../../src/rpc/network.ts';
import { ManualClock } from '../../../src/util/clock.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import { SeededRandom } from '../../../src/util/random.ts';
import { bodyBytes } from '../../../src/util/body-parts.ts';

const echo: RpcHandler = (request) => Promise.resolve({ header: { ...request.header }, body: bodyBytes(request.body) });

function world(seed: number, faults: Partial<SimNetworkFaults> = {}): { clock: ManualClock; sim: SimNetwork } {
  const clock = new ManualClock(0);
  return { clock, sim: new SimNetwork({ clock, random: new SeededRandom(seed), faults }) };
}

/** Advances virtual time 1 ms at a time until the promise settles (bounded). */
async function drive<T>(clock: ManualClock, promise: Promise<T>): Promise<T> {
  let done = false;
  promise.then(() => { done = true; }, () => { done = true; });
  for (let steps = 0; !done && steps < 100_000; steps++) await clock.advance(1);
  return promise;
}

function outcome(result: PromiseSettledResult<RpcResponse>): string {
  if (result.status === 'fulfilled') return `ok:${JSON.stringify(result.value.header['i'] ?? null)}`;
  const error: unknown = result.reason;
  return isStorageError(error) ? error.code : `other:${String(error)}`;
}

/** 3 callers, 2 servers, 300 calls under delay and drops; returns a trace of every outcome. */
async function scenario(seed: number): Promise<{ trace: string[]; stats: unknown }> {
  const { clock, sim } = world(seed, { delayMsMin: 1, delayMsMax: 20, dropProbability: 0.1 });
  const servers = [await sim.listen('s1:7000', echo), await sim.listen('s2:7000', echo)];
  const callers = ['c1', 'c2', 'c3'].map((address) => sim.endpoint(address));
  const trace: string[] = [];
  const calls = Array.from({ length: 300 }, (_, i) => {
    const caller = callers[i % callers.length]!;
    const server = servers[i % servers.length]!;
    return caller.call(server.address, { method: 'echo', header: { i }, body: Buffer.from(`m${i}`) }, { deadlineMs: 200 })
      .then(() => { trace.push(`${clock.monotonicMs()}:${i}:ok`); }, (error: unknown) => {
        trace.push(`${clock.monotonicMs()}:${i}:${isStorageError(error) ? error.code : 'other'}`);
      });
  });
  await drive(clock, Promise.all(calls));
  return { trace, stats: sim.stats() };
}

describe('SimNetwork', { timeout: 30_000 }, () => {
  it('is deterministic for a seed, and differs between seeds', async (t) => {
    const first = await scenario(11);
    const again = await scenario(11);
    const other = await scenario(12);
    assert.deepEqual(again, first);
    assert.notDeepEqual(other.trace, first.trace);
    assert.equal(first.trace.length, 300);
    t.diagnostic(`seed 11: ${JSON.stringify(first.stats)}`);
  });

  it('delays each message within the range and keeps each link in order', async (t) => {
    const { clock, sim } = world(3, { delayMsMin: 5, delayMsMax: 15 });
    const arrivals: number[] = [];
    const server = await sim.listen('s:1', (request) => {
      arrivals.push(Number(request.header['i']));
      return echo(request, { deadlineAtMs: 0, from: '' });
    });
    const started = clock.monotonicMs();
    const times: number[] = [];
    const calls = Array.from({ length: 50 }, (_, i) => sim.call(server.address, { method: 'm', header: { i }, body: Buffer.alloc(0) })
      .then(() => times.push(clock.monotonicMs() - started)));
    await drive(clock, Promise.all(calls));
    assert.deepEqual(arrivals, Array.from({ length: 50 }, (_, i) => i), 'one link delivers in order');
    assert.ok(Math.min(...times) >= 10, `fastest round trip ${Math.min(...times)} ms`);
    t.diagnostic(`round trips ${Math.min(...times)}..${Math.max(...times)} ms`);
  });

  it('drops messages with the configured probability, failing calls rpc.unreachable', async (t) => {
    const { clock, sim } = world(5, { dropProbability: 0.3 });
    let handled = 0;
    const server = await sim.listen('s:1', (request) => { handled += 1; return echo(request, { deadlineAtMs: 0, from: '' }); });
    const results = await drive(clock, Promise.allSettled(Array.from({ length: 1000 }, (_, i) =>
      sim.call(server.address, { method: 'm', header: { i }, body: Buffer.alloc(0) }, { deadlineMs: 1000 }))));
    const failed = results.filter((result) => result.status === 'rejected');
    for (const result of failed) assert.equal(outcome(result), 'rpc.unreachable');
    const stats = sim.stats();
    assert.equal(stats.faults.drop, failed.length, 'each failed call lost exactly one message');
    // A call fails if its request (p=0.3) or its answer (p=0.3) is dropped: 1 - 0.7^2 = 0.51.
    assert.ok(failed.length > 430 && failed.length < 590, `${failed.length} failed`);
    assert.ok(handled > 1000 - failed.length, 'some dropped answers were handled: ambiguous outcomes');
    t.diagnostic(`1000 calls, ${failed.length} failed, ${handled} handled, faults ${JSON.stringify(stats.faults)}`);
  });

  it('refuses calls across a partition until heal()', async (t) => {
    const { clock, sim } = world(7);
    const server = await sim.listen('b:9000', echo);
    const a = sim.endpoint('a');
    const c = sim.endpoint('c');
    const request = { method: 'm', header: {}, body: Buffer.alloc(0) };
    sim.partition(['a'], ['b']);
    const refused = await drive(clock, Promise.allSettled([a.call(server.address, request)]));
    assert.equal(outcome(refused[0]), 'rpc.unreachable');
    await drive(clock, c.call(server.address, request)); // c is on neither side
    sim.heal();
    await drive(clock, a.call(server.address, request));
    sim.isolate('b:9000');
    const isolated = await drive(clock, Promise.allSettled([a.call(server.address, request), c.call(server.address, request)]));
    assert.deepEqual(isolated.map(outcome), ['rpc.unreachable', 'rpc.unreachable']);
    sim.heal();
    t.diagnostic(`faults ${JSON.stringify(sim.stats().faults)}`);
    assert.equal(sim.stats().faults.partition, 1);
    assert.equal(sim.stats().faults.isolate, 2);
  });

  it('fails a message already in flight when a partition starts before it arrives', async () => {
    const { clock, sim } = world(8, { delayMsMin: 50, delayMsMax: 50 });
    const server = await sim.listen('b:1', echo);
    const call = sim.endpoint('a').call(server.address, { method: 'm', header: {}, body: Buffer.alloc(0) });
    await clock.advance(10);
    sim.partition(['a'], ['b']);
    const [result] = await drive(clock, Promise.allSettled([call]));
    assert.equal(outcome(result), 'rpc.unreachable');
  });

  it('blackholes messages: only the deadline ends the call', async (t) => {
    const { clock, sim } = world(9);
    let handled = 0;
    const server = await sim.listen('b:1', (request) => { handled += 1; return echo(request, { deadlineAtMs: 0, from: '' }); });
    sim.blackhole('b');
    const started = clock.monotonicMs();
    const [result] = await drive(clock, Promise.allSettled([sim.call(server.address, { method: 'm', header: {}, body: Buffer.alloc(0) }, { deadlineMs: 250 })]));
    assert.equal(outcome(result), 'rpc.timeout');
    assert.equal(clock.monotonicMs() - started, 250);
    assert.equal(handled, 0);
    assert.equal(sim.stats().faults.blackhole, 1);
    t.diagnostic(`timed out after ${clock.monotonicMs() - started} virtual ms`);
  });

  it('skips a request whose deadline passed before it arrived', async () => {
    const { clock, sim } = world(10, { delayMsMin: 100, delayMsMax: 100 });
    let handled = 0;
    const server = await sim.listen('b:1', (request) => { handled += 1; return echo(request, { deadlineAtMs: 0, from: '' }); });
    const [result] = await drive(clock, Promise.allSettled([sim.call(server.address, { method: 'm', header: {}, body: Buffer.alloc(0) }, { deadlineMs: 50 })]));
    assert.equal(outcome(result), 'rpc.timeout');
    await clock.advance(200);
    assert.equal(handled, 0);
    assert.equal(sim.stats().requestsExpired, 1);
  });

  it('gives the handler the caller\'s deadline and address', async () => {
    const { clock, sim } = world(12, { delayMsMin: 3, delayMsMax: 3 });
    const server = await sim.listen('b:1', (_request, context) => Promise.resolve({ header: { from: context.from, deadlineAtMs: context.deadlineAtMs }, body: Buffer.alloc(0) }));
    const response = await drive(clock, sim.endpoint('a:5').call(server.address, { method: 'm', header: {}, body: Buffer.alloc(0) }, { deadlineMs: 1000 }));
    assert.deepEqual(response.header, { from: 'a:5', deadlineAtMs: 1000 });
  });

  it('copies bodies: neither side can change the other\'s bytes', async () => {
    const { clock, sim } = world(13);
    let seen = '';
    const answer = Buffer.from('answer');
    const server = await sim.listen('b:1', (request) => {
      seen = bodyBytes(request.body).toString();
      bodyBytes(request.body).fill(0x21);
      return Promise.resolve({ header: {}, body: answer });
    });
    const body = Buffer.from('original');
    const call = sim.call(server.address, { method: 'm', header: {}, body });
    body.fill(0x3f); // the sender reuses its buffer right after calling
    const response = await drive(clock, call);
    answer.fill(0x3f);
    assert.equal(seen, 'original');
    assert.equal(body.toString(), '????????');
    assert.equal(response.body.toString(), 'answer');
  });
});
