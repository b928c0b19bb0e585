// TcpNetwork over real loopback sockets, with the faults the contract suite cannot express:
// a connection killed mid-call (through a userspace proxy), corrupt frames in both
// directions, one multiplexed connection per peer, and requests that arrive already expired.
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { Socket } from 'node:net';
import { TcpNetwork, parseAddress } from '../../../src/rpc/tcp-network.ts';
import type { RpcHandler } from '../../../src/rpc/network.ts';
import { isStorageError } from '../../../src/util/errors.ts';
import type { StorageErrorCode } from '../../../src/util/errors.ts';
import { encodeRpcFrame } from '../../../src/wire/rpc-frame.ts';
import { bodyBytes } from '../../../src/util/body-parts.ts';

const echo: RpcHandler = (request) => Promise.resolve({ header: request.header, body: bodyBytes(request.body) });
const request = { method: 'test.echo', header: {}, body: Buffer.from('ping') };

interface Proxy {
  readonly address: string;
  /** Destroys every connection through the proxy, both halves. */
  killAll(): number;
  close(): Promise<void>;
}

/** A TCP proxy to `target`, so a test can cut connections the way a network would. */
async function startProxy(target: string): Promise<Proxy> {
  const { host, port } = parseAddress(target);
  const sockets = new Set<Socket>();
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  };
  const server = net.createServer((client) => {
    const upstream = net.connect({ host, port });
    track(client);
    track(upstream);
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const bound = server.address();
  assert.ok(typeof bound === 'object' && bound !== null);
  return {
    address: `127.0.0.1:${bound.port}`,
    killAll: () => {
      const count = sockets.size;
      for (const socket of sockets) socket.destroy();
      return count;
    },
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

/** A raw TCP server that answers every connection with `reply` bytes. */
async function rawServer(reply: Buffer): Promise<{ address: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.once('data', () => socket.write(reply));
  });
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
  const bound = server.address();
  assert.ok(typeof bound === 'object' && bound !== null);
  return {
    address: `127.0.0.1:${bound.port}`,
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

async function rejectsWith(promise: Promise<unknown>, code: StorageErrorCode): Promise<void> {
  await assert.rejects(promise, (error: unknown) => isStorageError(error, code));
}

async function withNetwork(t: TestContext, body: (network: TcpNetwork) => Promise<void>): Promise<void> {
  const network = new TcpNetwork();
  try {
    await body(network);
  } finally {
    t.diagnostic(JSON.stringify(network.stats()));
    await network.close();
  }
}

describe('TcpNetwork on loopback', { timeout: 30_000 }, () => {
  it('fails calls pending on a killed connection with rpc.unreachable, then reconnects', (t) => withNetwork(t, async (network) => {
    let arrived: () => void = () => undefined;
    const arrival = new Promise<void>((resolve) => { arrived = resolve; });
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => { release = resolve; });
    const server = await network.listen('127.0.0.1:0', async (req) => {
      if (req.method === 'hold') {
        arrived();
        await released;
      }
      return { header: {}, body: bodyBytes(req.body) };
    });
    const proxy = await startProxy(server.address);
    try {
      const pending = [network.call(proxy.address, { ...request, method: 'hold' }), network.call(proxy.address, { ...request, method: 'hold' })];
      await arrival;
      const killed = proxy.killAll();
      for (const call of pending) {
        await assert.rejects(call, (error: unknown) => isStorageError(error, 'rpc.unreachable') && error.retryable);
      }
      const response = await network.call(proxy.address, request);
      assert.equal(response.body.toString(), 'ping');
      const stats = network.stats();
      assert.equal(stats.connectsStarted, 2, 'one connection, then one reconnect');
      assert.equal(stats.connectionsLost, 1);
      t.diagnostic(`${killed} sockets killed mid-call, ${pending.length} calls failed over, 1 reconnect`);
    } finally {
      release();
      await proxy.close();
      await server.close();
    }
  }));

  it('multiplexes concurrent calls over one connection per peer', (t) => withNetwork(t, async (network) => {
    const server = await network.listen('127.0.0.1:0', echo);
    const calls = Array.from({ length: 200 }, (_, i) => network.call(server.address, { method: 'm', header: { i }, body: Buffer.alloc(i * 100, i) }));
    const responses = await Promise.all(calls);
    for (const [i, response] of responses.entries()) assert.ok(response.body.equals(Buffer.alloc(i * 100, i)));
    const stats = network.stats();
    assert.equal(stats.connectsStarted, 1);
    assert.equal(stats.serverConnectionsAccepted, 1);
    assert.equal(network.connectionCount, 1);
    await server.close();
  }));

  it('drops the connection on a corrupt answer, failing the call rpc.unreachable', (t) => withNetwork(t, async (network) => {
    const answer = encodeRpcFrame({ kind: 'response', requestId: 1, method: '', deadlineMs: 0, header: {}, body: Buffer.from('answer') });
    answer[answer.length - 1]! ^= 0x01;
    const bad = await rawServer(answer);
    try {
      await rejectsWith(network.call(bad.address, request), 'rpc.unreachable');
      assert.equal(network.stats().badFramesReceived, 1);
      assert.equal(network.connectionCount, 0, 'the broken connection is forgotten');
    } finally {
      await bad.close();
    }
  }));

  it('closes a connection that sends garbage, and keeps serving others', (t) => withNetwork(t, async (network) => {
    const server = await network.listen('127.0.0.1:0', echo);
    const { host, port } = parseAddress(server.address);
    const raw = net.connect({ host, port });
    raw.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => raw.on('close', () => resolve()));
    raw.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'.padEnd(64, ' ')));
    await closed;
    assert.equal(network.stats().badFramesReceived, 1);
    const response = await network.call(server.address, request);
    assert.equal(response.body.toString(), 'ping');
    await server.close();
  }));

  it('skips a request that arrives with no time left', (t) => withNetwork(t, async (network) => {
    let handled = 0;
    const server = await network.listen('127.0.0.1:0', (req) => { handled += 1; return echo(req, { deadlineAtMs: 0, from: '' }); });
    await rejectsWith(network.call(server.address, request, { deadlineMs: 0 }), 'rpc.timeout');
    await network.call(server.address, request); // the expired request was skipped, this one answered
    assert.equal(handled, 1);
    assert.equal(network.stats().requestsExpired, 1);
    await server.close();
  }));

  it('times out against a peer that accepts but never answers', (t) => withNetwork(t, async (network) => {
    const silent = await rawServer(Buffer.alloc(0));
    try {
      const started = performance.now();
      await rejectsWith(network.call(silent.address, request, { deadlineMs: 150 }), 'rpc.timeout');
      const elapsedMs = performance.now() - started;
      assert.ok(elapsedMs >= 140 && elapsedMs < 2000, `timed out after ${elapsedMs} ms`);
    } finally {
      await silent.close();
    }
  }));

  it('rejects bad addresses and busy ports', (t) => withNetwork(t, async (network) => {
    await rejectsWith(network.call('no-port', request), 'config.invalid');
    const server = await network.listen('127.0.0.1:0', echo);
    await rejectsWith(network.listen(server.address, echo), 'config.invalid');
    await server.close();
  }));
});
