// The admin port of real processes on 127.0.0.1: a `kura stream-manager` and `kura extent-node`s,
// each started with `--admin 127.0.0.1:0`, scraped over HTTP as Prometheus would.
//
// 1. Node loss: with three nodes in three fault domains and three replicas per extent, one node
//    is killed -9. Within a bounded wait the manager's /metrics must show
//    kura_extents_below_target > 0 (the alert's condition: there is no fourth domain to copy to);
//    a fourth node is started, and within a bounded wait the gauge must be back at 0, with the
//    copy visible as kura_rereplication_bytes_total on the new node.
// 2. Corruption (P2): one bit of a block body is flipped in an extent file on a node's real disk
//    (position from docs/formats/extent-file.md); a read through the node must fail with
//    extent.corrupt, its /metrics must show kura_extent_corruption_total up by one, and /readyz
//    must still answer 200 (a corrupt replica is repaired elsewhere; the node keeps serving).
// Every process is killed in after() if a test left it running. Figures: detection and repair
// times, bytes copied, corruption counts.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, open, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { TcpNetwork } from '../../src/rpc/tcp-network.ts';
import { callRead } from '../../src/stream/extent-node-rpc.ts';
import { StreamClient } from '../../src/stream/stream-client.ts';
import { StreamManagerProxy } from '../../src/stream/stream-manager-proxy.ts';
import { SystemClock } from '../../src/util/clock.ts';
import { isStorageError } from '../../src/util/errors.ts';

const repoRoot = join(import.meta.dirname, '..', '..');
const nodeBinary = join(repoRoot, 'node_modules', '.bin', 'node');
const kuraEntry = join(repoRoot, 'src', 'main', 'kura.ts');
/** Heartbeat timeout (10 s) + a repair interval + slack for a seal that waits on the dead node. */
const lossDetectionWaitMaxMs = 45_000;
const repairWaitMaxMs = 45_000;
const startWaitMaxMs = 90_000;
const extentHeaderBytes = 64;
const blockHeaderBytes = 40;

interface KuraProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  /** RPC address (from the "... listening" log line). */
  readonly address: string;
  /** Admin HTTP base URL (from "admin server listening"). */
  readonly admin: string;
}

/** Every process spawned, so after() can kill what a failed test left running. */
const running: { readonly child: ChildProcess; readonly exited: Promise<number | null> }[] = [];
const roots: string[] = [];

after(async () => {
  for (const process of running) if (process.child.exitCode === null && process.child.signalCode === null) process.child.kill('SIGKILL');
  await Promise.all(running.map((process) => process.exited));
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

/** Spawns `kura <args>` and resolves once it logged both its RPC and its admin address (bounded). */
async function spawnKura(name: string, args: readonly string[], listeningMessage: string): Promise<KuraProcess> {
  const child = spawn(nodeBinary, [kuraEntry, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  running.push({ child, exited });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString('utf8'); });
  let address = '';
  let admin = '';
  const started = new Promise<void>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout ?? process.stdin });
    lines.on('line', (line) => {
      const entry = JSON.parse(line) as { msg?: string; address?: string };
      if (entry.msg === listeningMessage) address = entry.address ?? '';
      if (entry.msg === 'admin server listening') admin = `http://${entry.address ?? ''}`;
      if (address !== '' && admin !== '') resolve();
    });
    void exited.then((code) => reject(new Error(`${name} exited ${code} before listening: ${stderr}`)));
  });
  const timeout = setTimeout(() => child.kill('SIGKILL'), startWaitMaxMs);
  try {
    await started;
  } finally {
    clearTimeout(timeout);
  }
  return { name, child, exited, address, admin };
}

async function spawnNode(root: string, nodeId: string, managerAddress: string): Promise<KuraProcess> {
  return spawnKura(nodeId, [
    'extent-node', '--disk', join(root, nodeId), '--fault-domain', `fd-${nodeId}`, '--upgrade-domain', `ud-${nodeId}`,
    '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--manager', managerAddress, '--node-id', nodeId, '--log-level', 'info',
    // Part 2 reads a block whose bit it flipped on disk and expects the read to find it: with the
    // read cache on, a block re-replication just read is served from verified memory for up to
    // 30 s (rot is then found by scrub; test/unit/stream/extent-read-cache.test.ts).
    '--read-cache-mib', '0',
  ], 'extent node listening');
}

async function get(url: string): Promise<{ status: number; body: string }> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  return { status: response.status, body: await response.text() };
}

/** The value of the first sample of `name` whose labels include `labels` (Prometheus text). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | null {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    const labelText = match[2] ?? '';
    if (Object.entries(labels).every(([key, value]) => labelText.includes(`${key}="${value}"`))) return Number(match[3]);
  }
  return null;
}

async function scrape(process: KuraProcess, name: string, labels: Record<string, string> = {}): Promise<number | null> {
  const { status, body } = await get(`${process.admin}/metrics`);
  assert.equal(status, 200);
  return sample(body, name, labels);
}

/** Polls `check` every 250 ms until it returns true; fails after `waitMaxMs`. Returns the time taken. */
async function waitFor(what: string, waitMaxMs: number, check: () => Promise<boolean>): Promise<number> {
  const startedAt = Date.now();
  while (Date.now() - startedAt < waitMaxMs) {
    if (await check()) return Date.now() - startedAt;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  assert.fail(`${what}: not within ${waitMaxMs} ms`);
}

/** The first data block of some extent file on `disk` that holds one: file, extent id. */
async function findDataBlock(disk: string): Promise<{ path: string; extentId: number }> {
  for (const name of (await readdir(join(disk, 'extents'))).filter((candidate) => candidate.endsWith('.ext')).sort()) {
    const path = join(disk, 'extents', name);
    const file = await open(path, 'r');
    try {
      const header = Buffer.alloc(blockHeaderBytes);
      const { bytesRead } = await file.read(header, 0, blockHeaderBytes, extentHeaderBytes);
      // "KBLK", kind 1 (data) — docs/formats/extent-file.md, record header.
      if (bytesRead === blockHeaderBytes && header.toString('latin1', 0, 4) === 'KBLK' && header[5] === 1) {
        return { path, extentId: Number.parseInt(name.slice(0, 16), 16) };
      }
    } finally {
      await file.close();
    }
  }
  assert.fail(`no extent file with a data block on ${disk}`);
}

async function flipBit(path: string, position: number): Promise<void> {
  const file = await open(path, 'r+');
  try {
    const byte = Buffer.alloc(1);
    await file.read(byte, 0, 1, position);
    byte[0] = (byte[0] ?? 0) ^ 0x10;
    await file.write(byte, 0, 1, position);
    await file.sync();
  } finally {
    await file.close();
  }
}

describe('admin ports of kura processes', () => {
  it('shows extents below target after a node is killed -9, 0 after repair, and a flipped bit as corruption', async (t) => {
    const root = await mkdtemp(join(tmpdir(), 'kura-obs-'));
    roots.push(root);
    const manager = await spawnKura('stream-manager', [
      'stream-manager', '--meta', join(root, 'sm'), '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--replicas', '3', '--repair-interval-ms', '500', '--log-level', 'info',
    ], 'stream manager listening');
    assert.equal((await get(`${manager.admin}/healthz`)).status, 200);
    assert.equal((await get(`${manager.admin}/readyz`)).status, 200);
    const nodes = new Map<string, KuraProcess>();
    for (const nodeId of ['en1', 'en2', 'en3']) nodes.set(nodeId, await spawnNode(root, nodeId, manager.address));
    for (const node of nodes.values()) {
      await waitFor(`${node.name} registered`, startWaitMaxMs, async () => (await get(`${node.admin}/readyz`)).body.includes('"serving"'));
    }
    const network = new TcpNetwork({ clock: new SystemClock() });
    try {
      const proxy = new StreamManagerProxy({ network, address: manager.address });
      const client = new StreamClient({ manager: proxy, network, clock: new SystemClock(), clientId: 'obs-it' });
      const stream = await proxy.createStream({ name: 'obs' });
      assert.equal(stream.extents[0]?.replicas.length, 3);
      for (let i = 0; i < 16; i++) await client.append(stream.streamId, Buffer.alloc(4096, i));
      assert.equal(await scrape(manager, 'kura_extents_below_target'), 0, 'healthy before the kill');

      // 1. Node loss, then repair onto a fourth node.
      const victim = nodes.get('en3');
      assert.ok(victim !== undefined);
      victim.child.kill('SIGKILL');
      await victim.exited;
      let belowWhileLost = 0;
      const detectedMs = await waitFor('kura_extents_below_target > 0 after the kill', lossDetectionWaitMaxMs, async () => {
        belowWhileLost = (await scrape(manager, 'kura_extents_below_target')) ?? 0;
        return belowWhileLost > 0;
      });
      nodes.set('en4', await spawnNode(root, 'en4', manager.address));
      const spare = nodes.get('en4');
      assert.ok(spare !== undefined);
      const repairedMs = await waitFor('kura_extents_below_target back to 0 after en4 joined', repairWaitMaxMs, async () => (await scrape(manager, 'kura_extents_below_target')) === 0);
      const copiedBytes = (await scrape(spare, 'kura_rereplication_bytes_total', { node: 'en4' })) ?? 0;
      assert.ok(copiedBytes > 0, 'the repair copied to en4');
      t.diagnostic(`en3 killed -9: kura_extents_below_target ${belowWhileLost} after ${detectedMs} ms (heartbeat timeout 10 s); en4 started: back to 0 after ${repairedMs} ms, kura_rereplication_bytes_total{node="en4"} ${copiedBytes}`);

      // 2. A flipped bit in a block body on en1's disk, read through en1.
      const corrupted = nodes.get('en1');
      assert.ok(corrupted !== undefined);
      const before = await scrape(corrupted, 'kura_extent_corruption_total', { node: 'en1' });
      assert.equal(before, 0, 'the counter exists at 0');
      const block = await findDataBlock(join(root, 'en1'));
      await flipBit(block.path, extentHeaderBytes + blockHeaderBytes + 100);
      await assert.rejects(
        callRead({ network, address: corrupted.address, deadlineMs: 5000 }, { extentId: block.extentId, offset: 0, length: 512 }),
        (error: unknown) => isStorageError(error, 'extent.corrupt'),
      );
      const afterCount = await scrape(corrupted, 'kura_extent_corruption_total', { node: 'en1' });
      assert.equal(afterCount, 1);
      const corruptReads = await scrape(corrupted, 'kura_extent_read_seconds_count', { node: 'en1', status: 'extent.corrupt' });
      assert.equal(corruptReads, 1);
      const ready = await get(`${corrupted.admin}/readyz`);
      assert.equal(ready.status, 200, ready.body);
      assert.equal(await scrape(corrupted, 'kura_extent_node_failed', { node: 'en1' }), 0);
      t.diagnostic(`bit flipped in extent ${block.extentId} on en1's disk: read answered extent.corrupt, kura_extent_corruption_total{node="en1"} ${before} → ${afterCount}, corrupt reads ${corruptReads}, /readyz ${ready.status}`);

      // Graceful shutdown still works with the admin port open.
      const survivors = [...nodes.values()].filter((node) => node !== victim);
      for (const node of [...survivors, manager]) node.child.kill('SIGTERM');
      const codes = await Promise.all([...survivors, manager].map((node) => node.exited));
      assert.deepEqual(codes, codes.map(() => 0), 'exit 0 on SIGTERM');
    } finally {
      await network.close();
    }
  });
});
