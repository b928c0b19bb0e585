// `kura dev-cluster` supervises its stamp: a role killed -9 is started again on the same ports and
// the stamp serves again. One small stamp (1 etcd member, 1 controller, 3 extent nodes, 1
// partition server, 1 front end: every kura role once, so nothing else can stand in for a dead
// one): blobs written, then one process of each kura role killed -9 together. Every one must come
// back (a new pid in cluster.json, restart 1, "restarted" on stdout, the kill reported on stderr)
// on the address it had: the extent nodes and the partition server were given the controller's
// address at their start and never learn another, the balancer knows the front end's. Then the SDK
// writes again through the balancer, everything reads back byte-exact and `kura status` is healthy.
// Figures: seconds from the kill until each role was back, until the first write acknowledged.
// Then dev-cluster itself killed -9 while it restarts a front end (spawned, not ready, so not yet
// in cluster.json): every process it had started, that one included, must be gone within
// childrenGoneMs (they get SIGTERM from the kernel when their parent dies, role-process.ts).
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { boundedCall, DevClusterProcess, delay, isAlive, killAllDevClusters, tempClusterDirectory } from '../helpers/dev-cluster.ts';
import { runKura } from '../helpers/kura-serve.ts';

const readyTimeoutMs = 120_000;
const backTimeoutMs = 90_000;
const sha = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');
const victims = ['c1', 'en1', 'ps1', 'fe1'] as const;
const childrenGoneMs = 30_000;
const small = ['--etcd-members', '1', '--extent-nodes', '3', '--partition-servers', '1', '--frontends', '1', '--controllers', '1'];

/** The state letter of a process (/proc/PID/stat field 3), null once it is gone. */
async function processState(pid: number): Promise<string | null> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const end = stat.lastIndexOf(')');
  return end === -1 ? null : stat.slice(end + 2, end + 3);
}

/** Running (not zombie) children of a process, with their command lines. */
async function childrenOf(parentPid: number): Promise<Map<number, string>> {
  const children = new Map<number, string>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || Number(fields[1]) !== parentPid) continue;
    children.set(Number(entry), (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' '));
  }
  return children;
}

async function write(container: ContainerClient, name: string, written: Map<string, string>): Promise<void> {
  const body = randomBytes(8 * 1024 + written.size * 101);
  await container.getBlockBlobClient(name).upload(body, body.length, boundedCall());
  written.set(name, sha(body));
}

describe('kura dev-cluster supervision', () => {
  after(async () => {
    await killAllDevClusters();
  });

  it('restarts each kura role killed -9 on its address; the stamp serves again', { timeout: 240_000 }, async (t) => {
    const directory = await tempClusterDirectory('restart');
    const cluster = await DevClusterProcess.start({ directory, args: small, readyTimeoutMs });
    t.diagnostic(`${(await cluster.processes()).length} processes ready in ${cluster.readySeconds} s`);
    const container = BlobServiceClient.fromConnectionString(cluster.connectionString, {
      retryOptions: { maxTries: 4, retryDelayInMs: 200, maxRetryDelayInMs: 2_000, tryTimeoutInMs: 10_000 },
    }).getContainerClient('supervised');
    await container.create(boundedCall());
    const written = new Map<string, string>();
    for (let i = 0; i < 8; i++) await write(container, `before-${i}`, written);

    const before = new Map((await cluster.processes()).map((record) => [record.name, record]));
    const killMs = performance.now();
    await Promise.all(victims.map((name) => cluster.kill9(name)));

    // Back = a new pid in cluster.json (written once the restarted process is ready), alive.
    const backS = new Map<string, number>();
    const deadlineMs = killMs + backTimeoutMs;
    while (backS.size < victims.length && performance.now() < deadlineMs) {
      for (const record of await cluster.processes()) {
        const old = before.get(record.name);
        if (old === undefined || backS.has(record.name) || record.pid === old.pid || record.pid === null || !isAlive(record.pid)) continue;
        backS.set(record.name, (performance.now() - killMs) / 1000);
        assert.equal(record.address, old.address, `${record.name} came back on its address`);
        assert.equal(record.admin, old.admin, `${record.name} came back on its admin address`);
        assert.equal(record.restarts, 1);
      }
      await delay(100);
    }
    t.diagnostic(`back after the kill: ${victims.map((name) => `${name} ${backS.get(name)?.toFixed(1) ?? 'never'} s`).join(', ')}`);
    assert.deepEqual([...backS.keys()].sort(), [...victims].sort(), `every killed role restarted:\n${cluster.stdout}\n${cluster.stderr}`);
    for (const name of victims) {
      assert.match(cluster.stderr, new RegExp(`${name} exited \\(signal SIGKILL\\); restarting in 1 s \\(restart 1\\)`));
      assert.match(cluster.stdout, new RegExp(`${name} restarted \\(restart 1, pid \\d+\\)`));
    }

    // The stamp serves again: a write acknowledged (retried while the partition is not served yet).
    let attempts = 0;
    for (;;) {
      attempts++;
      try {
        await write(container, 'after-0', written);
        break;
      } catch (error) {
        if (performance.now() > deadlineMs) throw error;
        await delay(250);
      }
    }
    t.diagnostic(`first write after the kill acknowledged ${((performance.now() - killMs) / 1000).toFixed(1)} s after it (${attempts} attempts)`);
    for (let i = 1; i < 8; i++) await write(container, `after-${i}`, written);
    let exact = 0;
    for (const [name, digest] of written) {
      if (sha(await container.getBlockBlobClient(name).downloadToBuffer(0, undefined, boundedCall())) === digest) exact++;
    }
    assert.equal(exact, written.size, 'every acknowledged blob reads back byte-exact');

    let status = await runKura(['status', '--data', directory]);
    while (status.code !== 0 && performance.now() < deadlineMs) {
      await delay(500);
      status = await runKura(['status', '--data', directory]);
    }
    t.diagnostic(`kura status (exit ${status.code}):\n${status.stdout}`);
    assert.equal(status.code, 0, status.stdout + status.stderr);
    t.diagnostic(`${written.size} blobs written (8 before the kill), ${exact} read back byte-exact`);

    const processes = await cluster.processes();
    assert.equal(await cluster.stop(), 0, cluster.stdout);
    assert.deepEqual(processes.filter((record) => record.pid !== null && isAlive(record.pid)).map((record) => record.name), [], 'every child exited');
  });

  it('dev-cluster killed -9 while it restarts a front end leaves no process of the stamp running', { timeout: 240_000 }, async (t) => {
    const directory = await tempClusterDirectory('orphans');
    const cluster = await DevClusterProcess.start({ directory, args: small, readyTimeoutMs });
    const supervisorPid = cluster.child.pid ?? 0;
    const old = await cluster.process('fe1');
    await cluster.kill9('fe1');
    // Mid-restart: a new front end spawned by dev-cluster (1 s after the kill), not yet ready.
    const restartDeadlineMs = performance.now() + backTimeoutMs;
    let restarting: number | undefined;
    while (restarting === undefined) {
      if (performance.now() > restartDeadlineMs) throw new Error(`no new front end spawned within ${backTimeoutMs} ms:\n${cluster.stdout}\n${cluster.stderr}`);
      restarting = [...(await childrenOf(supervisorPid))].find(([pid, command]) => pid !== old.pid && command.includes(' frontend '))?.[0];
      await delay(20);
    }
    const children = await childrenOf(supervisorPid);
    const published = (await cluster.processes()).some((record) => record.pid === restarting);
    process.kill(supervisorPid, 'SIGKILL');
    await cluster.exited;
    const killMs = performance.now();
    let running = [...children.keys()];
    while (running.length > 0 && performance.now() - killMs < childrenGoneMs) {
      await delay(100);
      const states = await Promise.all(running.map(async (pid) => ({ pid, state: await processState(pid) })));
      running = states.filter((entry) => entry.state !== null && entry.state !== 'Z').map((entry) => entry.pid);
    }
    const goneMs = Math.round(performance.now() - killMs);
    t.diagnostic(`dev-cluster killed -9 with ${children.size} children, fe1 mid-restart (pid ${restarting}, in cluster.json: ${published}); ${running.length} still running ${goneMs} ms later`);
    assert.deepEqual(running.map((pid) => children.get(pid)), [], `every child of dev-cluster gone within ${childrenGoneMs} ms`);
  });
});
