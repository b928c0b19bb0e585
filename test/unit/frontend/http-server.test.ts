// The HTTP edge through real sockets on 127.0.0.1: the official SDK and raw undici/net clients
// against FrontendServer with the NotWired backend (no storage semantics are faked). Asserts
// headers, error mapping, authentication, CORS, limits and slow clients, and that no rejected
// request ever reached the backend.

import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { BlobServiceClient, RestError, StorageSharedKeyCredential } from '@azure/storage-blob';
import { Authorizer } from '../../../src/frontend/auth/authorizer.ts';
import { hmacSha256Base64 } from '../../../src/frontend/auth/canonical.ts';
import { sharedKeyStringToSign } from '../../../src/frontend/auth/shared-key.ts';
import { notWiredBackend, type BlobBackend } from '../../../src/frontend/blob-backend.ts';
import type { BlobProperties, BlobServiceProperties, ETag } from '../../../src/frontend/model.ts';
import { FrontendServer } from '../../../src/frontend/http-server.ts';
import { parseQuery } from '../../../src/frontend/request-parser.ts';
import { SystemClock } from '../../../src/util/clock.ts';
import { account, accountKey, accountKeyBase64, apiVersionLatest } from './helpers.ts';

let backendCalls = 0;
let port = 0;
let server: FrontendServer;

function recording(backend: BlobBackend): BlobBackend {
  const wrap = <T extends object>(family: T): T => new Proxy(family, {
    get(target, key, receiver): unknown {
      const value: unknown = Reflect.get(target, key, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]): unknown => {
        backendCalls += 1;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { service: wrap(backend.service), container: wrap(backend.container), blockBlob: wrap(backend.blockBlob), appendBlob: wrap(backend.appendBlob), blob: wrap(backend.blob) };
}

before(async () => {
  const clock = new SystemClock();
  server = new FrontendServer({
    backend: recording(notWiredBackend()), clock, apiVersionLatest, headersTimeoutMs: 400, bodyIdleTimeoutMs: 400,
    authorizer: new Authorizer({ clock, accountKeys: (name) => (name === account ? [accountKey] : null), storedPolicy: () => Promise.resolve(null), publicAccess: () => Promise.resolve(null) }),
    corsRules: () => Promise.resolve([{ allowedOrigins: ['https://app.example'], allowedMethods: ['GET', 'PUT'], allowedHeaders: ['x-ms-*', 'content-type'], exposedHeaders: ['x-ms-request-id'], maxAgeInSeconds: 60 }]),
  });
  port = await server.listen(0, '127.0.0.1');
});
after(() => server.close());

const base = (): string => `http://127.0.0.1:${port}/${account}`;

function signed(method: string, path: string, headers: Record<string, string> = {}): Record<string, string> {
  return signedFor(port, method, path, headers);
}

function signedFor(serverPort: number, method: string, path: string, headers: Record<string, string> = {}): Record<string, string> {
  const all: Record<string, string> = { 'x-ms-date': new Date().toUTCString(), 'x-ms-version': '2021-08-06', host: `127.0.0.1:${serverPort}`, ...headers };
  const [rawPath = '', rawQuery = ''] = path.split('?');
  const map = new Map(Object.entries(all).map(([k, v]) => [k.toLowerCase(), v]));
  const text = sharedKeyStringToSign({ method, account, rawPath, query: parseQuery(rawQuery), headers: map, version: '2021-08-06' });
  return { ...all, authorization: `SharedKey ${account}:${hmacSha256Base64(accountKey, text)}` };
}

async function sdkError(call: () => Promise<unknown>): Promise<RestError> {
  try {
    await call();
  } catch (error) {
    if (error instanceof RestError) return error;
    throw error;
  }
  throw new Error('expected the call to fail');
}

test('the official SDK reaches the edge: authenticated, answered with Azure\'s headers and a clear NotImplemented', async (t) => {
  const client = new BlobServiceClient(base(), new StorageSharedKeyCredential(account, accountKeyBase64), { retryOptions: { maxTries: 1 } });
  const before = backendCalls;
  const calls: (() => Promise<unknown>)[] = [
    () => client.getContainerClient('cont').create(),
    () => client.getProperties(),
    () => client.getContainerClient('cont').getBlockBlobClient('a/b.txt').upload('hello', 5),
    () => client.getContainerClient('cont').getBlockBlobClient('a/b.txt').download(),
    () => client.listContainers().byPage().next(),
  ];
  for (const call of calls) {
    const error = await sdkError(call);
    assert.equal(error.statusCode, 501);
    assert.equal(error.code, 'NotImplemented');
    const headers = error.response?.headers;
    assert.match(headers?.get('x-ms-request-id') ?? '', /^[0-9a-f-]{36}$/);
    assert.equal(headers?.get('x-ms-version'), apiVersionLatest);
    assert.notEqual(headers?.get('x-ms-client-request-id') ?? '', '', 'client request id echoed');
    assert.ok(Math.abs(Date.parse(headers?.get('date') ?? '') - Date.now()) < 5000);
  }
  assert.equal(backendCalls - before, calls.length, 'each authenticated operation reached the backend once');
  const wrongKey = new BlobServiceClient(base(), new StorageSharedKeyCredential(account, Buffer.alloc(64, 1).toString('base64')), { retryOptions: { maxTries: 1 } });
  const denied = await sdkError(() => wrongKey.getContainerClient('cont').create());
  assert.deepEqual([denied.statusCode, denied.code], [403, 'AuthenticationFailed']);
  assert.equal(backendCalls - before, calls.length, 'a forged request never reaches the backend');
  t.diagnostic(`SDK operations through sockets: ${calls.length + 1}, backend calls ${calls.length}, forged requests reaching the backend: 0`);
});

test('raw HTTP: errors carry x-ms-error-code and Azure\'s XML body, HEAD has none, client ids are echoed', async () => {
  const before = backendCalls;
  const bad = await request(`${base()}/cont/b`, { method: 'GET', headers: { 'x-ms-range': 'bytes=9-1', 'x-ms-client-request-id': 'abc-123' } });
  const text = await bad.body.text();
  assert.equal(bad.statusCode, 416);
  assert.equal(bad.headers['x-ms-error-code'], 'InvalidRange');
  assert.equal(bad.headers['x-ms-client-request-id'], 'abc-123');
  assert.match(text, /^<\?xml version="1.0" encoding="utf-8"\?><Error><Code>InvalidRange<\/Code><Message>The range specified is invalid for the current size of the resource\.\nRequestId:[0-9a-f-]{36}\nTime:/);
  const anonymous = await request(`${base()}/cont/b`, { method: 'HEAD' });
  assert.equal(anonymous.statusCode, 404);
  assert.equal(anonymous.headers['x-ms-error-code'], 'ResourceNotFound');
  assert.equal(await anonymous.body.text(), '');
  const unsupported = await request(`${base()}/cont/b?comp=page`, { method: 'PUT', headers: signed('PUT', `/${account}/cont/b?comp=page`) });
  assert.equal(unsupported.statusCode, 501);
  assert.match(await unsupported.body.text(), /<OperationName>PutPage<\/OperationName>/);
  assert.equal(backendCalls, before, 'rejected and unsupported requests never reach the backend');
});

test('CORS: preflight answered from the rules without the backend; actual responses carry allow headers', async () => {
  const before = backendCalls;
  const ok = await request(`${base()}/cont/b`, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'x-ms-blob-type,content-type' } });
  await ok.body.dump();
  assert.equal(ok.statusCode, 200);
  assert.equal(ok.headers['access-control-allow-origin'], 'https://app.example');
  assert.equal(ok.headers['access-control-max-age'], '60');
  const denied = await request(`${base()}/cont/b`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'PUT' } });
  assert.equal(denied.statusCode, 403);
  assert.equal(denied.headers['x-ms-error-code'], 'CorsPreflightFailure');
  await denied.body.dump();
  const actual = await request(`${base()}/cont/b`, { method: 'GET', headers: { origin: 'https://app.example' } });
  await actual.body.dump();
  assert.equal(actual.headers['access-control-allow-origin'], 'https://app.example');
  assert.equal(actual.headers['access-control-expose-headers'], 'x-ms-request-id');
  assert.equal(backendCalls, before);
});

function rawExchange(payload: string, waitMs: number): Promise<{ response: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let response = '';
    let closed = false;
    socket.on('data', (data: Buffer) => { response += data.toString('latin1'); });
    socket.on('close', () => { closed = true; });
    socket.on('error', () => { closed = true; });
    socket.write(payload);
    setTimeout(() => {
      socket.destroy();
      resolve({ response, closed });
    }, waitMs);
  });
}

test('limits and slow clients: oversized heads, header floods, slowloris, stalled and oversized bodies change nothing', async (t) => {
  const before = backendCalls;
  const huge = await rawExchange(`GET /${account}/cont/b HTTP/1.1\r\nHost: x\r\nx-big: ${'a'.repeat(40 * 1024)}\r\n\r\n`, 300);
  assert.match(huge.response, /^HTTP\/1.1 431/);
  const floodHeaders = Array.from({ length: 300 }, (_, i) => `h${i}: v\r\n`).join('');
  const flood = await rawExchange(`GET /${account}/cont/b HTTP/1.1\r\nHost: x\r\n${floodHeaders}\r\n`, 300);
  assert.match(flood.response, /^HTTP\/1.1 4\d\d/);
  const slowloris = await rawExchange(`GET /${account}/cont/b HTTP/1.1\r\nHost: x\r\n`, 1500);
  assert.ok(slowloris.closed || /^HTTP\/1.1 408/.test(slowloris.response), 'a head that never ends is cut off');
  const path = `/${account}/cont/b?comp=tags`;
  const stalledHeaders = signed('PUT', path, { 'content-length': '100' });
  const stalled = await rawExchange(`PUT ${path} HTTP/1.1\r\n${Object.entries(stalledHeaders).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n<Tags>`, 1200);
  assert.ok(stalled.closed, 'a stalled body is cut off by the idle timeout');
  assert.equal(stalled.response, '', 'and nothing was answered or applied');
  const longBody = '<Tags><TagSet></TagSet></Tags>JUNKJUNKJUNK';
  const longHeaders = signed('PUT', path, { 'content-length': '10' });
  const long = await rawExchange(`PUT ${path} HTTP/1.1\r\n${Object.entries(longHeaders).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${longBody}`, 400);
  assert.match(long.response, /^HTTP\/1.1 400[\s\S]*x-ms-error-code: InvalidXmlDocument/i);
  const tooBig = await request(`${base()}/cont/b?comp=appendblock`, { method: 'PUT', headers: signed('PUT', `/${account}/cont/b?comp=appendblock`, { 'content-length': String(5 * 1024 * 1024) }), body: Buffer.alloc(16) }).catch(() => null);
  if (tooBig !== null) {
    assert.equal(tooBig.statusCode, 413);
    await tooBig.body.dump();
  }
  assert.equal(backendCalls, before, 'no hostile request reached the backend');
  t.diagnostic('hostile connections: oversized head 431, header flood refused, slowloris cut, stalled body cut, long body refused, oversized body 413; backend calls: 0');
});

/** A backend whose Get Blob streams `chunkCount` chunks of 64 KiB (chunk i filled with i % 251)
 * and records how many it yielded and whether the body was closed (its finally ran). */
function streamingBackend(chunkCount: number): { backend: BlobBackend; yielded: () => number; closed: () => boolean } {
  const chunkBytes = 65_536;
  let yielded = 0;
  let closed = false;
  async function* body(): AsyncGenerator<Uint8Array> {
    try {
      for (let index = 0; index < chunkCount; index += 1) {
        await new Promise<void>((resolve) => { setImmediate(resolve); });
        yielded += 1;
        yield Buffer.alloc(chunkBytes, index % 251);
      }
    } finally {
      closed = true;
    }
  }
  const properties = {
    etag: '"0x1"' as ETag, lastModified: new Date(0), createdOn: new Date(0), contentLength: chunkCount * chunkBytes, blobType: 'BlockBlob',
    httpHeaders: {}, lease: { status: 'unlocked', state: 'available' }, metadata: new Map(),
  } satisfies BlobProperties;
  const base = notWiredBackend();
  return {
    backend: { ...base, blob: { ...base.blob, getBlob: () => Promise.resolve({ properties, body: body(), range: null }) } },
    yielded: () => yielded,
    closed: () => closed,
  };
}

function serverWith(backend: BlobBackend): FrontendServer {
  const clock = new SystemClock();
  const authorizer = new Authorizer({ clock, accountKeys: (name) => (name === account ? [accountKey] : null), storedPolicy: () => Promise.resolve(null), publicAccess: () => Promise.resolve(null) });
  return new FrontendServer({ backend, clock, apiVersionLatest, authorizer, corsRules: () => Promise.resolve([]) });
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await new Promise<void>((resolve) => { setTimeout(resolve, 10); });
  return condition();
}

test('streamed reply bodies: whole and in order, backpressure holds the body, a client gone mid-body closes it', async (t) => {
  const chunkCount = 512; // 32 MiB
  const streaming = streamingBackend(chunkCount);
  const local = serverWith(streaming.backend);
  const localPort = await local.listen(0, '127.0.0.1');
  try {
    const path = `/${account}/streams/blob`;
    const whole = await request(`http://127.0.0.1:${localPort}${path}`, { headers: signedFor(localPort, 'GET', path) });
    assert.equal(whole.statusCode, 200);
    const bytes = Buffer.from(await whole.body.arrayBuffer());
    assert.equal(bytes.length, chunkCount * 65_536);
    for (let index = 0; index < chunkCount; index += 1) assert.equal(bytes[index * 65_536 + 65_535], index % 251, `chunk ${index} in place`);
    assert.ok(streaming.closed());

    const gone = streamingBackend(chunkCount);
    const server2 = serverWith(gone.backend);
    const port2 = await server2.listen(0, '127.0.0.1');
    try {
      const socket = connect(port2, '127.0.0.1');
      const headers = signedFor(port2, 'GET', path);
      socket.write(`GET ${path} HTTP/1.1\r\n${Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('')}\r\n`);
      let received = 0;
      await new Promise<void>((resolve) => {
        socket.on('data', (data: Buffer) => {
          received += data.length;
          if (received >= 256 * 1024) {
            socket.pause(); // stop reading: the server must stop pulling the body
            resolve();
          }
        });
      });
      await new Promise<void>((resolve) => { setTimeout(resolve, 300); });
      const yieldedWhilePaused = gone.yielded();
      assert.ok(yieldedWhilePaused < chunkCount, `backpressure: ${yieldedWhilePaused} of ${chunkCount} chunks pulled while the client reads nothing`);
      socket.destroy();
      assert.ok(await waitFor(() => gone.closed(), 10_000), 'the body is closed once the client is gone');
      assert.ok(gone.yielded() < chunkCount, 'no more chunks after the client went away');
      t.diagnostic(`32 MiB body byte-exact; client paused after ${received} bytes: ${yieldedWhilePaused} of ${chunkCount} chunks pulled, body closed after disconnect at ${gone.yielded()}`);
    } finally {
      await server2.close();
    }
  } finally {
    await local.close();
  }
});

/** A backend whose Put Blob reads its body and answers as a write does and whose Get Blob Service
 * Properties answers a document; everything else is not wired. */
function putBlobBackend(): BlobBackend {
  const base = notWiredBackend();
  const putBlob = async (_op: unknown, body: AsyncIterable<Uint8Array>): Promise<{ etag: ETag; lastModified: Date; contentMd5: Uint8Array }> => {
    for await (const chunk of body) void chunk;
    return { etag: '"0x2"' as ETag, lastModified: new Date(0), contentMd5: Buffer.alloc(16, 7) };
  };
  const getBlobServiceProperties = (): Promise<BlobServiceProperties> => Promise.resolve({ defaultServiceVersion: '2021-08-06' });
  return { ...base, blockBlob: { ...base.blockBlob, putBlob }, service: { ...base.service, getBlobServiceProperties } };
}

test('replies held whole carry Content-Length, never a chunked frame: a Put Blob\'s 201 says Content-Length: 0 as Azure\'s does', async (t) => {
  const local = serverWith(putBlobBackend());
  const localPort = await local.listen(0, '127.0.0.1');
  try {
    const path = `/${account}/cont/blob`;
    const headers = signedFor(localPort, 'PUT', path, { 'x-ms-blob-type': 'BlockBlob', 'content-length': '4096' });
    const socket = connect(localPort, '127.0.0.1');
    socket.write(`PUT ${path} HTTP/1.1\r\n${Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('')}\r\n`);
    socket.write(Buffer.alloc(4096, 1));
    const response = await new Promise<string>((resolve) => {
      let text = '';
      socket.on('data', (data: Buffer) => {
        text += data.toString('latin1');
        if (text.includes('\r\n\r\n')) resolve(text);
      });
    });
    socket.destroy();
    const [head = '', rest] = response.split('\r\n\r\n');
    assert.match(head, /^HTTP\/1\.1 201 Created\r\n/);
    assert.match(head, /\r\ncontent-length: 0\r\n/i);
    assert.doesNotMatch(head, /transfer-encoding/i);
    assert.equal(rest, '', 'no body bytes, not even a chunked terminator');
    assert.match(head, /\r\ncontent-md5: BwcHBwcHBwcHBwcHBwcHBw==\r\n/);
    const document = await request(`http://127.0.0.1:${localPort}/${account}/?restype=service&comp=properties`, { headers: signedFor(localPort, 'GET', `/${account}/?restype=service&comp=properties`) });
    const body = await document.body.text();
    assert.equal(document.statusCode, 200);
    assert.match(body, /<DefaultServiceVersion>2021-08-06<\/DefaultServiceVersion>/);
    assert.equal(document.headers['content-length'], String(Buffer.byteLength(body)), 'an XML document is framed by its length too');
    assert.equal(document.headers['transfer-encoding'], undefined);
    t.diagnostic(`Put Blob answer: ${Buffer.byteLength(head) + 4} bytes, Content-Length: 0, no chunked frame`);
  } finally {
    await local.close();
  }
});
