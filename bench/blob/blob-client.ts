// The operations the blob workloads need, behind one small interface with two implementations:
// the official @azure/storage-blob SDK (what users run) and a raw undici client with SharedKey
// signing (to show how much of a figure is the SDK's own cost). Absence is null, not an error.

export interface ListedBlob {
  readonly name: string;
  readonly contentLength: number;
}

export interface ListPage {
  readonly blobs: readonly ListedBlob[];
  /** Undefined on the last page. */
  readonly nextMarker: string | undefined;
}

/** What the put/get workloads need: both clients implement it. */
export interface PutGetClient {
  readonly kind: 'sdk' | 'raw';
  createContainer(container: string): Promise<void>;
  putBlob(container: string, name: string, body: Buffer): Promise<void>;
  /** The whole blob, or null when it does not exist (404). */
  getBlob(container: string, name: string): Promise<Buffer | null>;
  close(): Promise<void>;
}

/** What the large-blob workload needs (Put Block, Put Block List, a streamed Get Blob): both clients. */
export interface LargeBlobClient extends PutGetClient {
  stageBlock(container: string, name: string, blockId: string, body: Buffer): Promise<void>;
  commitBlockList(container: string, name: string, blockIds: readonly string[]): Promise<void>;
  /** Streams the blob through `onChunk` without holding it whole; bytes read, or null on 404. */
  readBlobStream(container: string, name: string, onChunk: (chunk: Buffer) => void): Promise<number | null>;
}

/** Everything else (listing, cleanup): the SDK client only. */
export interface BlobStoreClient extends LargeBlobClient {
  deleteContainer(container: string): Promise<void>;
  listPage(container: string, marker: string | undefined, pageSize: number): Promise<ListPage>;
}

/** Block ids must all have one length within a blob; base64 of a fixed-width index. */
export function blockIdFor(index: number): string {
  return Buffer.from(`block-${String(index).padStart(8, '0')}`, 'utf8').toString('base64');
}
