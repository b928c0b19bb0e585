// `kura bench` against a running `kura serve` (real processes, the official SDK and raw undici as
// clients): the put and get goal cells run with no errors, the stamp's CPU and memory are sampled
// through --pid, no kill -9 check is made on it (it is never killed: it still serves afterwards),
// the JSON lands where --out says, and bad flags get a clear error and measure nothing.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BlobServiceClient } from '@azure/storage-blob';
import { cleanupServes, KuraServe, kuraBin, runCommand, runKura, tempDisks } from '../helpers/kura-serve.ts';

after(cleanupServes);

interface SavedRow {
  readonly peer: string;
  readonly workload: string;
  readonly errors: number;
  readonly throughput: { readonly operations: number; readonly opsPerSecond: number };
  readonly server: { readonly cpuSecondsPerOperation: number | null };
  readonly durability: { readonly kind: string } | null;
}

test('kura bench measures a running kura serve with the SDK and raw clients and never kills it', { timeout: 180_000 }, async (t) => {
  const serve = await KuraServe.start({ disks: await tempDisks(1) });
  const out = await mkdtemp(join(tmpdir(), 'kura-bench-out-'));
  try {
    const pid = serve.child.pid;
    assert.ok(pid !== undefined);
    const run = await runKura(['bench', '--connection-string', serve.connectionString, '--pid', String(pid), '--workloads', 'put,get', '--loop-seconds', '0.3', '--compare', 'none', '--name', 'kura-under-test', '--out', out], 150_000);
    assert.equal(run.code, 0, run.stderr.slice(-2000));
    const saved = (await readdir(out)).filter((name) => name.endsWith('.json'));
    assert.equal(saved.length, 1);
    const report = JSON.parse(await readFile(join(out, saved[0] ?? ''), 'utf8')) as { peers: { name: string; status: string }[]; results: SavedRow[] };
    assert.deepEqual(report.peers, [{ name: 'kura-under-test', status: 'ran' }]);
    assert.deepEqual(report.results.map((row) => row.workload).sort(), ['get 64 KiB ×16', 'get 64 KiB ×16 raw', 'put 4 KiB ×64', 'put 4 KiB ×64 raw', 'put 64 KiB ×16', 'put 64 KiB ×16 raw']);
    for (const row of report.results) {
      assert.equal(row.errors, 0, `${row.workload}: no failed operation`);
      assert.ok(row.throughput.operations > 0, `${row.workload}: operations ran`);
      assert.ok((row.server.cpuSecondsPerOperation ?? 0) > 0, `${row.workload}: the stamp's CPU was sampled through --pid`);
      if (row.workload.startsWith('put')) assert.equal(row.durability?.kind, 'not-applicable', 'a running stamp is never killed');
      t.diagnostic(`${row.workload}: ${row.throughput.opsPerSecond.toFixed(0)} ops/s, server ${((row.server.cpuSecondsPerOperation ?? 0) * 1000).toFixed(2)} ms CPU per op`);
    }
    assert.match(run.stdout, /kura-under-test/);
    assert.equal(serve.child.exitCode, null, 'kura serve is still running');
    const containers = [];
    for await (const container of BlobServiceClient.fromConnectionString(serve.connectionString).listContainers()) containers.push(container.name);
    assert.deepEqual(containers, [], 'every workload deleted its container');
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test('kura bench refuses bad flags with a clear message and measures nothing', { timeout: 60_000 }, async () => {
  const env = { ...process.env };
  delete env.AZURE_STORAGE_CONNECTION_STRING;
  const missing = await runCommand(kuraBin, ['bench', '--compare', 'none'], { timeoutMs: 60_000, env });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /give --connection-string, --data DIR \(a dev cluster\) or AZURE_STORAGE_CONNECTION_STRING/);
  const cs = 'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=AAAA;BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;';
  const badWorkload = await runKura(['bench', '--connection-string', cs, '--workloads', 'put,copy']);
  assert.equal(badWorkload.code, 1);
  assert.match(badWorkload.stderr, /--workloads: unknown workload "copy"; workloads: put, get, big, list, mixed/);
  const badPeer = await runKura(['bench', '--connection-string', cs, '--compare', 'azurite-cloud']);
  assert.equal(badPeer.code, 1);
  assert.match(badPeer.stderr, /unknown peer azurite-cloud/);
  const noCluster = await runKura(['bench', '--data', join(tmpdir(), 'no-such-kura-cluster')]);
  assert.equal(noCluster.code, 1);
  assert.match(noCluster.stderr, /no dev cluster in .*no-such-kura-cluster \(no cluster\.json\): start one with kura dev-cluster --data/);
});
