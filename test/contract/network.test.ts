// One contract suite for the Network seam (src/rpc/network.ts), run against every
// implementation: TcpNetwork on 127.0.0.1, SimNetwork on a ManualClock and LocalNetwork (the
// embedded stamp's in-process network). Each test reports
// the implementation's counters as a diagnostic.
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { rpcHeaderBytesMax } from '../../src/constants.ts';
import { LocalNetwork } from '../../src/rpc/local-network.ts';
import { SimNetwork } from '../../src/rpc/sim-network.ts';
import { TcpNetwork } from '../../src/rpc/tcp-network.ts';
import type { Network, RpcHandler, RpcHeader, RpcResponse } from '../../src/rpc/network.ts';
import { ManualClock } from '../../src/util/clock.ts';
import { StorageError, isStorageError } from '../../src/util/errors.ts';
import type { StorageErrorCode } from '../../src/util/errors.ts';
import { SeededRandom } from '../../src/util/random.ts';
import { rpcBodyBytesMax } from '../../src/wire/rpc-frame.ts';
import { bodyBytes } from '../../src/util/body-parts.ts';

interface HarnessOptions {
  readonly inFlightBytesMax?: number;
}

interface Harness {
  readonly network: Network;
  readonly listenAddress: string;
  /** An address where nothing listens. */
  readonly unreachableAddress: string;
  /** Waits for a promise, moving virtual time if the implementation has any. */
  drive<T>(promise: Promise<T>): Promise<T>;
  stats(): unknown;
  dispose(): Promise<void>;
}

interface Implementation {
  readonly name: string;
  create(options: HarnessOptions): Promise<Harness>;
}

const tcp: Implementation = {
  name: 'TcpNetwork',
  async create(options) {
    const network = new TcpNetwork(options.inFlightBytesMax === undefined ? {} : { inFlightBytesMax: options.inFlightBytesMax });
    const probe = await network.listen('127.0.0.1:0', () => Promise.reject(new Error('unused')));
    await probe.close(); // the port is now free: connections to it are refused
    return {
      network,
      listenAddress: '127.0.0.1:0',
      unreachableAddress: probe.address,
      drive: (promise) => promise,
      stats: () => network.stats(),
      dispose: () => network.close(),
    };
  },
};

const sim: Implementation = {
  name: 'SimNetwork',
  create(options) {
    const clock = new ManualClock(0);
    const network = new SimNetwork({
      clock, random: new SeededRandom(1), faults: { delayMsMin: 1, delayMsMax: 3 },
      ...(options.inFlightBytesMax === undefined ? {} : { inFlightBytesMax: options.inFlightBytesMax }),
    });
    return Promise.resolve({
      network,
      listenAddress: 'server:0',
      unreachableAddress: 'nobody:1',
      drive: (promise) => driveManualClock(clock, promise),
      stats: () => network.stats(),
      dispose: () => network.close(),
    });
  },
};

const local: Implementation = {
  name: 'LocalNetwork',
  create(options) {
    const network = new LocalNetwork(options.inFlightBytesMax === undefined ? {} : { inFlightBytesMax: options.inFlightBytesMax });
    return Promise.resolve({
      network,
      listenAddress: 'server:0',
      unreachableAddress: 'nobody:1',
      drive: (promise) => promise,
      stats: () => network.stats(),
      dispose: () => network.close(),
    });
  },
};

async function driveManualClock<T>(clock: ManualClock, promise: Promise<T>): Promise<T> {
  let done = false;
  promise.then(() => { done = true; }, () => { done = true; });
  for (let steps = 0; !done && steps < 100_000; steps++) await clock.advance(1);
  return promise;
}

const echo: RpcHandler = (request, context) => Promise.resolve({
  header: { method: request.method, echoed: request.header, from: context.from, deadlineAtMs: context.deadlineAtMs },
  body: bodyBytes(request.body),
});

async function rejectsWith(promise: Promise<unknown>, code: StorageErrorCode): Promise<StorageError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(isStorageError(error), `expected a StorageError, got ${String(error)}`);
    assert.equal(error.code, code, `expected ${code}, got ${error.code}: ${error.message}`);
    return error;
  }
  assert.fail(`expected ${code}, but the call succeeded`);
}

interface Gate {
  readonly handler: RpcHandler;
  arrived(): number;
  release(): void;
  /** Resolves once `count` requests have reached the handler. */
  arrivals(count: number): Promise<void>;
}

/** A handler that holds every request until release() is called. */
function gate(): Gate {
  const held: Array<() => void> = [];
  const watchers: Array<{ readonly count: number; readonly resolve: () => void }> = [];
  let arrived = 0;
  let released = false;
  const handler: RpcHandler = async (request) => {
    arrived += 1;
    for (const watcher of watchers.filter((w) => w.count <= arrived)) watcher.resolve();
    if (!released) await new Promise<void>((resolve) => held.push(resolve));
    return { header: {}, body: bodyBytes(request.body) };
  };
  return {
    handler,
    arrived: () => arrived,
    release: () => {
      released = true;
      for (const resolve of held.splice(0)) resolve();
    },
    arrivals: (count) => new Promise<void>((resolve) => {
      if (arrived >= count) resolve();
      else watchers.push({ count, resolve });
    }),
  };
}

async function withHarness(t: TestContext, implementation: Implementation, options: HarnessOptions, body: (harness: Harness) => Promise<void>): Promise<void> {
  const harness = await implementation.create(options);
  try {
    await body(harness);
  } finally {
    t.diagnostic(`${implementation.name} ${JSON.stringify(harness.stats())}`);
    await harness.dispose();
  }
}

for (const implementation of [tcp, sim, local]) {
  describe(`Network contract: ${implementation.name}`, { timeout: 30_000 }, () => {
    it('echoes header and body, and tells the handler who calls and until when', (t) => withHarness(t, implementation, {}, async (h) => {
      const server = await h.network.listen(h.listenAddress, echo);
      assert.notEqual(server.address, h.listenAddress, 'port 0 resolves to a real port');
      const body = Buffer.from('hello, extent');
      const response = await h.drive(h.network.call(server.address, { method: 'test.echo', header: { n: 1, list: [true, null, 'x'] }, body }, { deadlineMs: 5_000 }));
      assert.deepEqual(response.body, body);
      assert.equal(response.header['method'], 'test.echo');
      assert.deepEqual(response.header['echoed'], { n: 1, list: [true, null, 'x'] });
      assert.equal(typeof response.header['from'], 'string');
      assert.equal(typeof response.header['deadlineAtMs'], 'number');
      const empty = await h.drive(h.network.call(server.address, { method: 'test.echo', header: {}, body: Buffer.alloc(0) }));
      assert.equal(empty.body.length, 0);
      await server.close();
    }));

    it('hands the handler and the caller what the header JSON decodes to, never the sender\'s object', (t) => withHarness(t, implementation, {}, async (h) => {
      let received: unknown[] = [];
      const server = await h.network.listen(h.listenAddress, (request) => {
        received.push(request.header);
        return Promise.resolve({ header: request.header, body: Buffer.alloc(0) });
      });
      // Flat headers (the common case), and the shapes a flat copy must not take: nested values,
      // undefined, non-finite numbers, -0 and an own __proto__ key.
      const headers: Array<Record<string, unknown>> = [
        { extentId: 7, offset: 0, key: 'AAE=', ok: true, none: null },
        { a: 1, skipped: undefined, b: 'x' },
        { nested: { a: [1, 'b', null] }, n: 2 },
        { bad: Number.NaN, inf: Number.POSITIVE_INFINITY, zero: -0 },
        JSON.parse('{"__proto__": {"polluted": 1}, "x": 1}') as Record<string, unknown>,
      ];
      for (const header of headers) {
        received = [];
        const response = await h.drive(h.network.call(server.address, { method: 'test.header', header: header as RpcHeader, body: Buffer.alloc(0) }));
        const expected: unknown = JSON.parse(JSON.stringify(header));
        assert.deepEqual(received[0], expected);
        assert.notEqual(received[0], header, 'the handler gets its own copy');
        assert.deepEqual(response.header, expected);
        assert.equal(Object.getPrototypeOf(response.header), Object.prototype);
        assert.equal(Object.is(response.header['zero'], -0), false);
      }
      await server.close();
    }));

    it('carries a body at the frame limit, and rejects one byte more before sending', (t) => withHarness(t, implementation, {}, async (h) => {
      let handled = 0;
      const server = await h.network.listen(h.listenAddress, (request) => { handled += 1; return Promise.resolve({ header: {}, body: bodyBytes(request.body) }); });
      const method = 'test.big';
      const bodyBytesMax = rpcBodyBytesMax(Buffer.byteLength(method), Buffer.byteLength('{}'));
      const body = Buffer.alloc(bodyBytesMax, 0xa5);
      body.writeUInt32BE(0xdeadbeef, bodyBytesMax - 4);
      const response = await h.drive(h.network.call(server.address, { method, header: {}, body }));
      assert.ok(response.body.equals(body), 'body round-trips byte-exact');
      await rejectsWith(h.drive(h.network.call(server.address, { method, header: {}, body: Buffer.alloc(bodyBytesMax + 1) })), 'wire.too_large');
      const bigHeader = { pad: 'x'.repeat(rpcHeaderBytesMax) };
      await rejectsWith(h.drive(h.network.call(server.address, { method, header: bigHeader, body: Buffer.alloc(0) })), 'wire.too_large');
      assert.equal(handled, 1, 'over-limit calls never reach the handler');
      t.diagnostic(`largest body ${bodyBytesMax} bytes`);
      await server.close();
    }));

    it('answers an over-limit response with wire.too_large', (t) => withHarness(t, implementation, {}, async (h) => {
      const server = await h.network.listen(h.listenAddress, () => Promise.resolve({ header: {}, body: Buffer.alloc(rpcBodyBytesMax(0, 2) + 1) }));
      await rejectsWith(h.drive(h.network.call(server.address, { method: 'test.huge', header: {}, body: Buffer.alloc(0) })), 'wire.too_large');
      await server.close();
    }));

    it('propagates a handler StorageError with code, message and retryable; other errors become rpc.remote', (t) => withHarness(t, implementation, {}, async (h) => {
      const server = await h.network.listen(h.listenAddress, (request) => {
        if (request.method === 'sealed') throw new StorageError('extent.sealed', 'extent 7 is sealed at 4096');
        if (request.method === 'busy') return Promise.reject(new StorageError('stream.unavailable', 'no replica', { retryable: true }));
        return Promise.reject(new TypeError('oops'));
      });
      const call = (method: string): Promise<RpcResponse> => h.drive(h.network.call(server.address, { method, header: {}, body: Buffer.alloc(0) }));
      const sealed = await rejectsWith(call('sealed'), 'extent.sealed');
      assert.equal(sealed.message, 'extent 7 is sealed at 4096');
      assert.equal(sealed.retryable, false);
      const busy = await rejectsWith(call('busy'), 'stream.unavailable');
      assert.equal(busy.retryable, true);
      const remote = await rejectsWith(call('other'), 'rpc.remote');
      assert.match(remote.message, /oops/);
      await server.close();
    }));

    it('rejects with rpc.timeout when the deadline passes', (t) => withHarness(t, implementation, {}, async (h) => {
      const held = gate();
      const server = await h.network.listen(h.listenAddress, held.handler);
      try {
        const error = await rejectsWith(h.drive(h.network.call(server.address, { method: 'slow', header: {}, body: Buffer.alloc(0) }, { deadlineMs: 100 })), 'rpc.timeout');
        assert.equal(error.retryable, true);
        assert.equal(held.arrived(), 1);
      } finally {
        held.release();
      }
      // The late answer is dropped and the connection stays usable.
      const response = await h.drive(h.network.call(server.address, { method: 'fast', header: {}, body: Buffer.from('ok') }));
      assert.equal(response.body.toString(), 'ok');
      await server.close();
    }));

    it('rejects with rpc.unreachable when nothing listens at the address', (t) => withHarness(t, implementation, {}, async (h) => {
      const error = await rejectsWith(h.drive(h.network.call(h.unreachableAddress, { method: 'x', header: {}, body: Buffer.alloc(0) })), 'rpc.unreachable');
      assert.equal(error.retryable, true);
    }));

    it('multiplexes concurrent calls whose answers come back in any order', (t) => withHarness(t, implementation, {}, async (h) => {
      const callCount = 64;
      const held: Array<() => void> = [];
      const server = await h.network.listen(h.listenAddress, async (request) => {
        await new Promise<void>((resolve) => {
          held.push(resolve);
          // Once every call has arrived, answer them in reverse order of arrival.
          if (held.length === callCount) for (const release of held.reverse()) release();
        });
        return { header: { index: request.header['index'] ?? null }, body: bodyBytes(request.body) };
      });
      const calls = Array.from({ length: callCount }, (_, index) => h.network.call(server.address, { method: 'mux', header: { index }, body: Buffer.from(`body-${index}`) }));
      const responses = await h.drive(Promise.all(calls));
      for (const [index, response] of responses.entries()) {
        assert.equal(response.header['index'], index);
        assert.equal(response.body.toString(), `body-${index}`);
      }
      t.diagnostic(`${callCount} concurrent calls answered in reverse order`);
      await server.close();
    }));

    it('answers rpc.overloaded when in-flight request bytes pass the server limit', (t) => withHarness(t, implementation, { inFlightBytesMax: 1024 }, async (h) => {
      const held = gate();
      const server = await h.network.listen(h.listenAddress, held.handler);
      const request = { method: 'load', header: {}, body: Buffer.alloc(600) };
      const first = h.network.call(server.address, request);
      await h.drive(held.arrivals(1));
      const error = await rejectsWith(h.drive(h.network.call(server.address, request)), 'rpc.overloaded');
      assert.equal(error.retryable, true);
      held.release();
      await h.drive(first);
      await h.drive(h.network.call(server.address, request)); // bytes were released
      await server.close();
    }));

    it('fails pending calls with rpc.unreachable when the server closes, and later calls too', (t) => withHarness(t, implementation, {}, async (h) => {
      const held = gate();
      const server = await h.network.listen(h.listenAddress, held.handler);
      const pending = h.network.call(server.address, { method: 'wait', header: {}, body: Buffer.alloc(0) });
      await h.drive(held.arrivals(1));
      await server.close();
      const error = await rejectsWith(h.drive(pending), 'rpc.unreachable');
      assert.equal(error.retryable, true);
      await rejectsWith(h.drive(h.network.call(server.address, { method: 'again', header: {}, body: Buffer.alloc(0) })), 'rpc.unreachable');
      held.release();
    }));

    it('rejects calls after the network is closed', (t) => withHarness(t, implementation, {}, async (h) => {
      const server = await h.network.listen(h.listenAddress, echo);
      await h.drive(h.network.call(server.address, { method: 'x', header: {}, body: Buffer.alloc(0) }));
      await h.network.close();
      const error = await rejectsWith(h.network.call(server.address, { method: 'x', header: {}, body: Buffer.alloc(0) }), 'rpc.unreachable');
      assert.equal(error.retryable, false);
      await server.close();
    }));
  });
}
