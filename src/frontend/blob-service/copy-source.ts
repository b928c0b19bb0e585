// The source of Copy Blob, Copy Blob From URL and Put Block From URL: a blob (or snapshot) of the
// same Kura account, named by URL, in either form Azure clients use:
//   http(s)://host[:port]/<account>/<container>/<blob>[?snapshot=…]   (path style, the emulator's)
//   http(s)://<account>.<host>/<container>/<blob>[?snapshot=…]         (host style)
// It is used when the URL's authority is the request's Host (CopySource.local); another account of
// this endpoint is refused with CannotVerifyCopySource. Sources elsewhere are fetched over HTTP
// under the host policy (remote-source.ts, remote-copy.ts, docs/copy-sources.md).
//
// Invariants: the source is read with its own conditions (x-ms-source-if-*) and lease; its bytes
// are identified by refs of its own partition (callers copy them, never share them).
// Fault model: the URL is client input (validated for shape at the edge); a missing source is
// BlobNotFound / ContainerNotFound as Azure answers for a same-account source.

import { FrontendError } from '../errors.ts';
import type { LeaseId } from '../model.ts';
import type { Conditions, CopySource } from '../operation.ts';
import { checkConditions } from './conditions.ts';
import { blobContent, type StoredContent } from './content.ts';
import { blobNotFound, loadContainer, readBlob, type BlobServiceContext, type LoadedBlob } from './context.ts';
import { blobKey } from './keys.ts';
import { checkLeaseAccess } from './lease.ts';
import { readSnapshotRow } from './snapshots.ts';

export interface SourceBlob {
  readonly loaded: LoadedBlob;
  readonly content: StoredContent;
}

interface SourceName {
  readonly container: string;
  readonly blob: string;
  readonly snapshot?: string;
}

function cannotVerify(reason: string): FrontendError {
  return new FrontendError('CannotVerifyCopySource', `copy source: ${reason}`);
}

export function parseSourceUrl(account: string, text: string): SourceName {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw cannotVerify('not a URL');
  }
  const segments = url.pathname.split('/').slice(1).map((part) => decodeURIComponent(part));
  const hostStyle = url.hostname.split('.')[0] === account && segments[0] !== account;
  const rest = hostStyle ? segments : segments[0] === account ? segments.slice(1) : null;
  if (rest === null) throw cannotVerify('only blobs of the same account can be copied');
  const [container, ...blobParts] = rest;
  if (container === undefined || container === '' || blobParts.length === 0) throw cannotVerify('the URL names no blob');
  const snapshot = url.searchParams.get('snapshot');
  return { container, blob: blobParts.join('/'), ...(snapshot === null ? {} : { snapshot }) };
}

export async function readSource(ctx: BlobServiceContext, account: string, source: CopySource, conditions: Conditions, leaseId: LeaseId | undefined): Promise<SourceBlob> {
  const name = parseSourceUrl(account, source.url);
  const container = await loadContainer(ctx, account, name.container);
  const loaded = name.snapshot === undefined
    ? await readBlob(ctx, container, name.blob)
    : await readSnapshotRow(ctx, blobKey(container.blobs, name.blob), name.snapshot);
  if (loaded === null) throw blobNotFound();
  const nowMs = ctx.clock.nowMs();
  if (loaded.snapshot === undefined) checkLeaseAccess(loaded.record.lease, nowMs, leaseId, { write: false, target: 'blob' });
  checkConditions(conditions, { etag: loaded.etag, modifiedMs: loaded.modifiedMs, tags: loaded.record.tags }, { read: false });
  if (loaded.record.tier === 'Archive') throw new FrontendError('BlobArchived', 'the source blob is archived');
  return { loaded, content: await blobContent(ctx, loaded) };
}
