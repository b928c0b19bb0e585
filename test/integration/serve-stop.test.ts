// `kura serve`'s stop on SIGTERM is bounded (stampStopTimeoutMs; src/stamp/embedded-stamp.ts):
// - with SDK clients uploading blocks over keep-alive connections, idle keep-alive connections
//   and a request whose body stalls half-way, SIGTERM exits 0 within the bound; every block
//   acknowledged before the exit is there after a restart (drain, then cut: nothing acknowledged
//   is lost, the stuck request is cut, not waited for for its 60 s idle timeout);
// - with its data directories deleted under it (the case where a failing extent node's stop used
//   to keep the other nodes, and their heartbeat timers, alive forever), SIGTERM still exits
//   within the bound, with code 1 and the failed step named.
// Figures: time from SIGTERM to exit, requests cut, blocks acknowledged and found.
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import { Readable } from 'node:stream';
import { after, test } from 'node:test';
import type { ContainerClient } from '@azure/storage-blob';
import { stampStopTimeoutMs } from '../../src/constants.ts';
import { container, payload, serveWithContainer } from '../helpers/blob-ledger.ts';
import { cleanupServes, KuraServe, tempDisks } from '../helpers/kura-serve.ts';

after(cleanupServes);

/** The stop's bound plus the watchdog's slack: exiting later than this is the bug. */
const exitBoundMs = stampStopTimeoutMs + 5_000;

const blockId = (writer: number, sequence: number): string => Buffer.from(`w${writer}-${String(sequence).padStart(6, '0')}`).toString('base64');

/** An authenticated Put Block whose head and first 64 KiB arrive, then nothing: a stuck upload
 * (the SDK sends Content-Length 8 MiB and a body that stalls). Settles when the server cuts it. */
function stalledUpload(box: ContainerClient): Promise<unknown> {
  const body = new Readable({ read() { /* the rest never comes */ } });
  body.push(Buffer.alloc(64 * 1024));
  return box.getBlockBlobClient('stuck').stageBlock(blockId(99, 0), () => body, 8 * 1024 * 1024).then(() => 'acknowledged', (error: unknown) => error);
}

/** Keep-alive connections left idle after one answered request each. */
async function idleKeepAlive(port: number, count: number): Promise<Agent> {
  const agent = new Agent({ keepAlive: true, maxSockets: count });
  await Promise.all(Array.from({ length: count }, () => new Promise<void>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/devstoreaccount1?comp=list', agent }, (res) => {
      res.resume();
      res.once('end', () => resolve());
    });
    req.once('error', reject);
    req.end();
  })));
  return agent;
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('SIGTERM with keep-alive clients, uploads in flight and a stalled body: exit 0 within the bound, every acknowledged block kept', { timeout: 180_000 }, async (t) => {
  const disks = await tempDisks(1, 'stop');
  const { serve, box } = await serveWithContainer(disks, 'box');
  const acknowledged = new Map<string, Set<string>>();
  let stopping = false;
  let refused = 0;
  const writer = async (index: number): Promise<void> => {
    const name = `blob-${index}`;
    const ids = new Set<string>();
    acknowledged.set(name, ids);
    for (let sequence = 0; !stopping; sequence++) {
      const body = payload(`${name}/${sequence}`, 256 * 1024 + index * 4096);
      const id = blockId(index, sequence);
      try {
        await box.getBlockBlobClient(name).stageBlock(id, body, body.length);
        ids.add(id);
      } catch {
        refused += 1; // refused or cut by the stop: not acknowledged
        return;
      }
    }
  };
  const writers = Array.from({ length: 8 }, (_, index) => writer(index));
  const agent = await idleKeepAlive(serve.port, 4);
  const stuck = stalledUpload(box);
  await waitUntil(() => [...acknowledged.values()].every((ids) => ids.size >= 2), 60_000);
  const startMs = Date.now();
  const code = await serve.stop();
  const exitMs = Date.now() - startMs;
  stopping = true;
  await Promise.all(writers);
  agent.destroy();
  assert.notEqual(await stuck, 'acknowledged', 'the stalled upload cannot have been acknowledged');
  const staged = [...acknowledged.values()].reduce((sum, ids) => sum + ids.size, 0);
  t.diagnostic(`SIGTERM -> exit ${code} in ${exitMs} ms (bound ${exitBoundMs} ms); ${staged} blocks acknowledged by 8 writers, ${refused} writers ended by a refused or cut request; ${/(\d+) requests? cut/.exec(serve.stdout)?.[1] ?? '?'} requests cut after the drain`);
  assert.equal(code, 0, serve.stderr.slice(-2000));
  assert.ok(exitMs < exitBoundMs, `exit took ${exitMs} ms`);
  const again = await KuraServe.start({ disks });
  const box2 = container(again, 'box');
  let found = 0;
  for (const [name, ids] of acknowledged) {
    if (ids.size === 0) continue;
    const list = await box2.getBlockBlobClient(name).getBlockList('uncommitted');
    const present = new Set((list.uncommittedBlocks ?? []).map((block) => block.name));
    for (const id of ids) if (present.has(id)) found += 1;
  }
  t.diagnostic(`after the restart: ${found} of ${staged} acknowledged blocks present`);
  assert.equal(found, staged);
  assert.equal(await again.stop(), 0);
});

test('SIGTERM after the data directories were deleted under kura serve: it still exits within the bound, code 1 naming the failed step', { timeout: 120_000 }, async (t) => {
  const disks = await tempDisks(3, 'stop-rm');
  const { serve, box } = await serveWithContainer(disks, 'box');
  const body = payload('before', 300_000);
  await box.getBlockBlobClient('before').upload(body, body.length);
  for (const disk of disks) await rm(disk, { recursive: true, force: true });
  // Let writes and heartbeats meet the missing directories first (the failing state), bounded.
  const failed = await box.getBlockBlobClient('after').upload(body, body.length).then(() => false, () => true);
  const startMs = Date.now();
  const code = await serve.stop();
  const exitMs = Date.now() - startMs;
  t.diagnostic(`upload after the deletion ${failed ? 'failed' : 'succeeded (in memory until its extent fails)'}; SIGTERM -> exit ${code} in ${exitMs} ms (bound ${exitBoundMs} ms)`);
  assert.ok(exitMs < exitBoundMs, `exit took ${exitMs} ms`);
  assert.equal(code, 1);
  assert.match(serve.stderr, /kura serve: stopped in \d+ ms, not cleanly: .*extentNodes failed/);
});
