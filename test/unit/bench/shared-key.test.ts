// The benchmark's SharedKey signer must produce the same Authorization header as the official
// SDK for the same request: a capturing server records what the SDK sent, the signer re-signs it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { BlobServiceClient } from '@azure/storage-blob';
import { devAccountKey, devAccountName, devConnectionString } from '../../../bench/blob/peer.ts';
import { sharedKeyAuthorization, stringToSign } from '../../../bench/blob/shared-key.ts';

interface Captured {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
}

function flatHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) if (typeof value === 'string' && name !== 'authorization') flat[name] = value;
  return flat;
}

describe('SharedKey signer', () => {
  const captured: Captured[] = [];
  let server: Server;
  let port = 0;

  before(async () => {
    server = createServer((request, response) => {
      captured.push({ method: request.method ?? '', url: request.url ?? '', headers: request.headers });
      request.resume();
      request.on('end', () => response.writeHead(201, { 'x-ms-request-id': '1', etag: '"1"', 'last-modified': new Date().toUTCString() }).end());
    });
    await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
    const address = server.address();
    port = typeof address === 'object' && address !== null ? address.port : 0;
  });

  after(() => {
    server.closeAllConnections();
    server.close();
  });

  it('signs Put Blob, Put Block (query parameters) and Create Container exactly as the SDK does', async () => {
    const container = BlobServiceClient.fromConnectionString(devConnectionString(port), { retryOptions: { maxTries: 1 } }).getContainerClient('signed');
    await container.create();
    const blob = container.getBlockBlobClient('dir/name with space');
    await blob.upload(Buffer.alloc(10, 1), 10, { blobHTTPHeaders: { blobContentType: 'text/plain' }, metadata: { zeta: '1', alpha: '2' } });
    await blob.stageBlock(Buffer.from('YmxvY2s=', 'utf8').toString('base64'), Buffer.alloc(3), 3);
    assert.equal(captured.length, 3);
    for (const request of captured) {
      const mine = sharedKeyAuthorization({ method: request.method, pathAndQuery: request.url, headers: flatHeaders(request.headers) }, devAccountName, devAccountKey);
      assert.equal(mine, request.headers.authorization, `${request.method} ${request.url}`);
    }
  });

  it('leaves a zero Content-Length empty and sorts x-ms headers', () => {
    const text = stringToSign({ method: 'get', pathAndQuery: '/acct/c?restype=container&comp=list', headers: { 'content-length': '0', 'x-ms-version': 'v', 'x-ms-date': 'd' } }, 'acct');
    assert.equal(text, 'GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:d\nx-ms-version:v\n/acct/acct/c\ncomp:list\nrestype:container');
  });
});
