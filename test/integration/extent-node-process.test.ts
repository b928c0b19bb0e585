// Real `kura extent-node` processes on 127.0.0.1 with real fsync: a stream of appends runs while
// one node is killed with SIGKILL and restarted; afterwards every acknowledged append must be
// readable byte-exact from every replica of its extent (P1), and no read may return bytes that
// differ from what was written (P2). The stream manager runs in this process behind
// serveStreamManager over TcpNetwork (a small fake placement manager; the real StreamManager is
// tested on its own). Figures: "N acknowledged appends, 0 lost, 0 corrupt served".
import { describe, it } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { TcpNetwork } from '../../src/rpc/tcp-network.ts';
import { callRead } from '../../src/stream/extent-node-rpc.ts';
import { StreamClient } from '../../src/stream/stream-client.ts';
import type { StreamAppendResult } from '../../src/stream/stream-client.ts';
import { serveStreamManager } from '../../src/stream/stream-manager-proxy.ts';
import { SystemClock } from '../../src/util/clock.ts';
import { FakeStreamManager } from '../helpers/fake-stream-manager.ts';

const repoRoot = join(import.meta.dirname, '..', '..');
const nodeBinary = join(repoRoot, 'node_modules', '.bin', 'node');
const kuraEntry = join(repoRoot, 'src', 'main', 'kura.ts');
const appendsTotal = 400;
const appendersConcurrent = 4;
const killAfterAppends = 150;
const runTimeMaxMs = 120_000;

interface NodeProcess {
  readonly nodeId: string;
  readonly address: string;
  readonly disk: string;
  child: ChildProcess;
  exited: Promise<number | null>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return address.port;
}

/** Spawns `kura extent-node` and resolves once it logs that it listens (bounded). */
async function spawnNode(node: Omit<NodeProcess, 'child' | 'exited'>, managerAddress: string): Promise<NodeProcess> {
  const child = spawn(nodeBinary, [
    kuraEntry, 'extent-node', '--disk', node.disk, '--fault-domain', `fd-${node.nodeId}`, '--upgrade-domain', `ud-${node.nodeId}`,
    '--listen', node.address, '--manager', managerAddress, '--node-id', node.nodeId, '--log-level', 'info',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8'); });
  const listening = new Promise<void>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout ?? process.stdin });
    lines.on('line', (line) => {
      if (line.includes('"extent node listening"')) resolve();
    });
    void exited.then((code) => reject(new Error(`extent node ${node.nodeId} exited ${code} before listening: ${stderr}`)));
  });
  const timeout = setTimeout(() => child.kill('SIGKILL'), 20_000);
  try {
    await listening;
  } finally {
    clearTimeout(timeout);
  }
  return { ...node, child, exited };
}

function payload(sequence: number): Buffer {
  const bytes = 512 + (sequence % 7) * 700;
  const data = Buffer.alloc(bytes, sequence % 251);
  data.write(`kura-it:${sequence}:`, 0, 'utf8');
  return data;
}

async function waitFor(what: string, condition: () => boolean, timeoutMs: number): Promise<void> {
  const startedAt = Date.now();
  while (!condition()) {
    if (Date.now() - startedAt > timeoutMs) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('kura extent-node processes', () => {
  it('loses no acknowledged append and serves nothing corrupt when a node is killed -9 mid-stream', async (t: TestContext) => {
    const root = await mkdtemp(join(tmpdir(), 'kura-en-'));
    const network = new TcpNetwork();
    const manager = new FakeStreamManager({ network });
    const server = await serveStreamManager(network, '127.0.0.1:0', manager);
    const nodes: NodeProcess[] = [];
    try {
      for (const nodeId of ['en1', 'en2', 'en3', 'en4']) {
        nodes.push(await spawnNode({ nodeId, address: `127.0.0.1:${await freePort()}`, disk: join(root, nodeId) }, server.address));
      }
      await waitFor('4 registrations', () => manager.nodes.size === 4, 20_000);
      manager.excluded.add('en4');
      const stream = await manager.createStream({ name: 'it' });
      const client = new StreamClient({ manager, network, clock: new SystemClock(), clientId: 'it-client' });
      const victim = nodes[1];
      assert.ok(victim !== undefined);
      const acked = new Map<number, StreamAppendResult>();
      let failedAppends = 0;
      let nextSequence = 0;
      let killedAt = -1;
      const startedAt = Date.now();
      const appender = async (): Promise<void> => {
        while (nextSequence < appendsTotal && Date.now() - startedAt < runTimeMaxMs) {
          const sequence = nextSequence++;
          if (sequence === killAfterAppends) {
            killedAt = acked.size;
            victim.child.kill('SIGKILL');
            manager.excluded.delete('en4');
            manager.excluded.add(victim.nodeId);
          }
          try {
            acked.set(sequence, await client.append(stream.streamId, payload(sequence)));
          } catch {
            failedAppends += 1;
          }
        }
      };
      await Promise.all(Array.from({ length: appendersConcurrent }, appender));
      await victim.exited;
      const restarted = await spawnNode(victim, server.address);
      nodes[1] = restarted;
      const heartbeatsBefore = manager.heartbeats;
      await waitFor('the restarted node to heartbeat', () => manager.heartbeats > heartbeatsBefore + 3, 20_000);

      const view = await manager.getStream(stream.streamId);
      let lost = 0;
      let corruptServed = 0;
      let replicaReads = 0;
      for (const [sequence, ack] of acked) {
        const expected = payload(sequence);
        const bytes = await client.read(ack.extentId, ack.offset, ack.length, { streamId: stream.streamId });
        if (!bytes.equals(expected)) corruptServed += 1;
        const extent = view.extents.find((candidate) => candidate.extentId === ack.extentId);
        assert.ok(extent !== undefined);
        for (const replica of extent.replicas) {
          replicaReads += 1;
          try {
            const copy = await callRead({ network, address: replica.address, deadlineMs: 5000 }, { extentId: ack.extentId, offset: ack.offset, length: ack.length });
            if (!copy.equals(expected)) corruptServed += 1;
          } catch (error) {
            lost += 1;
            t.diagnostic(`append ${sequence} missing on ${replica.nodeId}: ${String(error)}`);
          }
        }
      }
      t.diagnostic(`${acked.size} acknowledged appends, ${lost} lost, ${corruptServed} corrupt served (checked ${replicaReads} replica reads, incl. the node killed -9 after ${killedAt} acks and restarted)`);
      t.diagnostic(`appends failed to the caller ${failedAppends}, seals ${manager.seals}, extents ${view.extents.length}, client retries ${client.stats().appendRetries}, found after seal ${client.stats().appendsFoundAfterSeal}`);
      assert.equal(lost, 0);
      assert.equal(corruptServed, 0);
      assert.ok(acked.size >= appendsTotal - failedAppends && acked.size > killAfterAppends, `acked ${acked.size}`);
      assert.ok(view.extents.length >= 2, 'the kill sealed the extent and the stream moved on');

      for (const node of nodes) node.child.kill('SIGTERM');
      const codes = await Promise.all(nodes.map((node) => node.exited));
      assert.deepEqual(codes, [0, 0, 0, 0], 'graceful shutdown on SIGTERM');
    } finally {
      for (const node of nodes) if (node.child.exitCode === null) node.child.kill('SIGKILL');
      await server.close();
      await network.close();
      await rm(root, { recursive: true, force: true });
    }
  });
});
