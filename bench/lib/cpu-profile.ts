// Summarises a V8 CPU profile (`node --cpu-prof` writes one .cpuprofile per process on exit):
// self and inclusive share of samples per function (name, file, line), and self share per file,
// so a benchmark can print where a server's CPU went without opening DevTools. Inclusive counts a
// function once per sample even when it recurses. Pure: parses text, returns rows.
import { relative } from 'node:path';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
}

export interface ProfileRow {
  readonly name: string;
  /** Share of all samples (0-1) spent in this function itself / in it or its callees. */
  readonly self: number;
  readonly inclusive: number;
}

export function parseCpuProfile(text: string): CpuProfile {
  const parsed: unknown = JSON.parse(text);
  if (typeof parsed !== 'object' || parsed === null || !('nodes' in parsed) || !('samples' in parsed) || !Array.isArray(parsed.nodes) || !Array.isArray(parsed.samples)) {
    throw new Error('not a V8 CPU profile (no nodes and samples)');
  }
  return { nodes: parsed.nodes as ProfileNode[], samples: parsed.samples as number[] };
}

/** "functionName file:line", file relative to `root`; V8's pseudo-frames keep their own name. */
export function frameName(frame: CallFrame, root: string): string {
  const name = frame.functionName === '' ? '(anonymous)' : frame.functionName;
  if (frame.url === '') return name;
  const file = frame.url.startsWith('file://') ? relative(root, new URL(frame.url).pathname) : frame.url;
  return `${name} ${file}:${frame.lineNumber + 1}`;
}

function fileOf(frame: CallFrame, root: string): string {
  if (frame.url === '') return frame.functionName;
  return frame.url.startsWith('file://') ? relative(root, new URL(frame.url).pathname) : frame.url;
}

function parents(profile: CpuProfile): Map<number, number> {
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  return parent;
}

function increment(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

/** The `limit` functions with the most self samples, and the `limit` with the most inclusive. */
export function summariseProfile(profile: CpuProfile, root: string, limit: number): { readonly bySelf: ProfileRow[]; readonly byInclusive: ProfileRow[]; readonly byFile: ProfileRow[]; readonly samples: number } {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = parents(profile);
  const self = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const byFile = new Map<string, number>();
  for (const leaf of profile.samples) {
    const leafNode = nodes.get(leaf);
    if (leafNode === undefined) continue;
    increment(self, frameName(leafNode.callFrame, root));
    increment(byFile, fileOf(leafNode.callFrame, root));
    const seen = new Set<string>();
    for (let id: number | undefined = leaf; id !== undefined; id = parent.get(id)) {
      const node = nodes.get(id);
      if (node !== undefined) seen.add(frameName(node.callFrame, root));
    }
    for (const name of seen) increment(inclusive, name);
  }
  const total = Math.max(1, profile.samples.length);
  const rows = (map: Map<string, number>, key: 'self' | 'inclusive'): ProfileRow[] =>
    [...map].sort((a, b) => b[1] - a[1]).slice(0, limit).map(([name, count]) => ({ name, self: (self.get(name) ?? 0) / total, inclusive: key === 'inclusive' ? count / total : (inclusive.get(name) ?? 0) / total }));
  return {
    bySelf: rows(self, 'self'),
    byInclusive: rows(inclusive, 'inclusive').filter((row) => row.name !== '(root)'),
    byFile: [...byFile].sort((a, b) => b[1] - a[1]).slice(0, limit).map(([name, count]) => ({ name, self: count / total, inclusive: Number.NaN })),
    samples: profile.samples.length,
  };
}
