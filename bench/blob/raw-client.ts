// LargeBlobClient over raw undici with SharedKey signing: the same Azure requests the SDK sends
// for Put Blob, Get Blob, Put Block and Put Block List, without the SDK's pipeline (policies,
// retries, XML mapping). One undici Pool per peer, with as many connections as the workload's
// concurrency (blocks in flight, for large uploads): on loopback for the peers the benchmark
// starts, or at a connection string's blob endpoint (`kura bench`). A large download is one Get
// Blob without a range, as the SDK's download() sends it, streamed chunk by chunk.
import { Pool } from 'undici';
import type { LargeBlobClient } from './blob-client.ts';
import { devAccountName } from './peer.ts';
import { sharedKeyAuthorization } from './shared-key.ts';

const serviceVersion = '2025-07-05';

export class RawBlobClient implements LargeBlobClient {
  readonly kind = 'raw';
  private readonly pool: Pool;
  private readonly accountKey: string;
  private readonly accountName: string;

  /** A peer on 127.0.0.1:port with the development account, or the endpoint a connection string names. */
  constructor(options: ({ readonly port: number; readonly accountKey: string } | { readonly connectionString: string }) & { readonly connections: number }) {
    const target = 'connectionString' in options ? rawTarget(options.connectionString) : { origin: `http://127.0.0.1:${options.port}`, accountName: devAccountName, accountKey: options.accountKey };
    this.pool = new Pool(target.origin, { connections: options.connections, pipelining: 1 });
    this.accountKey = target.accountKey;
    this.accountName = target.accountName;
  }

  async createContainer(container: string): Promise<void> {
    const { statusCode } = await this.send('PUT', `/${this.accountName}/${encodeURIComponent(container)}?restype=container`, {}, null);
    if (statusCode !== 201 && statusCode !== 409) throw new Error(`Create Container: status ${statusCode}`);
  }

  async putBlob(container: string, name: string, body: Buffer): Promise<void> {
    const { statusCode } = await this.send('PUT', this.blobPath(container, name), { 'x-ms-blob-type': 'BlockBlob', 'content-type': 'application/octet-stream' }, body);
    if (statusCode !== 201) throw new Error(`Put Blob: status ${statusCode}`);
  }

  async getBlob(container: string, name: string): Promise<Buffer | null> {
    const { statusCode, body } = await this.send('GET', this.blobPath(container, name), {}, null, true);
    if (statusCode === 404) return null;
    if (statusCode !== 200) throw new Error(`Get Blob: status ${statusCode}`);
    return body;
  }

  async stageBlock(container: string, name: string, blockId: string, body: Buffer): Promise<void> {
    const { statusCode } = await this.send('PUT', `${this.blobPath(container, name)}?comp=block&blockid=${encodeURIComponent(blockId)}`, {}, body);
    if (statusCode !== 201) throw new Error(`Put Block: status ${statusCode}`);
  }

  async commitBlockList(container: string, name: string, blockIds: readonly string[]): Promise<void> {
    // Block ids are base64 (blockIdFor): nothing in them needs XML escaping.
    const xml = `<?xml version="1.0" encoding="utf-8"?><BlockList>${blockIds.map((id) => `<Latest>${id}</Latest>`).join('')}</BlockList>`;
    const { statusCode } = await this.send('PUT', `${this.blobPath(container, name)}?comp=blocklist`, { 'content-type': 'application/xml' }, Buffer.from(xml, 'utf8'));
    if (statusCode !== 201) throw new Error(`Put Block List: status ${statusCode}`);
  }

  async readBlobStream(container: string, name: string, onChunk: (chunk: Buffer) => void): Promise<number | null> {
    let bytes = 0;
    const { statusCode } = await this.send('GET', this.blobPath(container, name), {}, null, (chunk) => {
      bytes += chunk.length;
      onChunk(chunk);
    });
    if (statusCode === 404) return null;
    if (statusCode !== 200) throw new Error(`Get Blob: status ${statusCode}`);
    return bytes;
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  /**
   * Sends one signed request; the answer's body is kept (`keepBody`), streamed to a callback, or
   * drained. An error answer's body is kept whatever was asked, and never passed to the callback.
   */
  private async send(method: string, path: string, extra: Record<string, string>, body: Buffer | null, keepBody: boolean | ((chunk: Buffer) => void) = false): Promise<{ statusCode: number; body: Buffer }> {
    const headers: Record<string, string> = {
      ...extra,
      'content-length': String(body?.length ?? 0),
      'x-ms-date': new Date().toUTCString(),
      'x-ms-version': serviceVersion,
    };
    headers['authorization'] = sharedKeyAuthorization({ method, pathAndQuery: path, headers }, this.accountName, this.accountKey);
    const response = await this.pool.request({ method: method === 'PUT' ? 'PUT' : 'GET', path, headers, body });
    const failed = response.statusCode >= 300;
    const chunks: Buffer[] = [];
    for await (const chunk of response.body) {
      if (typeof keepBody === 'function' && !failed) keepBody(chunk as Buffer);
      else if (keepBody === true || failed) chunks.push(chunk as Buffer);
    }
    return { statusCode: response.statusCode, body: Buffer.concat(chunks) };
  }

  private blobPath(container: string, name: string): string {
    return `/${this.accountName}/${encodeURIComponent(container)}/${name.split('/').map(encodeURIComponent).join('/')}`;
  }
}

/**
 * Where a connection string's raw requests go: its BlobEndpoint's origin, path-style under the
 * account (as the development endpoints and Kura's are), signed with its AccountKey.
 */
export function rawTarget(connectionString: string): { readonly origin: string; readonly accountName: string; readonly accountKey: string } {
  const fields = new Map(connectionString.split(';').filter((part) => part.includes('=')).map((part) => [part.slice(0, part.indexOf('=')).trim(), part.slice(part.indexOf('=') + 1).trim()]));
  const endpoint = fields.get('BlobEndpoint');
  const accountName = fields.get('AccountName');
  const accountKey = fields.get('AccountKey');
  if (endpoint === undefined || accountName === undefined || accountKey === undefined) throw new Error('the raw client needs a connection string with BlobEndpoint, AccountName and AccountKey');
  const url = new URL(endpoint);
  if (url.protocol !== 'http:') throw new Error(`the raw client speaks plain HTTP only, not ${url.protocol} (${endpoint})`);
  if (url.pathname.replace(/\/+$/, '') !== `/${accountName}`) throw new Error(`the raw client addresses path-style endpoints (http://host:port/${accountName}) only, not ${endpoint}`);
  return { origin: url.origin, accountName, accountKey };
}
