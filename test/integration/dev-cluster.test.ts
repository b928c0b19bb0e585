// `kura dev-cluster` and `kura status` with real processes: etcd, controllers, extent nodes in
// three fault domains, partition servers and front ends, each its own process on loopback, the
// official SDK talking to the built-in balancer.
//
// 1. One etcd member (fast), the default stamp otherwise, --no-restart: the SDK uploads and
//    downloads through the balancer; `kura status` lists every process ready and the leader (exit
//    0); under a steady upload load one front end is killed -9: every upload still succeeds (the
//    SDK's retries land on the other front end through the balancer) and reads back byte-exact;
//    status reports that front end DOWN (exit 1: not restarted); SIGTERM: dev-cluster exits 0 and
//    every child has exited. (Restarts: dev-cluster-restart.test.ts.)
// 2. Three etcd members (a Raft quorum), a small stamp: blobs written, SIGTERM, a restart on the
//    same --data is the same stamp (same etcd, same disks) and reads them back; status by --etcd.
//    `kura account create --etcd` while the stamp runs: the running front end serves the new
//    account within the refresh interval; `rotate-key --etcd`: the old key is refused and the new
//    one accepted within it, without a restart.
// Figures: time to ready, uploads during the kill and their retries, time to stop, time until a
// front end serves an account change.
// Every wait is bounded and fails naming what it waited for; each SDK call too (sdkCallLimitMs:
// the SDK itself has no client-side timeout, its tryTimeoutInMs only sets the server's ?timeout),
// so a connection left open and unanswered fails the call that used it instead of hanging the test.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { readClusterState } from '../../src/cluster/cluster-state.ts';
import { accountsRefreshMs } from '../../src/constants.ts';
import { boundedCall, DevClusterProcess, isAlive, killAllDevClusters, sdkCallLimitMs, tempClusterDirectory } from '../helpers/dev-cluster.ts';
import { runKura } from '../helpers/kura-serve.ts';

const readyTimeoutMs = 240_000;
/** Uploads the load phase waits for before and after the kill. */
const loadPhaseLimitMs = 120_000;
const sha = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

/** An SDK client whose retries ride out a dying front end (the SDK's policy, a little more patient). */
function sdk(connectionString: string): BlobServiceClient {
  return BlobServiceClient.fromConnectionString(connectionString, { retryOptions: { maxTries: 8, retryDelayInMs: 200, maxRetryDelayInMs: 2_000, tryTimeoutInMs: 60_000 } });
}

async function uploadAndCheck(container: ContainerClient, count: number, prefix: string): Promise<Map<string, string>> {
  const written = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const body = randomBytes(1024 + i * 7919);
    await container.getBlockBlobClient(`${prefix}-${i}`).upload(body, body.length, boundedCall());
    written.set(`${prefix}-${i}`, sha(body));
  }
  return written;
}

async function readBack(container: ContainerClient, written: ReadonlyMap<string, string>): Promise<number> {
  let exact = 0;
  for (const [name, digest] of written) {
    if (sha(await container.getBlockBlobClient(name).downloadToBuffer(0, undefined, boundedCall())) === digest) exact++;
  }
  return exact;
}

/** Waits (bounded) until `probe` resolves true; returns the milliseconds it took. */
async function within(limitMs: number, what: string, probe: () => Promise<boolean>): Promise<number> {
  const startMs = performance.now();
  while (!(await probe())) {
    if (performance.now() - startMs > limitMs) throw new Error(`${what}: not within ${limitMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return Math.round(performance.now() - startMs);
}

/** The promise's value, or an error naming what did not end within limitMs. */
async function settledWithin<T>(limitMs: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not within ${limitMs} ms`)), limitMs); });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The account's keys and connection string as `kura account create|rotate-key` printed them. */
function printedKeys(stdout: string): { key1: string; connection: string } {
  const key1 = /^ {2}key1: (\S+)$/m.exec(stdout)?.[1];
  const connection = /^ {2}(DefaultEndpointsProtocol=\S+)$/m.exec(stdout)?.[1];
  assert.ok(key1 !== undefined && connection !== undefined, stdout);
  return { key1, connection };
}

async function accountChangesReachTheFrontEnd(t: { diagnostic(message: string): void }, etcd: string, endpoint: string): Promise<void> {
  const port = endpoint.slice(endpoint.lastIndexOf(':') + 1);
  const created = await runKura(['account', 'create', 'teamone', '--etcd', etcd, '--blob-port', port]);
  assert.equal(created.code, 0, created.stdout + created.stderr);
  const first = printedKeys(created.stdout);
  const container = (connection: string): ContainerClient => BlobServiceClient.fromConnectionString(connection, { retryOptions: { maxTries: 1 } }).getContainerClient('accounts');
  const accepted = async (connection: string): Promise<boolean> => container(connection).createIfNotExists(boundedCall()).then(() => true, () => false);
  const createdMs = await within(30_000, 'the new account served', () => accepted(first.connection));
  await container(first.connection).getBlockBlobClient('hello').upload('hello', 5, boundedCall());

  const rotated = await runKura(['account', 'rotate-key', 'teamone', '--key', 'key1', '--etcd', etcd, '--blob-port', port]);
  assert.equal(rotated.code, 0, rotated.stdout + rotated.stderr);
  const second = printedKeys(rotated.stdout);
  assert.notEqual(second.key1, first.key1);
  const refusedMs = await within(30_000, 'the old key1 refused', async () => {
    const status = await container(first.connection).getProperties(boundedCall()).then(() => 200, (error: unknown) => (error as { statusCode?: number }).statusCode ?? 0);
    return status === 403;
  });
  assert.equal((await container(second.connection).getBlockBlobClient('hello').downloadToBuffer(0, undefined, boundedCall())).toString(), 'hello', 'the new key1 reads the blob');
  const listed = await runKura(['account', 'list', '--etcd', etcd]);
  assert.match(listed.stdout, /^teamone\b/m);
  assert.match(listed.stdout, /^devstoreaccount1\b/m);
  t.diagnostic(`kura account --etcd: a new account served after ${createdMs} ms, a rotated key1 refused after ${refusedMs} ms (refresh every ${accountsRefreshMs} ms)`);
}

describe('kura dev-cluster', () => {
  after(async () => {
    await killAllDevClusters();
  });

  it('one etcd member: SDK through the balancer, status healthy, kill -9 of a front end under load, SIGTERM exits 0', { timeout: 400_000 }, async (t) => {
    const directory = await tempClusterDirectory('one');
    const cluster = await DevClusterProcess.start({ directory, args: ['--etcd-members', '1', '--no-restart'], readyTimeoutMs });
    t.diagnostic(`ready in ${cluster.readySeconds} s: ${(await cluster.processes()).length} processes`);
    const container = sdk(cluster.connectionString).getContainerClient('devcluster');
    await container.create(boundedCall());
    const written = await uploadAndCheck(container, 12, 'before');
    assert.equal(await readBack(container, written), written.size);

    const healthy = await runKura(['status', '--data', directory]);
    t.diagnostic(`kura status (exit ${healthy.code}):\n${healthy.stdout}`);
    assert.equal(healthy.code, 0, healthy.stdout + healthy.stderr);
    for (const record of await cluster.processes()) assert.match(healthy.stdout, new RegExp(`^${record.name}\\b.*READY`, 'm'));
    assert.match(healthy.stdout, /^leader: \S+ \(\*\)/m);

    // Steady uploads from 4 writers; fe1 is killed -9 in the middle.
    let stop = false;
    let uploads = 0;
    let slowestMs = 0;
    const failures: string[] = [];
    const underLoad = new Map<string, string>();
    const writers = Array.from({ length: 4 }, async (_, writer) => {
      for (let i = 0; !stop; i++) {
        const name = `load-${writer}-${i}`;
        const body = randomBytes(16 * 1024 + i);
        const startMs = performance.now();
        try {
          await container.getBlockBlobClient(name).upload(body, body.length, boundedCall());
          slowestMs = Math.max(slowestMs, performance.now() - startMs);
          underLoad.set(name, sha(body));
          uploads++;
        } catch (error) {
          failures.push(`${name}: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
    });
    const uploadsReach = (count: number, what: string): Promise<number> => within(loadPhaseLimitMs, what, () => Promise.resolve(uploads >= count)).catch((error: unknown) => {
      stop = true;
      throw new Error(`${String(error)} (${uploads} uploads, ${failures.length} failed: ${failures.slice(0, 4).join('; ')})`);
    });
    await uploadsReach(20, '20 uploads before the kill');
    const killedAt = uploads;
    await cluster.kill9('fe1');
    const killMs = performance.now();
    await uploadsReach(killedAt + 40, '40 uploads after the kill -9 of fe1');
    stop = true;
    await settledWithin(sdkCallLimitMs + 10_000, 'the 4 writers ending their last upload', Promise.all(writers));
    t.diagnostic(`${uploads} uploads by 4 writers, fe1 killed -9 after ${killedAt}; ${uploads - killedAt} acknowledged after the kill within ${Math.round(performance.now() - killMs)} ms; ${failures.length} failed; slowest upload ${Math.round(slowestMs)} ms`);
    assert.deepEqual(failures, []);
    assert.equal(await readBack(container, underLoad), underLoad.size, 'every acknowledged upload reads back byte-exact');

    const degraded = await runKura(['status', '--data', directory]);
    t.diagnostic(`kura status after the kill (exit ${degraded.code}):\n${degraded.stdout}`);
    assert.equal(degraded.code, 1);
    assert.match(degraded.stdout, /^fe1\b.*DOWN/m);
    assert.match(degraded.stdout, /^fe2\b.*READY/m);
    assert.match(cluster.stderr, /fe1 exited \(signal SIGKILL\); not restarted \(--no-restart\)/);

    const processes = await cluster.processes();
    const stopStartMs = performance.now();
    assert.equal(await cluster.stop(), 0, cluster.stdout);
    t.diagnostic(`SIGTERM → dev-cluster exited 0 in ${Math.round(performance.now() - stopStartMs)} ms`);
    const alive = processes.filter((record) => record.pid !== null && isAlive(record.pid)).map((record) => record.name);
    assert.deepEqual(alive, [], 'every child exited');
    assert.equal((await readClusterState(directory))?.phase, 'stopped');
  });

  it('three etcd members: blobs survive a restart on the same --data; status by --etcd', { timeout: 400_000 }, async (t) => {
    const directory = await tempClusterDirectory('three');
    const small = ['--etcd-members', '3', '--extent-nodes', '3', '--partition-servers', '1', '--frontends', '1', '--controllers', '1'];
    const first = await DevClusterProcess.start({ directory, args: small, readyTimeoutMs });
    t.diagnostic(`3 etcd members + ${(await first.processes()).length - 3} processes ready in ${first.readySeconds} s`);
    const container = sdk(first.connectionString).getContainerClient('kept');
    await container.create(boundedCall());
    const written = await uploadAndCheck(container, 8, 'kept');
    assert.equal(await first.stop(), 0, first.stdout);

    const second = await DevClusterProcess.start({ directory, args: [], readyTimeoutMs });
    t.diagnostic(`restart on the same data ready in ${second.readySeconds} s`);
    const state = await readClusterState(directory);
    assert.ok(state !== null);
    assert.equal(state.topology.etcdMembers.length, 3, 'the stored topology is reused');
    const again = sdk(second.connectionString).getContainerClient('kept');
    assert.equal(await readBack(again, written), written.size, 'every blob written before the restart reads back byte-exact');

    const endpoints = state.topology.etcdMembers.map((member) => `http://127.0.0.1:${member.clientPort}`).join(',');
    const status = await runKura(['status', '--etcd', endpoints, '--json']);
    assert.equal(status.code, 0, status.stdout + status.stderr);
    const report = JSON.parse(status.stdout) as { healthy: boolean; leader: { leader: string | null }; processes: { name: string; state: string }[] };
    t.diagnostic(`kura status --etcd --json: healthy ${report.healthy}, leader ${report.leader.leader}, ${report.processes.map((p) => `${p.name} ${p.state}`).join(', ')}`);
    assert.equal(report.healthy, true);
    assert.equal(report.leader.leader, 'c1');
    assert.deepEqual(report.processes.map((p) => p.name), ['etcd1', 'etcd2', 'etcd3', 'c1', 'en1', 'en2', 'en3', 'ps1', 'fe1', 'balancer']);

    await accountChangesReachTheFrontEnd(t, endpoints, state.endpoint);
    assert.equal(await second.stop(), 0, second.stdout);
  });
});
