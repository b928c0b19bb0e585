// Disk path rules shared by every Disk implementation (src/io/disk.ts).
//
// A disk path is relative to the disk's root, uses '/' separators and names one entry:
//   "extents/0001.ext"   ok
//   ""                   the root directory (only where a directory is expected)
//   "/etc/passwd"        rejected: absolute
//   "a/../b", "a//b"     rejected: '..', '.' and empty segments
// Invariant: a path that passes assertDiskPath can be joined under the root without escaping
// it. A bad path is a programmer error (names reaching the io layer were built by Kura, never
// taken from a request), so it is an assertion, not an operating error.
import { assert } from '../util/assert.ts';

/** Asserts that `path` is a valid disk path; `allowRoot` admits "" (the root directory). */
export function assertDiskPath(path: string, options: { readonly allowRoot: boolean }): void {
  if (path === '') {
    assert(options.allowRoot, 'disk path must not be empty');
    return;
  }
  assert(!path.startsWith('/'), `disk path must be relative: ${JSON.stringify(path)}`);
  assert(!path.includes('\0'), `disk path must not contain NUL: ${JSON.stringify(path)}`);
  for (const segment of path.split('/')) {
    assert(segment !== '' && segment !== '.' && segment !== '..', `bad disk path segment in ${JSON.stringify(path)}`);
  }
}

/** Splits a valid path into its segments; "" (the root) has none. */
export function pathSegments(path: string): string[] {
  return path === '' ? [] : path.split('/');
}

/** The directory holding `path`: "a/b/c" → "a/b", "c" → "" (the root). */
export function parentDirectory(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash === -1 ? '' : path.slice(0, slash);
}

/** The last segment of `path`: "a/b/c" → "c". */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}
