// Crash tests of cluster role processes at failpoints mid-commit (src/util/failpoints.ts, armed with
// KURA_FAILPOINTS_AFTER_READY so that SKIP counts the test's writes): etcd, one controller, three
// extent nodes (3 replicas), two partition servers, one front end, the official SDK writing a
// steady load through the front end (a failed attempt retried until acknowledged).
// 1. The partition server that owns the blob partitions dies at partition.commit.after-log-append (a
//    group's log record durable, memory not updated, nobody answered): its lease runs out, the other
//    server loads the partitions (replaying that record), writes go on.
// 2. An extent node, restarted (SIGTERM) with the failpoint, dies at journal.batch.after-fsync (a batch
//    durable in its journal, the appends not told): the writers' extents are sealed over it and
//    extended on the others (with fewer replicas while its fault domain is missing); it is started
//    again without the failpoint (as a supervisor would) and recovers its journal.
// Each time: the process died by the SIGKILL it sent itself, writes are acknowledged after the crash
// (figure: ms from the crash to the first acknowledgement of a write sent after it), and every blob
// acknowledged before or after reads back byte-exact.
import assert from 'node:assert/strict';
import { before, describe, it, type TestContext } from 'node:test';
import { join } from 'node:path';
import type { ContainerClient } from '@azure/storage-blob';
import { containerAt, readBack, startSteadyLoad, type SteadyLoad } from '../helpers/blob-ledger.ts';
import { freePort } from '../helpers/kura-serve.ts';
import { RoleProcess, until, useClusterBase } from '../helpers/role-process.ts';

const leaseTtlMs = 2_000;
const requestTimeoutMs = 10_000;
const crashWithinMs = 30_000;
const acksAfterCrash = 20;
const recoveryWithinMs = 40_000;

interface Cluster {
  readonly endpoints: string;
  readonly managers: string;
  readonly partitionServers: RoleProcess[];
  readonly extentNodes: { readonly role: RoleProcess; readonly args: readonly string[] }[];
  readonly frontend: RoleProcess;
}

/** The role's exit signal once it died (bounded wait). */
async function deathOf(role: RoleProcess): Promise<NodeJS.Signals | null> {
  await until(`${role.name} exits`, () => (role.alive ? null : true), crashWithinMs);
  return role.child.signalCode;
}

/** Waits (bounded) until `acksAfterCrash` writes sent after `crashedAtMs` were acknowledged; ms to the first. */
async function recoveryAfter(load: SteadyLoad, crashedAtMs: number): Promise<number> {
  const after = (): readonly { sentMs: number; ackMs: number }[] => load.acks.filter((ack) => ack.sentMs > crashedAtMs);
  await until(`${acksAfterCrash} writes acknowledged after the crash`, () => (after().length >= acksAfterCrash ? true : null), recoveryWithinMs);
  return Math.min(...after().map((ack) => ack.ackMs)) - crashedAtMs;
}

async function checkAll(t: TestContext, label: string, box: ContainerClient, load: SteadyLoad, recoveryMs: number): Promise<void> {
  await load.stop();
  const result = await readBack([box], load.digests);
  t.diagnostic(`${label}: first write acknowledged ${recoveryMs} ms after the crash; ${load.digests.size} acknowledged, ${result.lost.length} lost, ${result.corrupt.length} corrupt, ${result.unreadable.length} unreadable; ${load.failures} failed attempts (retried), ${load.corruptReads} corrupt of ${load.reads} reads under load`);
  assert.deepEqual(result, { lost: [], corrupt: [], unreadable: [] });
  assert.equal(load.corruptReads, 0);
}

describe('cluster roles crashed at failpoints mid-commit', () => {
  const clusterBase = useClusterBase('cluster-failpoints');
  let cluster: Cluster | null = null;

  before(async () => {
    const { root, endpoints } = await clusterBase();
    const managers = `127.0.0.1:${await freePort()}`;
    await RoleProcess.start('c1', ['controller', '--etcd', endpoints, '--listen', managers, '--controller-id', 'c1', '--lease-ttl-ms', String(leaseTtlMs), '--tick-ms', '200'], 'controller leading');
    const extentNodes: Cluster['extentNodes'] = [];
    for (const index of [1, 2, 3]) {
      const args = ['extent-node', '--disk', join(root, `en${index}`), '--fault-domain', `fd${index}`, '--upgrade-domain', `ud${index}`, '--listen', `127.0.0.1:${await freePort()}`, '--manager', managers, '--node-id', `en${index}`];
      extentNodes.push({ role: await RoleProcess.start(`en${index}`, args, 'extent node listening'), args });
    }
    const partitionServer = (serverId: string, env?: Readonly<Record<string, string>>): Promise<RoleProcess> => RoleProcess.launch({
      name: serverId, ready: 'partition server listening', ...(env === undefined ? {} : { env }),
      args: ['partition-server', '--etcd', endpoints, '--stream-manager', managers, '--listen', '127.0.0.1:0', '--server-id', serverId, '--lease-ttl-ms', String(leaseTtlMs)],
    });
    // ps-a alone first, so it owns every partition; ps-b joins once the front end serves.
    const psA = await partitionServer('ps-a', { KURA_FAILPOINTS_AFTER_READY: 'partition.commit.after-log-append=crash*1+30' });
    const frontend = await RoleProcess.start('fe1', ['frontend', '--etcd', endpoints, '--listen', '127.0.0.1:0'], 'frontend listening');
    const psB = await partitionServer('ps-b');
    cluster = { endpoints, managers, partitionServers: [psA, psB], extentNodes, frontend };
  });

  it('the owning partition server dies at partition.commit.after-log-append; the other serves its partitions, nothing acknowledged lost', { timeout: 60_000 }, async (t) => {
    assert.ok(cluster !== null);
    const box = containerAt(cluster.frontend.addressOf('frontend listening'), 'ledger');
    await box.create();
    const load = startSteadyLoad(box, { writers: 4, requestTimeoutMs });
    const [psA] = cluster.partitionServers as [RoleProcess];
    const signal = await deathOf(psA);
    const crashedAtMs = Date.now();
    const acknowledgedBefore = load.digests.size;
    assert.equal(signal, 'SIGKILL', 'ps-a died at the failpoint');
    const recoveryMs = await recoveryAfter(load, crashedAtMs);
    t.diagnostic(`ps-a died (${signal}) after ${acknowledgedBefore} acknowledged writes`);
    await checkAll(t, 'partition server crash', box, load, recoveryMs);
  });

  it('an extent node dies at journal.batch.after-fsync; restarted, it recovers and writes go on, nothing acknowledged lost', { timeout: 60_000 }, async (t) => {
    assert.ok(cluster !== null);
    const box = containerAt(cluster.frontend.addressOf('frontend listening'), 'ledger2');
    await box.create();
    const load = startSteadyLoad(box, { writers: 4, requestTimeoutMs });
    const { role: en1, args } = cluster.extentNodes[0] ?? assert.fail('en1');
    await until('writes acknowledged', () => (load.digests.size >= 10 ? true : null), recoveryWithinMs);
    assert.equal(await en1.stop(), 0);
    const armed = await RoleProcess.launch({ name: 'en1', args, ready: 'extent node listening', env: { KURA_FAILPOINTS_AFTER_READY: 'journal.batch.after-fsync=crash*1+20' } });
    const signal = await deathOf(armed);
    const crashedAtMs = Date.now();
    const acknowledgedBefore = load.digests.size;
    assert.equal(signal, 'SIGKILL', 'en1 died at the failpoint');
    const restartedMs = Date.now();
    await RoleProcess.start('en1', args, 'extent node listening');
    t.diagnostic(`en1 died (${signal}) after ${acknowledgedBefore} acknowledged writes; started again in ${Date.now() - restartedMs} ms`);
    const recoveryMs = await recoveryAfter(load, crashedAtMs);
    await checkAll(t, 'extent node crash', box, load, recoveryMs);
  });
});
