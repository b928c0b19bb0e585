// The container fence (docs/blob-schema.md, "Deleted containers"): a write that loaded a container
// just before Delete Container must not leave rows under the dead incarnation that no sweep will
// ever find (they, and the data their refs keep alive, would live forever).
//
// The container row and a blob's rows may be in different partitions, so a commit cannot be
// conditional on the container. Time bounds the race instead, measured on monotonic clocks only
// (durations, never one front end's clock against another's):
//   - a sweeper deletes a graveyard row only after a scan that started containerSweepGraceMs (G)
//     or more after it first saw that row found the range empty (container-sweep.ts);
//   - a commit that creates rows from nothing (no If-Match op: a new blob row, a new staging row)
//     re-reads the container first when containerRecheckMs passed since the last read (gone or
//     another incarnation: 404 ContainerNotFound, nothing committed), and after the commit, when
//     containerFenceCommitMs (F < G) passed since that last read, reads it again and, if it is gone,
//     puts the graveyard row back (unconditionally, so a sweeper about to delete it If-Match loses).
// Why it holds: the last read at time s saw the container, so the delete committed after s and
// every sweeper saw the graveyard after s; a commit acknowledged at t < s + F is visible at t, before
// any sweeper's deciding scan (> s + G); a commit acknowledged later is followed by the post-commit
// read, and a graveyard row put back after the row is visible makes some later scan find it.
// A commit with an If-Match op needs none of this: it changes a row that existed, and once the sweep
// deleted that row the condition fails.
// Fault model: a commit whose outcome is unknown (timeout, partition unavailable) gets the
// post-commit check too; if its row becomes visible only later (a new owner replays the log), the
// graveyard is found while it lasts (G after it was first seen) — a replay later than that is the one
// window left. A crash between the commit and the post-commit check of a write slower than F leaves
// an orphan (documented). Partition errors of the checks propagate (the client retries).
import { containerFenceCommitMs, containerRecheckMs } from '../../constants.ts';
import type { PartitionOp } from '../../partition/partition.ts';
import { AssertionFailure } from '../../util/assert.ts';
import { isStorageError } from '../../util/errors.ts';
import { failpoint } from '../../util/failpoints.ts';
import { FrontendError } from '../errors.ts';
import { conditionRefusedCodes, readContainer, type BlobServiceContext, type LoadedContainer } from './context.ts';
import { graveyardKey } from './keys.ts';

/** The graveyard row of a container's incarnation (Delete Container, and the fence putting it back). */
export function graveyardOp(container: Pick<LoadedContainer, 'account' | 'name' | 'record'>, nowMs: number): PartitionOp {
  return { kind: 'put', key: graveyardKey(container.account, container.name, container.record.inc), columns: [{ name: 'since', value: { kind: 'int64', value: BigInt(nowMs) } }] };
}

/** Runs `commit` (which applies `ops`, one transaction of rows under `container`) behind the fence. */
export async function fencedCommit<T>(ctx: BlobServiceContext, container: LoadedContainer, ops: readonly PartitionOp[], commit: () => Promise<T>): Promise<T> {
  if (ops.some((op) => op.ifMatch !== undefined)) return commit();
  await failpoint('blob.commit.before-recheck');
  let sinceMs = container.loadedAtMs;
  if (ctx.clock.monotonicMs() - sinceMs >= containerRecheckMs) {
    const fresh = await readContainer(ctx, container.account, container.name);
    if (fresh?.record.inc !== container.record.inc) throw new FrontendError('ContainerNotFound', `container ${container.name} was deleted during the write`);
    sinceMs = fresh.loadedAtMs;
  }
  await failpoint('blob.commit.before-transact');
  let result: T;
  try {
    result = await commit();
  } catch (error) {
    if (error instanceof AssertionFailure || (isStorageError(error) && conditionRefusedCodes.has(error.code))) throw error;
    // The outcome may be unknown: the row may exist. Best effort; the commit's error is the answer.
    await restoreGraveyard(ctx, container).catch((checkError: unknown) => {
      if (checkError instanceof AssertionFailure) throw checkError;
    });
    throw error;
  }
  if (ctx.clock.monotonicMs() - sinceMs >= containerFenceCommitMs) await restoreGraveyard(ctx, container);
  return result;
}

/** After a slow commit (or one of unknown outcome; a refused one applied nothing): if the container
 * was deleted meanwhile, its graveyard row is put back so the sweep finds the row just committed. */
async function restoreGraveyard(ctx: BlobServiceContext, container: LoadedContainer): Promise<void> {
  const now = await readContainer(ctx, container.account, container.name);
  if (now?.record.inc === container.record.inc) return;
  ctx.stats.graveyardsRestored = (ctx.stats.graveyardsRestored ?? 0) + 1;
  await ctx.tables.transact([graveyardOp(container, ctx.clock.nowMs())]);
}
