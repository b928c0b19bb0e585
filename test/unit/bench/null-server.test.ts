// The null server answers the official SDK correctly on 127.0.0.1 (Create Container, Put Blob,
// Get Blob with and without a range, Put Block / Put Block List, List Blobs with paging, 404),
// and the raw undici client with SharedKey signing talks to it the same way.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { BlobServiceClient, RestError } from '@azure/storage-blob';
import { startNullServer, parseRange, parseTarget } from '../../../bench/blob/null-server.ts';
import { devAccountKey, devConnectionString } from '../../../bench/blob/peer.ts';
import { RawBlobClient } from '../../../bench/blob/raw-client.ts';
import { SdkBlobClient } from '../../../bench/blob/sdk-client.ts';
import { blockIdFor } from '../../../bench/blob/blob-client.ts';

describe('null server', () => {
  let server: Server;
  let port: number;

  before(async () => {
    ({ server, port } = await startNullServer(0));
  });

  after(() => {
    server.closeAllConnections();
    server.close();
  });

  it('answers put, get, range get and properties through the SDK with the headers it expects', async () => {
    const container = BlobServiceClient.fromConnectionString(devConnectionString(port)).getContainerClient('sdk-one');
    await container.create();
    const blob = container.getBlockBlobClient('dir/a b');
    const put = await blob.upload(Buffer.alloc(5000, 1), 5000);
    assert.equal(put._response.status, 201);
    assert.ok(put.etag !== undefined && put.lastModified instanceof Date && put.requestId !== undefined && put.version !== undefined);
    const whole = await blob.downloadToBuffer();
    assert.equal(whole.length, 5000);
    const part = await blob.download(10, 20);
    assert.equal(part.contentLength, 20);
    assert.equal(part.contentRange, 'bytes 10-29/5000');
    const properties = await blob.getProperties();
    assert.equal(properties.contentLength, 5000);
    assert.equal(properties.blobType, 'BlockBlob');
    await assert.rejects(container.getBlockBlobClient('absent').download(), (error: unknown) => error instanceof RestError && error.statusCode === 404);
  });

  it('commits staged blocks to a blob of their total length and lists every name in pages', async () => {
    const client = new SdkBlobClient({ connectionString: devConnectionString(port), maxTries: 1 });
    await client.createContainer('sdk-list');
    const ids = [blockIdFor(0), blockIdFor(1)];
    await client.stageBlock('sdk-list', 'big', ids[0] ?? '', Buffer.alloc(3000));
    await client.stageBlock('sdk-list', 'big', ids[1] ?? '', Buffer.alloc(4000));
    await client.commitBlockList('sdk-list', 'big', ids);
    for (let i = 0; i < 12; i++) await client.putBlob('sdk-list', `x${String(i).padStart(2, '0')}`, Buffer.from('hi'));
    const names: string[] = [];
    let marker: string | undefined;
    let pages = 0;
    do {
      const page = await client.listPage('sdk-list', marker, 5);
      names.push(...page.blobs.map((blob) => `${blob.name}:${blob.contentLength}`));
      marker = page.nextMarker;
      pages += 1;
    } while (marker !== undefined && pages < 10);
    assert.equal(pages, 3);
    assert.equal(names.length, 13);
    assert.equal(names[0], 'big:7000');
    assert.equal(names[12], 'x11:2');
    let streamed = 0;
    assert.equal(await client.readBlobStream('sdk-list', 'big', (chunk) => (streamed += chunk.length)), 7000);
    assert.equal(streamed, 7000);
  });

  it('serves the raw undici client: put, get, 404, Put Block, Put Block List, streamed get', async () => {
    const raw = new RawBlobClient({ port, accountKey: devAccountKey, connections: 2 });
    try {
      await raw.createContainer('raw-one');
      await raw.putBlob('raw-one', 'r/1', Buffer.alloc(4096, 7));
      assert.equal((await raw.getBlob('raw-one', 'r/1'))?.length, 4096);
      assert.equal(await raw.getBlob('raw-one', 'r/2'), null);
      const ids = [blockIdFor(0), blockIdFor(1)];
      await raw.stageBlock('raw-one', 'big', ids[0] ?? '', Buffer.alloc(3000));
      await raw.stageBlock('raw-one', 'big', ids[1] ?? '', Buffer.alloc(4000));
      await raw.commitBlockList('raw-one', 'big', ids);
      let streamed = 0;
      assert.equal(await raw.readBlobStream('raw-one', 'big', (chunk) => (streamed += chunk.length)), 7000);
      assert.equal(streamed, 7000);
    } finally {
      await raw.close();
    }
  });

  it('parses targets and ranges', () => {
    assert.deepEqual({ ...parseTarget('/acct/c/a%20b/c?comp=block'), query: undefined }, { container: 'c', blob: 'a b/c', query: undefined });
    assert.equal(parseTarget('/acct'), null);
    assert.deepEqual(parseRange('bytes=0-9', 100), { start: 0, end: 9 });
    assert.deepEqual(parseRange('bytes=90-', 100), { start: 90, end: 99 });
    assert.deepEqual(parseRange('bytes=90-1000', 100), { start: 90, end: 99 });
    assert.equal(parseRange('bytes=100-', 100), 'invalid');
    assert.equal(parseRange(null, 100), null);
  });
});
