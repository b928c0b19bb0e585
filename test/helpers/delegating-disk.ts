// A SimDisk seen through a wrapper that may replace some calls of some files (a test gate on
// extent-file writes, journal writes held in flight): everything else goes to the SimDisk as is.
import type { Disk, DiskFile, OpenOptions } from '../../src/io/disk.ts';
import type { SimDisk, SimDiskFile } from '../../src/io/sim-disk.ts';

/** The file's calls, with `overrides` in place of its own. */
export function fileWith(file: DiskFile, overrides: Partial<Pick<DiskFile, 'writev' | 'writevSynced'>>): DiskFile {
  return {
    path: file.path, size: () => file.size(), read: (p, l) => file.read(p, l), write: (p, d) => file.write(p, d),
    writev: overrides.writev ?? ((p, parts) => file.writev(p, parts)), writevSynced: overrides.writevSynced ?? ((p, parts) => file.writevSynced(p, parts)),
    truncate: (l) => file.truncate(l), sync: () => file.sync(), close: () => file.close(),
  };
}

export abstract class DelegatingDisk implements Disk {
  readonly name: string;
  readonly inner: SimDisk;

  constructor(inner: SimDisk) {
    this.inner = inner;
    this.name = inner.name;
  }

  /** The file as the code under test sees it (the SimDisk file itself, or fileWith(...)). */
  protected abstract wrapFile(file: SimDiskFile): DiskFile;

  async open(path: string, options: OpenOptions): Promise<DiskFile> {
    return this.wrapFile(await this.inner.open(path, options));
  }

  list(directory: string): Promise<string[]> { return this.inner.list(directory); }
  makeDirectory(directory: string): Promise<void> { return this.inner.makeDirectory(directory); }
  rename(from: string, to: string): Promise<void> { return this.inner.rename(from, to); }
  remove(path: string): Promise<void> { return this.inner.remove(path); }
  syncDirectory(directory: string): Promise<void> { return this.inner.syncDirectory(directory); }
  exists(path: string): Promise<boolean> { return this.inner.exists(path); }
  freeBytes(): Promise<number> { return this.inner.freeBytes(); }
}
