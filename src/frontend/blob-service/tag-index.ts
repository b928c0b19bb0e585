// The blob index (docs/blob-schema.md, "Tag index"): one row per (tag, blob) under
// `T <account> \0 <tag key> \0 <tag value> \0 <container> \0 <inc> \0 <name>`, kept by every write
// that changes a blob's tags, and Find Blobs by Tags answered from it.
//
// The index rows live in another key range than the blob's own row (their order is by tag, the
// blob's by name), so they may be in another partition and cannot share its transaction. They
// are kept exact for readers by three rules instead:
//   1. a write puts the index rows of the tags it adds *before* its commit (a blob row never
//      holds a tag whose index row is missing);
//   2. it reads the ETags of the index rows of the tags it removes before its commit, and deletes
//      them after the commit only under those ETags (If-Match): a concurrent writer that adds the
//      same tag again re-puts the row before its own commit (new ETag), so that delete fails;
//   3. Find verifies every index row against the blob row (container incarnation, the tag's value,
//      the whole expression), so a row left by a failed commit, a crash between the steps or a
//      deleted container is never answered.
// So Find never misses a blob whose committed tags match (1, 2) and never answers one that does
// not (3). Stale rows cost space only; deleted containers' rows are swept with their blobs.
// Fault model: each index call may fail: before the commit the write fails (nothing committed,
// maybe a stale row); after it, failures are ignored (a stale row).
import { blobScanRowsPerCall, findBlobsScannedRowsMax } from '../../constants.ts';
import type { CommitResult, LiveRow, PartitionOp } from '../../partition/partition.ts';
import { AssertionFailure } from '../../util/assert.ts';
import type { Column } from '../../wire/partition-row.ts';
import { FrontendError } from '../errors.ts';
import type { BlobName, BlobTag, ContainerName, FindBlobsPage, TaggedBlob } from '../model.ts';
import type * as Op from '../operation.ts';
import { fencedCommit } from './container-fence.ts';
import type { BlobServiceContext, LoadedContainer } from './context.ts';
import { blobKey, blobPrefix, containerKey } from './keys.ts';
import { decodeBlob, decodeContainer } from './records.ts';
import { evaluateTagPredicate, parseFindExpression, type FindExpression } from './tag-query.ts';

const sep = Buffer.from([0]);
const indexColumns: readonly Column[] = [{ name: 'v', value: { kind: 'int64', value: 1n } }];

/** `T <account> \0 <tag key> \0`: every index row of one tag key. */
function tagKeyPrefix(account: string, tagKey: string): Buffer {
  return Buffer.concat([Buffer.from('T'), Buffer.from(account, 'utf8'), sep, Buffer.from(tagKey, 'utf8'), sep]);
}

/** The index row of `tag` on the blob whose own row is `blob` (B <account> \0 <container> \0 <inc> \0 <name>). */
export function tagIndexKey(blob: Buffer, tag: BlobTag): Buffer {
  const accountEnd = blob.indexOf(0);
  if (blob[0] !== 'B'.charCodeAt(0) || accountEnd === -1) throw new AssertionFailure('a tag index key is made from a blob key');
  const account = blob.subarray(1, accountEnd).toString('utf8');
  return Buffer.concat([tagKeyPrefix(account, tag.key), Buffer.from(tag.value, 'utf8'), sep, blob.subarray(accountEnd + 1)]);
}

function holds(tags: readonly BlobTag[], tag: BlobTag): boolean {
  return tags.some((other) => other.key === tag.key && other.value === tag.value);
}

export interface TagChange {
  /** The container the blob's rows are under (the write is fenced against its deletion). */
  readonly container: LoadedContainer;
  /** The blob's own row key. */
  readonly blob: Buffer;
  /** Its tags as this attempt read them ([] if absent). */
  readonly before: readonly BlobTag[];
  /** Its tags after `ops` commit ([] if deleted). */
  readonly after: readonly BlobTag[];
}

/** Commits `ops` (one transaction writing or deleting the blob's own row) under rules 1 and 2. */
export async function commitTagged(ctx: BlobServiceContext, change: TagChange, ops: readonly PartitionOp[]): Promise<CommitResult> {
  const added = change.after.filter((tag) => !holds(change.before, tag));
  const removed = change.before.filter((tag) => !holds(change.after, tag));
  // No index row to put or delete (most writes: no tags, or the same ones): the commit alone.
  if (added.length === 0 && removed.length === 0) return fencedCommit(ctx, change.container, ops, () => ctx.tables.transact(ops));
  // Fenced from before the index puts: a write refused for a deleted container adds no index rows.
  const result = await fencedCommit(ctx, change.container, ops, async () => {
    await Promise.all(added.map((tag) => ctx.tables.transact([{ kind: 'put', key: tagIndexKey(change.blob, tag), columns: indexColumns }])));
    const stale = (await Promise.all(removed.map((tag) => ctx.tables.get(tagIndexKey(change.blob, tag))))).filter((row): row is LiveRow => row !== null);
    return { commit: await ctx.tables.transact(ops), stale };
  });
  await Promise.all(result.stale.map((row) => ctx.tables.transact([{ kind: 'delete', key: row.key, ifMatch: row.etag }]).catch((error: unknown) => {
    if (error instanceof AssertionFailure) throw error;
    // Re-put by a concurrent writer (rule 2) or unreachable: a stale row at worst (rule 3).
  })));
  return result.commit;
}

// ---- Find Blobs by Tags -------------------------------------------------------------------------

interface ScanPlan {
  readonly prefix: Buffer;
  readonly start: Buffer;
  readonly end: Buffer | null;
  readonly tagKey: string;
}

/** The index range to scan: an equality term's rows if there is one, else one key's range terms. */
function scanPlan(account: string, expression: FindExpression, container: string | null): ScanPlan {
  const tagTerms = expression.terms.filter((term) => term.key !== '@container');
  const equal = tagTerms.find((term) => term.op === '=');
  if (equal !== undefined) {
    const scoped = [tagKeyPrefix(account, equal.key), Buffer.from(equal.value, 'utf8'), sep, ...(container === null ? [] : [Buffer.from(container, 'utf8'), sep])];
    const prefix = Buffer.concat(scoped);
    return { prefix, start: prefix, end: null, tagKey: equal.key };
  }
  const first = tagTerms[0];
  if (first === undefined) {
    throw new FrontendError('InvalidQueryParameterValue', 'no tag condition', [['QueryParameterName', 'where'], ['Reason', 'Error parsing query: the expression needs at least one tag condition besides @container']]);
  }
  const prefix = tagKeyPrefix(account, first.key);
  let start = prefix;
  let end: Buffer | null = null;
  for (const term of tagTerms.filter((candidate) => candidate.key === first.key)) {
    const value = Buffer.from(term.value, 'utf8');
    // Values end with 0x00 in the key, so `v\0…` rows are exactly the value v, and 0x01 is past them.
    const [low, high] = term.op === '>' ? [Buffer.concat([prefix, value, Buffer.from([1])]), null]
      : term.op === '>=' ? [Buffer.concat([prefix, value, sep]), null]
        : term.op === '<' ? [null, Buffer.concat([prefix, value, sep])]
          : [null, Buffer.concat([prefix, value, Buffer.from([1])])];
    if (low !== null && Buffer.compare(low, start) > 0) start = low;
    if (high !== null && (end === null || Buffer.compare(high, end) < 0)) end = high;
  }
  return { prefix, start, end, tagKey: first.key };
}

/** An index row's key after its tag key prefix: value, container, inc, name. */
function parseIndexRow(key: Buffer, prefixLength: number): { value: string; container: string; inc: string; name: string } | null {
  const parts: string[] = [];
  let rest = key.subarray(prefixLength);
  for (let index = 0; index < 3; index++) {
    const at = rest.indexOf(0);
    if (at === -1) return null;
    parts.push(rest.subarray(0, at).toString('utf8'));
    rest = rest.subarray(at + 1);
  }
  const [value, container, inc] = parts;
  if (value === undefined || container === undefined || inc === undefined) return null;
  return { value, container, inc, name: rest.toString('utf8') };
}

interface FindState {
  readonly ctx: BlobServiceContext;
  readonly account: string;
  readonly expression: FindExpression;
  readonly plan: ScanPlan;
  /** Only this container's blobs (container-level Find, or @container), null: every container. */
  readonly container: string | null;
  readonly incs: Map<string, Promise<string | null>>;
}

/** Rule 3: the blob the row names, if it still holds the row's tag and matches the expression. */
async function verify(state: FindState, row: LiveRow): Promise<TaggedBlob | null> {
  const parsed = parseIndexRow(row.key, tagKeyPrefix(state.account, state.plan.tagKey).length);
  if (parsed === null || (state.container !== null && parsed.container !== state.container)) return null;
  let inc = state.incs.get(parsed.container);
  if (inc === undefined) {
    inc = state.ctx.tables.get(containerKey(state.account, parsed.container)).then((container) => (container === null ? null : decodeContainer(container).inc));
    state.incs.set(parsed.container, inc);
  }
  if ((await inc) !== parsed.inc) return null;
  const blob = await state.ctx.tables.get(blobKey(blobPrefix(state.account, parsed.container, parsed.inc), parsed.name));
  if (blob === null) return null;
  const tags = decodeBlob(blob).tags;
  if (!holds(tags, { key: state.plan.tagKey, value: parsed.value })) return null;
  if (!evaluateTagPredicate(state.expression.predicate, tags, parsed.container)) return null;
  // Azure answers the tags the expression names, not every tag of the blob.
  return { container: parsed.container as ContainerName, name: parsed.name as BlobName, tags: tags.filter((tag) => state.expression.keys.includes(tag.key)) };
}

function decodeMarker(marker: string): Buffer {
  const bytes = Buffer.from(marker, 'base64url');
  if (bytes.toString('base64url') !== marker) throw new FrontendError('InvalidQueryParameterValue', 'not a marker Kura issued', [['QueryParameterName', 'marker'], ['QueryParameterValue', marker]]);
  return bytes;
}

/** Find Blobs by Tags (account-wide, or one container's) from the index, bounded per request. */
export async function findBlobsByTags(ctx: BlobServiceContext, op: Op.FindBlobsByTags): Promise<FindBlobsPage> {
  const expression = parseFindExpression(op.where);
  if (op.container !== undefined && expression.container !== null && expression.container !== op.container) return { blobs: [], nextMarker: null };
  const container = op.container ?? expression.container;
  const plan = scanPlan(op.account, expression, container);
  const state: FindState = { ctx, account: op.account, expression, plan, container, incs: new Map() };
  const base = tagKeyPrefix(op.account, '').subarray(0, -1); // T <account> \0
  // The marker is the index key (after T <account> \0) to resume at, inclusive.
  const resume = op.marker === undefined ? null : Buffer.concat([base, decodeMarker(op.marker)]);
  let start = resume !== null && Buffer.compare(resume, plan.start) > 0 ? resume : plan.start;
  const end = plan.end ?? undefined;
  const blobs: TaggedBlob[] = [];
  let continuation: string | undefined;
  for (let examined = 0; examined < findBlobsScannedRowsMax;) {
    const page = await ctx.tables.scan({ start, prefix: plan.prefix, ...(end === undefined ? {} : { end }), limit: blobScanRowsPerCall, ...(continuation === undefined ? {} : { continuation }) });
    const rows = page.items.flatMap((item) => (item.kind === 'row' ? [item.row] : []));
    examined += rows.length;
    const found = await Promise.all(rows.map((row) => verify(state, row)));
    for (const [index, blob] of found.entries()) {
      if (blob === null) continue;
      if (blobs.length >= op.maxResults) return { blobs, nextMarker: (rows[index]?.key ?? start).subarray(base.length).toString('base64url') };
      blobs.push(blob);
    }
    if (page.continuation === null) return { blobs, nextMarker: null };
    continuation = page.continuation;
    const last = rows.at(-1);
    if (last !== undefined) start = Buffer.concat([last.key, sep]);
  }
  return { blobs, nextMarker: start.subarray(base.length).toString('base64url') };
}
