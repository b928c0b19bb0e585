// kura dev-cluster refuses bad flags before it starts anything: a clear error naming the flag,
// exit non-zero, and no process left behind (nothing was started).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { killAllDevClusters, tempClusterDirectory } from '../helpers/dev-cluster.ts';
import { runKura } from '../helpers/kura-serve.ts';

after(killAllDevClusters);

const cases: readonly { readonly args: readonly string[]; readonly names: string }[] = [
  { args: ['--log-level', 'warn'], names: '--log-level' },
  { args: ['--frontends', '0'], names: '--frontends' },
  { args: ['--etcd-members', '2'], names: '--etcd-members' },
  { args: ['--listen', 'nowhere'], names: '--listen' },
];

test('kura dev-cluster: a bad flag is refused before anything starts, naming the flag', { timeout: 120_000 }, async (t) => {
  for (const { args, names } of cases) {
    const directory = await tempClusterDirectory('flags');
    const result = await runKura(['dev-cluster', '--data', directory, ...args]);
    assert.notEqual(result.code, 0, `${args.join(' ')}: exit non-zero`);
    assert.match(result.stderr, new RegExp(names), `${args.join(' ')}: the error names ${names}`);
    assert.doesNotMatch(result.stdout, /starting in/, `${args.join(' ')}: nothing was started`);
    t.diagnostic(`${args.join(' ')} → exit ${String(result.code)}: ${result.stderr.trim().split('\n')[0] ?? ''}`);
  }
});
