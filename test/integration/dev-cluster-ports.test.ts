// `kura dev-cluster` chooses each role's fixed ports by probing them free, then starts the role; a
// port can be taken in between (CI: another stamp's front end, down for its restart, took it back
// first, and en4 failed with EADDRINUSE). A role's first start that cannot bind gets new ports,
// recorded in cluster.json, and a later restart keeps them. etcd writes its members' addresses into
// its data directory at its first start, so a new stamp's etcd tier moves as a whole instead. The
// race is made certain here: the test holds four ports and hands them, through the
// KURA_DEV_CLUSTER_TEST_PORTS hook, to etcd1 (client), c1 (admin), en1 (listen) and fe1 (listen) as
// if they had been probed free. The small stamp (1 etcd member,
// 1 controller, 3 extent nodes, 1 partition server, 1 front end) must still become ready, with each
// of the four on new ports it really listens on (cluster.json, `kura status`, the SDK through the
// balancer to fe1), and en1, killed -9, must come back on its new address.
// Figures: time to ready (with the three second starts), en1's time back after the kill.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { BlobServiceClient } from '@azure/storage-blob';
import { readClusterState } from '../../src/cluster/cluster-state.ts';
import { boundedCall, DevClusterProcess, delay, isAlive, killAllDevClusters, tempClusterDirectory } from '../helpers/dev-cluster.ts';
import { runKura } from '../helpers/kura-serve.ts';

const readyTimeoutMs = 120_000;

/** A loopback port held by this test until closed. */
async function holdPort(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return { server, port: address.port };
}

const portOf = (address: string | null): number => Number(address?.slice(address.lastIndexOf(':') + 1));

describe('kura dev-cluster ports', () => {
  const held: Server[] = [];
  after(async () => {
    await killAllDevClusters();
    for (const server of held) server.close();
  });

  it('a role whose first start finds its port taken starts on new ports, recorded and kept across a restart', { timeout: 240_000 }, async (t) => {
    const taken = await Promise.all([holdPort(), holdPort(), holdPort(), holdPort()]);
    held.push(...taken.map((hold) => hold.server));
    const [c1Admin = 0, en1Listen = 0, fe1Listen = 0, etcdClient = 0] = taken.map((hold) => hold.port);
    const forced = { etcd1: { listen: etcdClient }, c1: { admin: c1Admin }, en1: { listen: en1Listen }, fe1: { listen: fe1Listen } };
    const directory = await tempClusterDirectory('ports');
    const small = ['--etcd-members', '1', '--extent-nodes', '3', '--partition-servers', '1', '--frontends', '1', '--controllers', '1'];
    const startMs = performance.now();
    const cluster = await DevClusterProcess.start({ directory, args: small, readyTimeoutMs, env: { KURA_DEV_CLUSTER_TEST_PORTS: JSON.stringify(forced) } });
    t.diagnostic(`ready in ${((performance.now() - startMs) / 1000).toFixed(1)} s with ports ${etcdClient} (etcd1 client), ${c1Admin} (c1 admin), ${en1Listen} (en1), ${fe1Listen} (fe1) held by the test`);

    const etcdLine = new RegExp(`^etcd: port ${etcdClient} was taken after it was chosen \\(address already in use\\); starting every etcd member again on new ports \\((http://127\\.0\\.0\\.1:\\d+)\\)$`, 'm').exec(cluster.stdout);
    assert.ok(etcdLine !== null, `etcd's move is reported:\n${cluster.stdout}`);
    t.diagnostic(etcdLine[0]);

    for (const [name, port] of [['c1', c1Admin], ['en1', en1Listen], ['fe1', fe1Listen]] as const) {
      const line = new RegExp(`^${name}: port ${port} was taken after it was chosen \\(EADDRINUSE\\); starting it again on (\\d+) \\(admin (\\d+)\\)$`, 'm').exec(cluster.stdout);
      assert.ok(line !== null, `${name}'s move is reported:\n${cluster.stdout}`);
      t.diagnostic(line[0]);
    }
    const state = await readClusterState(directory);
    assert.ok(state !== null);
    const etcd1 = state.topology.etcdMembers[0];
    assert.ok(etcd1 !== undefined && etcd1.clientPort !== etcdClient && etcd1.peerPort !== etcdClient, 'etcd1 is off the held port');
    assert.equal(`http://127.0.0.1:${etcd1.clientPort}`, etcdLine[1], 'cluster.json records the client port etcd moved to');
    assert.ok(state.processes.some((record) => record.name === 'etcd1' && record.address === etcdLine[1]), 'etcd1 answers where it moved');
    const records = new Map(state.processes.map((record) => [record.name, record]));
    for (const name of ['c1', 'en1', 'fe1']) {
      const record = records.get(name);
      const ports: { listen: number; admin: number } | undefined = state.topology.rolePorts?.[name];
      assert.ok(record !== undefined && ports !== undefined, name);
      // The address each role logged (where it really listens) is the one recorded for it.
      assert.equal(portOf(record.address), ports.listen, `${name}: cluster.json's address is its recorded listen port`);
      assert.equal(portOf(record.admin), ports.admin, `${name}: cluster.json's admin is its recorded admin port`);
      assert.ok(![c1Admin, en1Listen, fe1Listen].includes(ports.listen) && ![c1Admin, en1Listen, fe1Listen].includes(ports.admin), `${name} is off the held ports`);
    }

    const status = await runKura(['status', '--data', directory]);
    assert.equal(status.code, 0, status.stdout + status.stderr);
    for (const name of ['c1', 'en1', 'fe1']) assert.match(status.stdout, new RegExp(`^${name}\\b.*${records.get(name)?.address ?? '?'}.*READY`, 'm'));

    const container = BlobServiceClient.fromConnectionString(cluster.connectionString, {
      retryOptions: { maxTries: 4, retryDelayInMs: 200, maxRetryDelayInMs: 2_000, tryTimeoutInMs: 10_000 },
    }).getContainerClient('ports');
    await container.create(boundedCall());
    await container.getBlockBlobClient('hello').upload('hello', 5, boundedCall());
    assert.equal((await container.getBlockBlobClient('hello').downloadToBuffer(0, undefined, boundedCall())).toString(), 'hello');

    // A restart keeps the moved ports: the others learnt them at the first start.
    const before = records.get('en1');
    assert.ok(before !== undefined);
    const killMs = performance.now();
    await cluster.kill9('en1');
    let back = await cluster.process('en1');
    while (back.pid === before.pid || back.pid === null || !isAlive(back.pid)) {
      assert.ok(performance.now() - killMs < 90_000, `en1 back within 90 s:\n${cluster.stdout}\n${cluster.stderr}`);
      await delay(100);
      back = await cluster.process('en1');
    }
    t.diagnostic(`en1 killed -9, back on ${back.address ?? '?'} after ${((performance.now() - killMs) / 1000).toFixed(1)} s`);
    assert.equal(back.address, before.address);
    assert.equal(back.admin, before.admin);
    assert.equal(await cluster.stop(), 0, cluster.stdout);
  });
});
