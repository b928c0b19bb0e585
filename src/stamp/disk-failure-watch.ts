// What `kura serve` does when a disk fails. An extent store whose write path meets an I/O error
// (a failed write or fsync) stops taking writes for good: a failed fsync is never retried as if the
// data were safe (DESIGN.md P1). The stamp's other disks carry on (the stream manager seals over the
// failed replica and places new extents elsewhere, with less redundancy), so one failed disk of
// several is logged, with its cause and what to do. Once every disk has failed nothing can be
// written and no partition can be reloaded (a reload seals its streams' tails), so the process
// would stay up answering 503 to every request forever; instead it says so and stops, and a
// supervisor or the operator starts it again once the disk is checked (the restart recovers every
// acknowledged write from the journals and extent files, as after kill -9).
//
// Fault model: failures arrive as the extent nodes' `kura:extent-node:failed` events (published
// synchronously when a store fails or a request meets a disk error); a node already failed when
// the watch starts counts too. The watch never touches a disk itself.
import type { Logger } from 'pino';
import type { ExtentNode } from '../stream/extent-node.ts';
import { streamEvents } from '../util/stream-events.ts';

export interface FailedDisk {
  readonly disk: string;
  /** What the disk answered (the extent node's failure message). */
  readonly cause: string;
}

export interface DiskFailureWatch {
  /** Resolves once every disk of the stamp has failed, with each one's cause. */
  readonly everyDiskFailed: Promise<readonly FailedDisk[]>;
  close(): void;
}

/** What an operator does about a failed disk (the same words in the log and on stderr). */
export const failedDiskAdvice = 'check the disk (dmesg, SMART, free space), then start kura serve again: every acknowledged write is kept in its journal and extent files';

export function watchDiskFailures(nodes: readonly ExtentNode[], logger: Logger): DiskFailureWatch {
  const failed = new Map<string, FailedDisk>();
  let resolveAll: (disks: readonly FailedDisk[]) => void = () => undefined;
  const everyDiskFailed = new Promise<readonly FailedDisk[]>((resolve) => { resolveAll = resolve; });
  const record = (node: ExtentNode, cause: string): void => {
    if (failed.has(node.nodeId)) return;
    const disk = { disk: node.status().disk, cause };
    failed.set(node.nodeId, disk);
    const working = nodes.length - failed.size;
    logger.error({ disk: disk.disk, cause, disksWorking: working, advice: failedDiskAdvice }, 'disk failed: it takes no more writes');
    if (working === 0) resolveAll([...failed.values()]);
  };
  const unsubscribe = streamEvents.extentNodeFailed.subscribe((event) => {
    const node = nodes.find((candidate) => candidate.nodeId === event.nodeId);
    if (node !== undefined) record(node, event.message);
  });
  for (const node of nodes) if (node.failed) record(node, 'failed before the watch started');
  return { everyDiskFailed, close: unsubscribe };
}
