// BlobStoreClient over the official @azure/storage-blob SDK, as a user would call it: one
// BlobServiceClient from the peer's connection string, Put Blob by `upload`, Get Blob by
// `download` (one request), Put Block / Put Block List, List Blobs by pages. Retries are off
// (maxTries 1) so a failure is counted, not hidden behind a retry, except in the durability
// read-back, which retries transient network errors after a restart.
//
// Several connection strings (a dev cluster's front ends, each at its own address): calls go to
// them in turn, one per operation, as a client given a list of addresses (or DNS round robin)
// spreads its requests, with no balancer process in the path.
import { BlobServiceClient, RestError, type ContainerClient } from '@azure/storage-blob';
import type { BlobStoreClient, ListPage } from './blob-client.ts';

export class SdkBlobClient implements BlobStoreClient {
  readonly kind = 'sdk';
  private readonly services: readonly BlobServiceClient[];
  private next = 0;

  constructor(options: { readonly connectionString: string | readonly string[]; readonly maxTries: number }) {
    const strings = typeof options.connectionString === 'string' ? [options.connectionString] : options.connectionString;
    if (strings.length === 0) throw new Error('SdkBlobClient needs a connection string');
    this.services = strings.map((text) => BlobServiceClient.fromConnectionString(text, { retryOptions: { maxTries: options.maxTries, retryDelayInMs: 100, maxRetryDelayInMs: 1000 } }));
  }

  async createContainer(container: string): Promise<void> {
    await this.container(container).createIfNotExists();
  }

  async deleteContainer(container: string): Promise<void> {
    await this.container(container).deleteIfExists();
  }

  async putBlob(container: string, name: string, body: Buffer): Promise<void> {
    await this.container(container).getBlockBlobClient(name).upload(body, body.length);
  }

  async getBlob(container: string, name: string): Promise<Buffer | null> {
    const chunks: Buffer[] = [];
    const bytes = await this.readBlobStream(container, name, (chunk) => chunks.push(chunk));
    return bytes === null ? null : Buffer.concat(chunks, bytes);
  }

  async stageBlock(container: string, name: string, blockId: string, body: Buffer): Promise<void> {
    await this.container(container).getBlockBlobClient(name).stageBlock(blockId, body, body.length);
  }

  async commitBlockList(container: string, name: string, blockIds: readonly string[]): Promise<void> {
    await this.container(container).getBlockBlobClient(name).commitBlockList([...blockIds]);
  }

  async readBlobStream(container: string, name: string, onChunk: (chunk: Buffer) => void): Promise<number | null> {
    try {
      const response = await this.container(container).getBlobClient(name).download();
      const body = response.readableStreamBody;
      if (body === undefined) throw new Error('Get Blob answered without a body stream');
      let bytes = 0;
      for await (const chunk of body) {
        const buffer = chunk as Buffer;
        bytes += buffer.length;
        onChunk(buffer);
      }
      return bytes;
    } catch (error) {
      if (error instanceof RestError && error.statusCode === 404) return null;
      throw error;
    }
  }

  /** A container that does not exist (a restart lost it) lists as empty. */
  async listPage(container: string, marker: string | undefined, pageSize: number): Promise<ListPage> {
    const pages = this.container(container).listBlobsFlat().byPage({ maxPageSize: pageSize, ...(marker === undefined ? {} : { continuationToken: marker }) });
    let result;
    try {
      result = await pages.next();
    } catch (error) {
      if (error instanceof RestError && error.statusCode === 404) return { blobs: [], nextMarker: undefined };
      throw error;
    }
    if (result.done === true) return { blobs: [], nextMarker: undefined };
    const page = result.value;
    const next = page.continuationToken;
    return {
      blobs: page.segment.blobItems.map((item) => ({ name: item.name, contentLength: item.properties.contentLength ?? 0 })),
      nextMarker: next === undefined || next === '' ? undefined : next,
    };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** The next endpoint's container client (round robin over the connection strings). */
  private container(name: string): ContainerClient {
    const service = this.services[this.next] ?? this.services[0];
    this.next = (this.next + 1) % this.services.length;
    if (service === undefined) throw new Error('no endpoint');
    return service.getContainerClient(name);
  }
}
