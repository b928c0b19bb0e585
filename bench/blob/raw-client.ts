// PutGetClient over raw undici with SharedKey signing: the same Azure requests the SDK sends
// for Put Blob and Get Blob, without the SDK's pipeline (policies, retries, XML mapping). One
// undici Pool per peer, with as many connections as the workload's concurrency, on loopback.
import { Pool } from 'undici';
import type { PutGetClient } from './blob-client.ts';
import { devAccountName } from './peer.ts';
import { sharedKeyAuthorization } from './shared-key.ts';

const serviceVersion = '2025-07-05';

export class RawBlobClient implements PutGetClient {
  readonly kind = 'raw';
  private readonly pool: Pool;
  private readonly accountKey: string;

  constructor(options: { readonly port: number; readonly accountKey: string; readonly connections: number }) {
    this.pool = new Pool(`http://127.0.0.1:${options.port}`, { connections: options.connections, pipelining: 1 });
    this.accountKey = options.accountKey;
  }

  async createContainer(container: string): Promise<void> {
    const { statusCode } = await this.send('PUT', `/${devAccountName}/${encodeURIComponent(container)}?restype=container`, {}, null);
    if (statusCode !== 201 && statusCode !== 409) throw new Error(`Create Container: status ${statusCode}`);
  }

  async putBlob(container: string, name: string, body: Buffer): Promise<void> {
    const { statusCode } = await this.send('PUT', blobPath(container, name), { 'x-ms-blob-type': 'BlockBlob', 'content-type': 'application/octet-stream' }, body);
    if (statusCode !== 201) throw new Error(`Put Blob: status ${statusCode}`);
  }

  async getBlob(container: string, name: string): Promise<Buffer | null> {
    const { statusCode, body } = await this.send('GET', blobPath(container, name), {}, null, true);
    if (statusCode === 404) return null;
    if (statusCode !== 200) throw new Error(`Get Blob: status ${statusCode}`);
    return body;
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  private async send(method: string, path: string, extra: Record<string, string>, body: Buffer | null, keepBody = false): Promise<{ statusCode: number; body: Buffer }> {
    const headers: Record<string, string> = {
      ...extra,
      'content-length': String(body?.length ?? 0),
      'x-ms-date': new Date().toUTCString(),
      'x-ms-version': serviceVersion,
    };
    headers['authorization'] = sharedKeyAuthorization({ method, pathAndQuery: path, headers }, devAccountName, this.accountKey);
    const response = await this.pool.request({ method: method === 'PUT' ? 'PUT' : 'GET', path, headers, body });
    const chunks: Buffer[] = [];
    for await (const chunk of response.body) {
      if (keepBody || response.statusCode >= 300) chunks.push(chunk as Buffer);
    }
    return { statusCode: response.statusCode, body: Buffer.concat(chunks) };
  }
}

function blobPath(container: string, name: string): string {
  return `/${devAccountName}/${encodeURIComponent(container)}/${name.split('/').map(encodeURIComponent).join('/')}`;
}
