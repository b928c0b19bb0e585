// `kura serve` durability as a client sees it (P1, P2), with real processes and real fsync:
// - kill -9 right after N acknowledged uploads (more still in flight), restart on the same data:
//   every acknowledged blob is there byte-exact; an upload in flight at the kill is either absent
//   or whole ("N acknowledged, 0 lost").
// - three --disk directories (three replicas), bits flipped in every sealed extent file of one
//   disk while the server is down: every download after the restart is still byte-exact (the
//   corrupt replica's blocks fail their CRC and another replica serves). The extents are sealed
//   first by a restart (loading a partition seals its streams' tails). Not covered yet: bits
//   flipped in the last blocks of a still-open extent, which recovery cuts off as a torn tail
//   (extent-file.ts dropDamagedTail) although they were durable and acknowledged, so the seal's
//   minimum length then cuts them from every replica.
// Payloads are unique and self-checking (name, sequence and random bytes; SHA-256 kept by the test).
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { after, test } from 'node:test';
import { cleanupServes, KuraServe, tempDisks } from '../helpers/kura-serve.ts';
import { container, downloadAll, flipBits, payload, serveWithContainer, sha } from '../helpers/blob-ledger.ts';

after(cleanupServes);

test('kill -9 right after N acknowledged uploads: after the restart every acknowledged blob is there, byte-exact', { timeout: 300_000 }, async (t) => {
  const disks = await tempDisks(3, 'kill9');
  const { serve: first, box } = await serveWithContainer(disks, 'ledger');
  const acknowledged = new Map<string, string>();
  const inFlight = new Map<string, string>();
  const target = 150;
  let next = 0;
  let killed = false;
  const writer = async (): Promise<void> => {
    while (!killed) {
      const name = `w/${String(next++).padStart(5, '0')}.bin`;
      const body = payload(name, randomInt(100, 300_000));
      inFlight.set(name, sha(body));
      try {
        await box.getBlockBlobClient(name).upload(body, body.length);
        acknowledged.set(name, sha(body)); // acknowledged, even if the kill was already decided
        inFlight.delete(name);
      } catch {
        return; // the server died under it: outcome unknown, stays in inFlight
      }
      if (acknowledged.size >= target && !killed) {
        killed = true;
        await first.kill9();
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, () => writer()));
  const second = await KuraServe.start({ disks });
  t.diagnostic(`restart after kill -9 with ${acknowledged.size} blobs: ${second.readyMs} ms to ready`);
  const after9 = container(second, 'ledger');
  const result = await downloadAll(after9, acknowledged);
  let whole = 0;
  for (const [name, digest] of inFlight) {
    const blob = after9.getBlockBlobClient(name);
    if (!(await blob.exists())) continue;
    assert.equal(sha(await blob.downloadToBuffer()), digest, `in-flight ${name} is all or nothing`);
    whole += 1;
  }
  t.diagnostic(`${acknowledged.size} acknowledged, ${result.lost.length} lost, ${result.corrupt.length} corrupt; ${inFlight.size} in flight at the kill: ${whole} whole, ${inFlight.size - whole} absent, 0 torn`);
  assert.deepEqual(result.lost, []);
  assert.deepEqual(result.corrupt, []);
  assert.ok(acknowledged.size >= target);
  assert.equal(await second.stop(), 0);
});

test('kill -9 with more than 4 MiB of small blobs in the commit log: the restart replays it and serves every one', { timeout: 300_000 }, async (t) => {
  // Small Put Blob bodies live in the commit log (inline bodies) until a checkpoint spills them,
  // so the replay after a crash reads a log larger than one RPC frame. It once read it in 8 MiB
  // pieces that no extent.read answer could carry (wire.too_large): the partition never loaded.
  const disks = await tempDisks(1, 'biglog');
  // 64 KiB bodies inline (the default is 16 KiB): 6 MiB of bodies in the log from 96 Puts.
  const inline = ['--inline-body-bytes', '65536'];
  const { serve: first, box } = await serveWithContainer(disks, 'biglog', inline);
  const acknowledged = new Map<string, string>();
  const count = 96; // 96 × 64 KiB = 6 MiB of bodies in the log
  for (let i = 0; i < count; i += 16) {
    await Promise.all(Array.from({ length: 16 }, async (_, j) => {
      const name = `small/${String(i + j).padStart(3, '0')}`;
      const body = payload(name, 65_536 - name.length - 1);
      await box.getBlockBlobClient(name).upload(body, body.length);
      acknowledged.set(name, sha(body));
    }));
  }
  await first.kill9();
  const second = await KuraServe.start({ disks, extraArgs: inline });
  t.diagnostic(`restart after kill -9 with ${acknowledged.size} × 64 KiB blobs in the log: ${second.readyMs} ms to ready`);
  const result = await downloadAll(container(second, 'biglog'), acknowledged);
  assert.deepEqual({ lost: result.lost, corrupt: result.corrupt }, { lost: [], corrupt: [] });
  assert.equal(await second.stop(), 0);
});

test('bits flipped in every sealed extent file of one of three disks: every download is still byte-exact', { timeout: 300_000 }, async (t) => {
  const disks = await tempDisks(3, 'bitrot');
  const { serve: first, box } = await serveWithContainer(disks, 'rot');
  const stored = new Map<string, string>();
  for (let index = 0; index < 40; index++) {
    const name = `r/${index}.bin`;
    const body = payload(name, index % 4 === 0 ? 2 * 1024 * 1024 : randomInt(1000, 200_000));
    await box.getBlockBlobClient(name).upload(body, body.length);
    stored.set(name, sha(body));
  }
  assert.equal(await first.stop(), 0);
  // A restart seals every tail the uploads wrote (partition load), so all data is in sealed extents.
  const sealer = await KuraServe.start({ disks });
  assert.equal(await sealer.stop(), 0);
  const victim = disks[1] ?? '';
  const flipped = await flipBits(victim, 64);
  assert.ok(flipped.files > 0, 'the victim disk holds extent files');
  const second = await KuraServe.start({ disks });
  const result = await downloadAll(container(second, 'rot'), stored);
  t.diagnostic(`${flipped.bits} bits flipped in ${flipped.files} extent files of disk 1; ${stored.size} blobs: ${result.present} present, ${result.corrupt.length} corrupt served, ${result.lost.length} lost`);
  assert.deepEqual(result.lost, []);
  assert.deepEqual(result.corrupt, []);
  assert.equal(await second.stop(), 0);
});
