// A whole cluster of real processes on 127.0.0.1 (docs/cluster.md): etcd, two `kura controller`s
// (one leads), three `kura extent-node`s in three fault domains, two `kura partition-server`s and
// two `kura frontend`s, driven by the official Azure SDK through either front end.
//
// 1. Blobs uploaded through one front end read back byte-exact through the other.
// 2. Under a steady upload load, the leading controller is killed with SIGKILL: the standby leads
//    once the lease expires (figure: seconds); every extent node adopts the new leader's epoch
//    (node.json), so older views are refused and writers must fetch views from the new leader;
//    writes continue past that point, and every acknowledged blob reads back byte-exact.
// 3. The killed controller comes back as a standby; SIGTERM of the leader hands over at once
//    (figure: ms) and exits 0; a front end stopped with SIGTERM exits 0 while the other serves.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ContainerClient } from '@azure/storage-blob';
import { frontendDrainTimeoutMs } from '../../src/constants.ts';
import { containerAt, payload, readBack, sha } from '../helpers/blob-ledger.ts';
import { counterValue, raceUntilRetried } from '../helpers/blob-races.ts';
import { freePort } from '../helpers/kura-serve.ts';
import { RoleProcess, adminGet, useClusterBase } from '../helpers/role-process.ts';

const leaseTtlMs = 2_000;
const writersConcurrent = 2;
const acksBeforeKill = 30;
const acksAfterTakeoverMin = 30;
const writePhaseMaxMs = 90_000;
const takeoverTimeoutMs = 60_000;
const racePairsMax = 50;

interface Ledger {
  readonly digests: Map<string, string>;
  failures: number;
  lastAckMs: number;
  longestGapMs: number;
}

function containerVia(frontend: RoleProcess, name: string): ContainerClient {
  return containerAt(frontend.addressOf('frontend listening'), name);
}

/** The lowest highestEpoch among the nodes' node.json files (0 if one is unreadable). */
async function nodesEpoch(disks: readonly string[]): Promise<number> {
  let lowest = Number.MAX_SAFE_INTEGER;
  for (const disk of disks) {
    try {
      const parsed = JSON.parse(await readFile(join(disk, 'node.json'), 'utf8')) as { highestEpoch?: number };
      lowest = Math.min(lowest, parsed.highestEpoch ?? 0);
    } catch {
      return 0;
    }
  }
  return lowest;
}

describe('cluster roles: 2 controllers, 3 extent nodes, 2 partition servers, 2 front ends on etcd', () => {
  const clusterBase = useClusterBase('cluster');

  it('SDK through either front end; kill -9 of the leading controller: the standby leads, writes continue, 0 acknowledged lost', async (t) => {
    const { root, endpoints } = await clusterBase();
    const controllerAddresses = [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`];
    const managers = controllerAddresses.join(',');
    const controllerArgs = (index: number): string[] => [
      'controller', '--etcd', endpoints, '--listen', controllerAddresses[index] ?? '', '--controller-id', `c${index + 1}`, '--admin', '127.0.0.1:0',
      '--lease-ttl-ms', String(leaseTtlMs), '--tick-ms', '200', '--repair-interval-ms', '60000',
    ];
    const startedMs = Date.now();
    let c1 = await RoleProcess.start('c1', controllerArgs(0), 'controller leading');
    const c2 = await RoleProcess.start('c2', controllerArgs(1), 'controller standby');
    assert.deepEqual(pick(await adminGet(c1.addressOf('admin server listening'), '/readyz')), { status: 200, role: 'leader' });
    assert.deepEqual(pick(await adminGet(c2.addressOf('admin server listening'), '/readyz')), { status: 200, role: 'standby' });
    const disks = ['en1', 'en2', 'en3'].map((nodeId) => join(root, nodeId));
    for (const [index, nodeId] of ['en1', 'en2', 'en3'].entries()) {
      await RoleProcess.start(nodeId, [
        'extent-node', '--disk', disks[index] ?? '', '--fault-domain', `fd${index}`, '--upgrade-domain', `ud${index}`,
        '--listen', `127.0.0.1:${await freePort()}`, '--manager', managers, '--node-id', nodeId,
      ], 'extent node listening');
    }
    for (const serverId of ['ps-a', 'ps-b']) {
      await RoleProcess.start(serverId, [
        'partition-server', '--etcd', endpoints, '--stream-manager', managers, '--listen', '127.0.0.1:0', '--server-id', serverId, '--lease-ttl-ms', String(leaseTtlMs),
      ], 'partition server listening');
    }
    // Started together on a fresh cluster: both may try to create devstoreaccount1; one row results.
    const frontends = await Promise.all(['fe1', 'fe2'].map((name) => RoleProcess.start(name, ['frontend', '--etcd', endpoints, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'], 'frontend listening')));
    const [fe1, fe2] = frontends as [RoleProcess, RoleProcess];
    t.diagnostic(`cluster of 9 processes ready in ${Date.now() - startedMs} ms`);
    assert.deepEqual(pick(await adminGet(fe1.addressOf('admin server listening'), '/readyz')), { status: 200, role: undefined });

    // 1. Through either front end.
    const via = [containerVia(fe1, 'photos'), containerVia(fe2, 'photos')] as const;
    const through = (index: number): ContainerClient => (index % 2 === 0 ? via[0] : via[1]);
    await via[0].create();
    const ledger: Ledger = { digests: new Map(), failures: 0, lastAckMs: Date.now(), longestGapMs: 0 };
    for (let index = 0; index < 10; index++) {
      const name = `cross-${index}`;
      const bytes = payload(name, 1024 * (1 + index * 7));
      await through(index).getBlockBlobClient(name).uploadData(bytes);
      ledger.digests.set(name, sha(bytes));
    }
    const crossed = await readBack([via[1], via[0]], ledger.digests);
    assert.deepEqual(crossed, { lost: [], corrupt: [], unreadable: [] });
    t.diagnostic('10 blobs uploaded through one front end read back byte-exact through the other');
    // Two conditional Puts racing through the two front ends: the loser's retry is counted where it ran.
    const raceRetries = async (): Promise<number> => {
      const expositions = await Promise.all(frontends.map(async (frontend) => String((await adminGet(frontend.addressOf('admin server listening'), '/metrics')).body)));
      return expositions.reduce((sum, text) => sum + counterValue(text, 'kura_blob_race_retries_total'), 0);
    };
    await via[0].getBlockBlobClient('raced').upload(Buffer.from('first'), 5);
    const races = await raceUntilRetried([via[0].getBlockBlobClient('raced'), via[1].getBlockBlobClient('raced')], raceRetries, racePairsMax);
    t.diagnostic(`${races.pairs} racing pair(s) of conditional Put Blob through fe1 and fe2: ${races.refused} answered 412, kura_blob_race_retries_total ${races.retries} (fe1 + fe2)`);
    assert.ok(races.retries >= 1, `no race retry counted in ${races.pairs} pairs`);

    // 2. kill -9 of the leader under load.
    const c2LinesBefore = c2.lines.length;
    let killedAtMs = 0;
    let takeoverMs = 0;
    let newEpoch = 0;
    let fencedAtMs = 0;
    let acksAfterFence = 0;
    const done = (): boolean => fencedAtMs > 0 && acksAfterFence >= acksAfterTakeoverMin;
    const watchTakeover = async (): Promise<void> => {
      const leading = await c2.waitFor('controller leading', takeoverTimeoutMs, c2LinesBefore);
      takeoverMs = Date.now() - killedAtMs;
      newEpoch = Number(leading['epoch']);
      // Nodes adopt the new epoch at their next heartbeat (every 2 s): from then on they refuse
      // views of the old leader, so every later acknowledgement used a view from the new one.
      while (Date.now() - killedAtMs < takeoverTimeoutMs && (await nodesEpoch(disks)) < newEpoch) await new Promise((resolve) => setTimeout(resolve, 100));
      if ((await nodesEpoch(disks)) >= newEpoch) fencedAtMs = Date.now();
    };
    let takeover: Promise<void> = Promise.resolve();
    const writer = async (writerId: number): Promise<void> => {
      const phaseStartMs = Date.now();
      for (let sequence = 0; !done() && Date.now() - phaseStartMs < writePhaseMaxMs; sequence++) {
        const name = `w${writerId}-${String(sequence).padStart(5, '0')}`;
        const bytes = payload(name, 4096 + ((sequence * 7919) % 60_000));
        for (;;) {
          try {
            const sentMs = Date.now();
            await through(writerId + sequence).getBlockBlobClient(name).uploadData(bytes);
            ledger.digests.set(name, sha(bytes));
            ledger.longestGapMs = Math.max(ledger.longestGapMs, Date.now() - ledger.lastAckMs);
            ledger.lastAckMs = Date.now();
            if (fencedAtMs > 0 && sentMs > fencedAtMs) acksAfterFence += 1;
            break;
          } catch {
            ledger.failures += 1;
            if (Date.now() - phaseStartMs > writePhaseMaxMs) return;
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        }
        if (killedAtMs === 0 && ledger.digests.size >= acksBeforeKill + 10) {
          killedAtMs = Date.now();
          void c1.kill9();
          takeover = watchTakeover();
        }
      }
    };
    await Promise.all(Array.from({ length: writersConcurrent }, (_, writerId) => writer(writerId)));
    await takeover;
    assert.ok(killedAtMs > 0, 'the leader was killed mid-load');
    assert.ok(newEpoch > 0 && fencedAtMs > 0, `the standby led and every node adopted its epoch within ${takeoverTimeoutMs} ms`);
    assert.ok(acksAfterFence >= acksAfterTakeoverMin, `writes continued after the nodes fenced the old leader (${acksAfterFence})`);
    assert.deepEqual(pick(await adminGet(c2.addressOf('admin server listening'), '/readyz')), { status: 200, role: 'leader' });
    const result = await readBack(via, ledger.digests);
    t.diagnostic(`kill -9 of leader c1: c2 leading after ${(takeoverMs / 1000).toFixed(2)} s (lease TTL ${leaseTtlMs / 1000} s) at stream manager epoch ${newEpoch}; every node at that epoch ${((fencedAtMs - killedAtMs) / 1000).toFixed(2)} s after the kill; ${acksAfterFence} writes acknowledged after that; ${ledger.failures} failed attempts (retried), longest gap between acknowledgements ${ledger.longestGapMs} ms`);
    t.diagnostic(`${ledger.digests.size} blobs acknowledged, ${result.lost.length} lost, ${result.corrupt.length} corrupt, ${result.unreadable.length} unreadable`);
    assert.deepEqual(result, { lost: [], corrupt: [], unreadable: [] });

    // 3. The old leader returns as a standby; SIGTERM of the leader hands over at once.
    c1 = await RoleProcess.start('c1', controllerArgs(0), 'controller standby');
    const c1Lines = c1.lines.length;
    const stopAtMs = Date.now();
    assert.equal(await c2.stop(), 0, 'the leader exits 0 on SIGTERM');
    await c1.waitFor('controller leading', takeoverTimeoutMs, c1Lines);
    t.diagnostic(`SIGTERM of leader c2: c1 leading after ${Date.now() - stopAtMs} ms`);
    const last = payload('after-handover', 10_000);
    await via[1].getBlockBlobClient('after-handover').uploadData(last);
    assert.equal(sha(await via[0].getBlockBlobClient('after-handover').downloadToBuffer()), sha(last));
    // Its SDK client still holds keep-alive sockets: they are closed, not waited for.
    const frontendStopAtMs = Date.now();
    assert.equal(await fe1.stop(), 0, 'a front end exits 0 on SIGTERM');
    const frontendStopMs = Date.now() - frontendStopAtMs;
    t.diagnostic(`SIGTERM of front end fe1 (idle keep-alive sockets held): exit 0 in ${frontendStopMs} ms`);
    assert.ok(frontendStopMs < frontendDrainTimeoutMs, `the front end's stop took ${frontendStopMs} ms: it waited for idle connections`);
    assert.equal(sha(await via[1].getBlockBlobClient('cross-3').downloadToBuffer()), ledger.digests.get('cross-3'));
  });
});

function pick(answer: { status: number; body: unknown }): { status: number; role: unknown } {
  const body = answer.body as { role?: unknown };
  return { status: answer.status, role: body.role };
}
