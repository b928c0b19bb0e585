// Which descriptors this process holds on a file, read from /proc/self/fd and /proc/self/fdinfo
// (Linux): the tests of RealDisk's extra descriptors (O_DSYNC, O_DIRECT) count them.
import { constants as fsConstants, readFileSync, readdirSync, readlinkSync } from 'node:fs';

/** The open flags of one descriptor, as the tests ask about them. */
export interface DescriptorFlags {
  readonly dsync: boolean;
  readonly direct: boolean;
}

/** The flags of every descriptor this process holds on `path` (its full path). Synchronous, so
 * that a test can sample while its reads and writes run on the thread pool. */
export function descriptorsOf(path: string): DescriptorFlags[] {
  const flags: DescriptorFlags[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    const target = orNull(() => readlinkSync(`/proc/self/fd/${fd}`));
    if (target !== path) continue;
    const info = orNull(() => readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
    if (info === null) continue; // closed between the two reads
    const value = Number.parseInt(/^flags:\s*(\d+)$/m.exec(info)?.[1] ?? '0', 8);
    flags.push({ dsync: (value & fsConstants.O_DSYNC) !== 0, direct: (value & fsConstants.O_DIRECT) !== 0 });
  }
  return flags;
}

/** What `read` returns, or null if it throws (a descriptor closed while the table was read). */
function orNull<T>(read: () => T): T | null {
  try {
    return read();
  } catch {
    return null;
  }
}
