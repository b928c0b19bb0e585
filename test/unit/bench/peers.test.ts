// Peer process handling: a server that exits before listening is reported unavailable with
// its own last message (how `kura serve` is detected before it is built), and the Kura peer
// either starts and stops cleanly or is reported unavailable — never a crash or fake numbers.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { ChildServer } from '../../../bench/blob/child-server.ts';
import { freeLoopbackPort } from '../../../bench/blob/free-port.ts';
import { blockIdFor } from '../../../bench/blob/blob-client.ts';
import { devAccountKey, PeerUnavailableError } from '../../../bench/blob/peer.ts';
import { kuraServePeer } from '../../../bench/blob/peers.ts';
import { printedConnectionString } from '../../../bench/blob/process-peer.ts';
import { blobProfiles, goalCells, parseProfileName } from '../../../bench/blob/profiles.ts';
import { RawBlobClient } from '../../../bench/blob/raw-client.ts';
import { workloadSpecs } from '../../../bench/blob/workloads.ts';

describe('blob benchmark peers', () => {
  it('reports a server that exits before listening as unavailable, with its message', async () => {
    const server = new ChildServer({
      command: process.execPath,
      args: ['-e', "process.stderr.write('kura serve: the blob service is not built yet\\n'); process.exit(2)"],
      port: await freeLoopbackPort(),
      cwd: tmpdir(),
      readyTimeoutMs: 10_000,
    });
    await assert.rejects(server.start(), (error: unknown) => error instanceof PeerUnavailableError && /code 2: kura serve: the blob service is not built yet/.test(error.reason));
  });

  it('is ready only once the server printed its ready line, and keeps the line\'s capture', async () => {
    const port = await freeLoopbackPort();
    const script = `setTimeout(() => require('node:net').createServer().listen(${port}, '127.0.0.1', () => setTimeout(() => console.log('Connection string:\\nCS=${port};'), 300)), 100)`;
    const server = new ChildServer({ command: process.execPath, args: ['-e', script], port, cwd: tmpdir(), readyTimeoutMs: 10_000, readyLine: /^(CS=\d+;)$/ });
    try {
      await server.start();
      assert.equal(server.printedValue, `CS=${port};`);
    } finally {
      await server.stop();
    }
  });

  it('uses a printed connection string only when it names the peer\'s own endpoint', () => {
    assert.equal(printedConnectionString(null, 1234), null);
    const printed = 'DefaultEndpointsProtocol=http;AccountName=a;AccountKey=k;BlobEndpoint=http://127.0.0.1:1234/a;';
    assert.equal(printedConnectionString(printed, 1234), printed);
    assert.throws(() => printedConnectionString(printed, 4321));
  });

  it('runs kura serve (1 and 3 disks) from its printed connection string, survives kill -9, or reports it unavailable', async (t) => {
    for (const disks of [1, 3]) {
      const peer = kuraServePeer(disks);
      try {
        const endpoint = await peer.start();
        assert.ok(endpoint.pid > 0);
        assert.match(endpoint.connectionString, /AccountName=devstoreaccount1;AccountKey=[^;]+;BlobEndpoint=http:\/\/127\.0\.0\.1:\d+\/devstoreaccount1;/);
        assert.ok(peer.sample().rssBytes > 0);
        const port = Number(/127\.0\.0\.1:(\d+)\//.exec(endpoint.connectionString)?.[1]);
        // The raw client's large-blob requests (Put Block, Put Block List, streamed Get Blob) pass Kura's SharedKey check.
        const blocks = [Buffer.alloc(1 << 20, 1), Buffer.alloc(300_000, 2)];
        if (disks === 1) await rawLargeRoundTrip(port, blocks, 'write');
        await peer.kill9();
        const again = await peer.restart();
        assert.notEqual(again.pid, endpoint.pid);
        assert.equal(again.connectionString, endpoint.connectionString);
        if (disks === 1) t.diagnostic(`raw large blob after kill -9: ${await rawLargeRoundTrip(port, blocks, 'read')} bytes read back byte-exact`);
      } catch (error) {
        assert.ok(error instanceof PeerUnavailableError, String(error));
        assert.ok(error.reason.length > 0);
      } finally {
        await peer.stop();
      }
    }
  });

  it('bounds every profile and covers the issue-5 workload matrix', () => {
    assert.equal(parseProfileName(undefined), 'quick');
    assert.throws(() => parseProfileName('huge'));
    for (const profile of Object.values(blobProfiles)) {
      assert.ok(profile.durationMs > 0 && profile.operationsMax > 0 && profile.workloadBytesMax > 0 && profile.longOperationMs > 0);
      const specs = workloadSpecs(profile);
      // Every goal cell of issue 5 is measured in every profile, with the SDK and with raw undici.
      for (const cell of goalCells) assert.ok(specs.some((spec) => spec.kind === cell.kind && 'client' in spec && spec.client === cell.client && spec.sizeBytes === cell.sizeBytes && spec.concurrency === cell.concurrency));
      assert.ok(['big', 'list', 'mixed'].every((kind) => specs.some((spec) => spec.kind === kind)));
      for (const spec of specs) if (spec.kind === 'put' || spec.kind === 'get') assert.ok(profile.sizesBytes.includes(spec.sizeBytes), 'every size has its machine limit');
    }
    // Full runs the whole matrix: 3 sizes × 3 concurrencies with the SDK.
    assert.equal(workloadSpecs(blobProfiles.full).filter((spec) => spec.kind === 'put' && spec.client === 'sdk').length, 9);
    assert.equal(blobProfiles.full.listBlobCount, 100_000);
    assert.equal(blobProfiles.full.bigBlobBytes, 256 << 20);
    for (const profile of Object.values(blobProfiles)) assert.ok(profile.bigDownloadRepeats >= profile.bigRepeats, 'at least one timed download per uploaded blob');
  });
});

/** Stages `blocks` and commits them with the raw client ('write'), or reads the blob back and checks it ('read'). */
async function rawLargeRoundTrip(port: number, blocks: readonly Buffer[], step: 'write' | 'read'): Promise<number> {
  const raw = new RawBlobClient({ port, accountKey: devAccountKey, connections: 2 });
  const ids = blocks.map((_, index) => blockIdFor(index));
  try {
    if (step === 'write') {
      await raw.createContainer('raw-large');
      await Promise.all(blocks.map((block, index) => raw.stageBlock('raw-large', 'big/one', ids[index] ?? '', block)));
      await raw.commitBlockList('raw-large', 'big/one', ids);
    }
    const chunks: Buffer[] = [];
    const bytes = await raw.readBlobStream('raw-large', 'big/one', (chunk) => chunks.push(chunk));
    assert.equal(bytes, blocks.reduce((sum, block) => sum + block.length, 0));
    assert.ok(Buffer.concat(chunks).equals(Buffer.concat(blocks)), 'the raw download returns the staged blocks in order');
    assert.equal(await raw.readBlobStream('raw-large', 'absent', () => assert.fail('no body for a 404')), null);
    return bytes ?? 0;
  } finally {
    await raw.close();
  }
}
