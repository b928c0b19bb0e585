// The dev cluster's TCP balancer on real loopback sockets: three backends answer each connection
// with their name. Connections spread round robin; a backend whose listener is closed (a front
// end killed) is skipped at once by the connect that fails, before any health poll noticed; a
// backend whose health check says not ready gets no connections; bytes pass both ways unchanged.
// Hand-off: two real child processes (RoleProcess, as dev-cluster starts front ends) receive the
// accepted connections over IPC and serve them themselves; one that says it drains (markDown) gets
// no more while another is live, a dead one is skipped at once. One killed -9 while 16 clients
// connect in a loop leaves no connection unanswered and open: each is answered, or closed (the
// client retries); before the bounded hand-off, 3-16 per kill stayed open forever (the descriptor
// Node queued behind one the dead child never acknowledged).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { RoleProcess } from '../../src/cluster/role-process.ts';
import { TcpBalancer } from '../../src/cluster/tcp-balancer.ts';

/** A child that serves every socket handed to it like backend() below: its name, then an echo;
 * each hand-off costs it 2 ms of CPU (a busy front end), so descriptors queue behind its
 * acknowledgements. It says it is ready with a JSON log line, like a kura role. */
const handOffChild = `
process.on('message', (message, socket) => {
  if (message !== 'kura.connection' || socket === undefined) return;
  const until = Date.now() + 2;
  while (Date.now() < until);
  socket.on('error', () => socket.destroy());
  socket.write(process.argv[2] + '\\n');
  socket.pipe(socket);
});
process.channel.unref();
console.log(JSON.stringify({ msg: 'ready' }));
setInterval(() => undefined, 1000);
`;

async function handOffChildren(names: readonly string[]): Promise<RoleProcess[]> {
  const directory = await mkdtemp(join(tmpdir(), 'kura-handoff-'));
  const script = join(directory, 'child.mjs');
  await writeFile(script, handOffChild);
  return Promise.all(names.map((name) => RoleProcess.start({
    name, command: process.execPath, args: [script, name], logPath: join(directory, `${name}.log`), ready: { kind: 'log', message: 'ready' },
    readyTimeoutMs: 30_000, stopTimeoutMs: 5_000, pollMs: 20, ipc: { onMessage: () => undefined },
  })));
}

async function handOffBalancer(children: readonly RoleProcess[]): Promise<TcpBalancer> {
  return TcpBalancer.start({
    host: '127.0.0.1', port: 0, checkMs: 60_000, connectTimeoutMs: 2_000, connectionsMax: 256,
    backends: children.map((child) => ({ name: child.name, address: '127.0.0.1:1', healthy: () => Promise.resolve(child.exit === null), handOff: (socket: Socket) => child.handOff(socket) })),
  });
}

type ConnectionOutcome = 'answered' | 'closed' | 'open';

/** One connection through the balancer: answered (the backend wrote), closed before an answer, or
 * still open and unanswered after openLimitMs. */
function connectOnce(port: number, openLimitMs: number): Promise<ConnectionOutcome> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    const timer = setTimeout(() => { socket.destroy(); resolve('open'); }, openLimitMs);
    socket.once('data', () => { clearTimeout(timer); socket.destroy(); resolve('answered'); });
    socket.on('error', () => undefined);
    socket.once('close', () => { clearTimeout(timer); resolve('closed'); });
    socket.write('hello\n');
  });
}

interface Backend {
  readonly name: string;
  readonly server: Server;
  readonly address: string;
}

/** A backend that writes its name, then echoes what it receives. */
async function backend(name: string): Promise<Backend> {
  const server = createServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.write(`${name}\n`);
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const bound = server.address();
  assert.ok(bound !== null && typeof bound === 'object');
  return { name, server, address: `127.0.0.1:${bound.port}` };
}

/** Connects through the balancer, sends `payload`, returns the backend's name and the echo. */
function exchange(port: number, payload: Buffer): Promise<{ name: string; echo: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      const all = Buffer.concat(chunks);
      const newline = all.indexOf(10);
      if (newline !== -1 && all.length - newline - 1 >= payload.length) {
        socket.destroy();
        resolve({ name: all.subarray(0, newline).toString('utf8'), echo: all.subarray(newline + 1, newline + 1 + payload.length) });
      }
    });
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('closed before the echo')));
    socket.write(payload);
  });
}

/** `count` connections through the balancer, each echo checked byte-exact: connections per backend. */
async function countByBackend(port: number, count: number, payload: Buffer): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const { name, echo } = await exchange(port, payload);
    assert.ok(echo.equals(payload), 'bytes reach the backend and come back unchanged');
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

describe('TcpBalancer', () => {
  const closers: Array<() => Promise<void>> = [];
  after(async () => {
    for (const close of closers.reverse()) await close();
  });

  it('spreads connections round robin, skips a closed backend at once and an unready one, passes bytes unchanged', async (t) => {
    const backends = [await backend('a'), await backend('b'), await backend('c')];
    for (const b of backends) closers.push(() => new Promise((resolve) => b.server.close(() => resolve())));
    let cReady = true;
    const balancer = await TcpBalancer.start({
      host: '127.0.0.1', port: 0, checkMs: 100, connectTimeoutMs: 2_000, connectionsMax: 64,
      backends: backends.map((b) => ({ name: b.name, address: b.address, healthy: b.name === 'c' ? () => Promise.resolve(cReady) : null, handOff: null })),
    });
    closers.push(() => balancer.close());

    const payload = randomBytes(256 * 1024);
    const counts = await countByBackend(balancer.port, 30, payload);
    t.diagnostic(`30 connections over 3 live backends: ${JSON.stringify(Object.fromEntries(counts))}`);
    assert.deepEqual([...counts.values()], [10, 10, 10]);

    // "a" dies: its listener closes. The very next connections skip it without waiting for a poll.
    await new Promise<void>((resolve) => backends[0]?.server.close(() => resolve()));
    const afterKill = new Map<string, number>();
    for (let i = 0; i < 10; i++) {
      const { name } = await exchange(balancer.port, payload.subarray(0, 100));
      afterKill.set(name, (afterKill.get(name) ?? 0) + 1);
    }
    t.diagnostic(`10 connections after a was closed: ${JSON.stringify(Object.fromEntries(afterKill))}; a marked live: ${String(balancer.status()[0]?.live)}`);
    assert.equal(afterKill.get('a'), undefined);
    assert.equal(balancer.status()[0]?.live, false);

    // "c" says it is not ready (a front end draining): once polled, only "b" gets connections.
    cReady = false;
    const deadline = Date.now() + 10_000;
    while (balancer.status()[2]?.live !== false && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    const unready = new Set<string>();
    for (let i = 0; i < 6; i++) unready.add((await exchange(balancer.port, payload.subarray(0, 10))).name);
    t.diagnostic(`6 connections with c not ready: ${[...unready].join(',')}`);
    assert.deepEqual([...unready], ['b']);
  });

  it('hands connections to the backends\' processes round robin, skips one marked down and a dead one at once', async (t) => {
    const children = await handOffChildren(['x', 'y']);
    closers.push(async () => { await Promise.all(children.map((child) => child.stop())); });
    const balancer = await handOffBalancer(children);
    closers.push(() => balancer.close());
    const payload = randomBytes(256 * 1024);
    const counts = await countByBackend(balancer.port, 10, payload);
    t.diagnostic(`10 connections handed off: ${JSON.stringify(Object.fromEntries(counts))}; status ${JSON.stringify(balancer.status())}`);
    assert.deepEqual(Object.fromEntries(counts), { x: 5, y: 5 });
    assert.deepEqual(balancer.status().map((entry) => [entry.handedOff, entry.connections]), [[5, 0], [5, 0]]);

    // x says it drains: the next connections all go to y.
    balancer.markDown('x');
    const drained = new Set<string>();
    for (let i = 0; i < 4; i++) drained.add((await exchange(balancer.port, payload.subarray(0, 100))).name);
    assert.deepEqual([...drained], ['y']);

    // y dies: its hand-off fails at once and the connection goes to x, down but the only one left.
    const [, y] = children;
    assert.ok(y !== undefined);
    y.kill();
    await y.exited;
    const afterKill = new Set<string>();
    for (let i = 0; i < 4; i++) afterKill.add((await exchange(balancer.port, payload.subarray(0, 100))).name);
    assert.deepEqual([...afterKill], ['x']);
    assert.equal(balancer.status()[1]?.live, false);
    t.diagnostic(`x marked down: ${[...drained].join(',')}; y killed: ${[...afterKill].join(',')}`);
  });

  it('a backend process killed -9 while clients connect leaves no connection open and unanswered', async (t) => {
    const children = await handOffChildren(['p', 'q']);
    closers.push(async () => { await Promise.all(children.map((child) => child.stop())); });
    const balancer = await handOffBalancer(children);
    closers.push(() => balancer.close());
    const outcomes: ConnectionOutcome[] = [];
    let stop = false;
    const clients = Array.from({ length: 16 }, async () => {
      while (!stop) outcomes.push(await connectOnce(balancer.port, 10_000));
    });
    while (outcomes.length < 50) await new Promise((resolve) => setTimeout(resolve, 10));
    children[0]?.kill();
    const killedAfter = outcomes.length;
    await new Promise((resolve) => setTimeout(resolve, 500));
    stop = true;
    await Promise.all(clients);
    const count = (outcome: ConnectionOutcome): number => outcomes.filter((entry) => entry === outcome).length;
    t.diagnostic(`${outcomes.length} connections by 16 clients, p killed -9 after ${killedAfter}: ${count('answered')} answered, ${count('closed')} closed (the client retries), ${count('open')} open and unanswered after 10 s; status ${JSON.stringify(balancer.status())}`);
    assert.equal(count('open'), 0);
  });
});
