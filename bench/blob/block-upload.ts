// One large blob uploaded as the SDK's uploadData does it: Put Block of each block with a bounded
// number in flight (bodies from a BlockPayloads pool made before any timing), then Put Block List.
import { blockIdFor, type LargeBlobClient } from './blob-client.ts';
import { forEachBounded } from './bounded-parallel.ts';
import type { BlockPayloads } from './payload.ts';

export interface BlockUpload {
  readonly container: string;
  readonly blockCount: number;
  /** Blocks in flight. */
  readonly concurrency: number;
}

export async function uploadInBlocks(client: LargeBlobClient, payloads: BlockPayloads, upload: BlockUpload, name: string): Promise<void> {
  const ids = Array.from({ length: upload.blockCount }, (_, index) => blockIdFor(index));
  await forEachBounded(upload.blockCount, upload.concurrency, (index) => payloads.with(`${name}#${index}`, (body) => client.stageBlock(upload.container, name, ids[index] ?? '', body)));
  await client.commitBlockList(upload.container, name, ids);
}
