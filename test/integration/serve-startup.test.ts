// `kura serve` as a real process (bin/kura) on a free loopback port with temp data directories:
// it prints the redundancy statement and the connection string (the development account's
// published key), answers requests with Azure's auth errors for bad credentials and lets the
// right key through, refuses a second server (and `kura account`) on the same data directories
// naming the holder, exits 0 on SIGTERM, restarts after kill -9 (stale lock taken over), and
// serves accounts made with `kura account create` at its next start; --admin serves /readyz and
// the stream layer's /metrics and the sweep's (a sweep intent written and deleted by its writer).
// Figures: time to ready, SIGTERM to exit with idle keep-alive sockets held (under stampStopDrainMs).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { BlobServiceClient, RestError, StorageSharedKeyCredential } from '@azure/storage-blob';
import { stampStopDrainMs } from '../../src/constants.ts';
import { developmentAccountKey } from '../../src/stamp/account-store.ts';
import { cleanupServes, freePort, KuraServe, runKura, tempDisks } from '../helpers/kura-serve.ts';

after(cleanupServes);

async function restError(call: () => Promise<unknown>): Promise<RestError> {
  try {
    await call();
  } catch (error) {
    if (error instanceof RestError) return error;
    throw error;
  }
  throw new Error('expected the call to fail');
}

test('kura serve prints the connection string and the redundancy statement; bad keys get AuthenticationFailed', { timeout: 120_000 }, async (t) => {
  const disks = await tempDisks(1);
  const adminPort = await freePort();
  const serve = await KuraServe.start({ disks, extraArgs: ['--admin', `127.0.0.1:${adminPort}`] });
  t.diagnostic(`1 disk: ready in ${serve.readyMs} ms`);
  const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
  assert.equal(ready.status, 200, '--admin: /readyz once the stamp serves');
  assert.match(await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text(), /kura_extents_below_target/);
  assert.equal(serve.connectionString, `DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=${developmentAccountKey};BlobEndpoint=http://127.0.0.1:${serve.port}/devstoreaccount1;`);
  assert.match(serve.stdout, /NO REDUNDANCY/);
  const options = { retryOptions: { maxTries: 1 } };
  const wrongKey = new BlobServiceClient(serve.blobEndpoint, new StorageSharedKeyCredential('devstoreaccount1', Buffer.alloc(64, 7).toString('base64')), options);
  const forged = await restError(() => wrongKey.getContainerClient('box').create());
  assert.equal(forged.statusCode, 403);
  assert.equal(forged.code, 'AuthenticationFailed');
  const unknown = new BlobServiceClient(`http://127.0.0.1:${serve.port}/nosuchaccount`, new StorageSharedKeyCredential('nosuchaccount', developmentAccountKey), options);
  assert.equal((await restError(() => unknown.getContainerClient('box').create())).statusCode, 403);
  const anonymous = new BlobServiceClient(serve.blobEndpoint, undefined, options);
  assert.equal((await restError(() => anonymous.getContainerClient('box').create())).statusCode, 401);
  // The published key passes authentication (whatever the storage behind answers).
  const right = BlobServiceClient.fromConnectionString(serve.connectionString, options);
  const outcome = await right.getContainerClient('box').create().then(() => null, (error: unknown) => error);
  if (outcome instanceof RestError) assert.notEqual(outcome.statusCode, 403, `authenticated request refused: ${outcome.code}`);
  // A Put Block List leaving 297 of 300 staged blocks to a sweep writes a sweep intent; its writer deletes it.
  const blob = right.getContainerClient('box').getBlockBlobClient('staged');
  const blockIds = Array.from({ length: 300 }, (_, index) => Buffer.from(`block-${String(index).padStart(5, '0')}`).toString('base64'));
  for (let at = 0; at < blockIds.length; at += 30) {
    await Promise.all(blockIds.slice(at, at + 30).map((blockId) => blob.stageBlock(blockId, Buffer.from(blockId), blockId.length)));
  }
  await blob.commitBlockList(blockIds.slice(0, 3));
  const sweep = (await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text()).split('\n').filter((line) => line.startsWith('kura_sweep_intents') || line.startsWith('kura_container_sweep_ticks'));
  t.diagnostic(`sweep metrics after a Put Block List of 3 of 300 staged blocks:\n${sweep.join('\n')}`);
  assert.ok(sweep.some((line) => /^kura_sweep_intents_written_total\{role="serve"\} 1$/.test(line)), sweep.join('\n'));
  assert.ok(sweep.some((line) => /^kura_sweep_intents_resolved_total\{by="writer",role="serve"\} 1$/.test(line)), sweep.join('\n'));
  assert.ok(sweep.some((line) => line.startsWith('kura_sweep_intents_pending{')), sweep.join('\n'));
  // The SDK client and fetch still hold idle keep-alive sockets: the stop closes them at once
  // rather than waiting out the drain (stampStopDrainMs) or their keep-alive timeout.
  const stopStartMs = Date.now();
  assert.equal(await serve.stop(), 0, 'SIGTERM: graceful exit 0');
  const stopMs = Date.now() - stopStartMs;
  t.diagnostic(`SIGTERM with idle keep-alive sockets held -> exit 0 in ${stopMs} ms`);
  assert.ok(stopMs < stampStopDrainMs, `the stop took ${stopMs} ms: it waited for idle connections`);
});

test('one process per data directory: a second serve and kura account are refused while it runs; kill -9 leaves nothing to clean', { timeout: 180_000 }, async (t) => {
  const disks = await tempDisks(3);
  const first = await KuraServe.start({ disks });
  t.diagnostic(`3 disks, empty: ready in ${first.readyMs} ms`);
  assert.match(first.stdout, /3 replicas of every extent in 3 distinct fault domains/);
  const second = await KuraServe.startFailing({ disks });
  assert.equal(second.code, 1);
  assert.match(second.stderr, /kura serve: .*kura\.lock is held by a running kura serve \(pid \d+/);
  const account = await runKura(['account', 'create', 'teamdata', ...disks.flatMap((disk) => ['--disk', disk])]);
  assert.equal(account.code, 1);
  assert.match(account.stderr, /kura account: .*held by a running kura serve.*stop it first/);
  await first.kill9();
  const created = await runKura(['account', 'create', 'teamdata', ...disks.flatMap((disk) => ['--disk', disk])]);
  assert.equal(created.code, 0, created.stderr);
  const key1 = /key1: (\S+)/.exec(created.stdout)?.[1] ?? '';
  assert.equal(Buffer.from(key1, 'base64').length, 64);
  const listed = await runKura(['account', 'list', ...disks.flatMap((disk) => ['--disk', disk])]);
  assert.deepEqual(listed.stdout.split('\n').filter((line) => /^\S/.test(line)).map((line) => line.split(' ')[0]), ['devstoreaccount1', 'teamdata']);
  assert.doesNotMatch(listed.stdout, /key1:/, 'keys only with --show-keys');
  const rotated = await runKura(['account', 'rotate-key', 'teamdata', '--key', 'key1', ...disks.flatMap((disk) => ['--disk', disk])]);
  assert.equal(rotated.code, 0, rotated.stderr);
  const newKey1 = /key1: (\S+)/.exec(rotated.stdout)?.[1] ?? '';
  assert.notEqual(newKey1, key1);
  const again = await KuraServe.start({ disks });
  t.diagnostic(`3 disks, after kill -9: ready in ${again.readyMs} ms`);
  const options = { retryOptions: { maxTries: 1 } };
  const endpoint = `http://127.0.0.1:${again.port}/teamdata`;
  const old = new BlobServiceClient(endpoint, new StorageSharedKeyCredential('teamdata', key1), options);
  assert.equal((await restError(() => old.getContainerClient('box').create())).statusCode, 403, 'the rotated-out key is refused');
  const current = new BlobServiceClient(endpoint, new StorageSharedKeyCredential('teamdata', newKey1), options);
  const outcome = await current.getContainerClient('box').create().then(() => null, (error: unknown) => error);
  if (outcome instanceof RestError) assert.notEqual(outcome.statusCode, 403, `the new key was refused: ${outcome.code}`);
  assert.equal(await again.stop(), 0);
});
