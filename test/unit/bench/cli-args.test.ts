// The bench scripts' command line: `--help` prints the script's own header comment, and an unknown
// option is answered with the cause and the usage (exit 2), not a stack trace. Run as real child
// processes, since parseBenchArgs exits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { headerUsage } from '../../../bench/lib/cli-args.ts';

const script = new URL('../../../bench/profile-append.ts', import.meta.url);

function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const child = spawnSync(process.execPath, [script.pathname, ...args], { encoding: 'utf8', timeout: 30_000 });
  return { status: child.status, stdout: child.stdout, stderr: child.stderr };
}

test('headerUsage is the leading // comment without its markers', () => {
  const usage = headerUsage(script.href);
  assert.match(usage, /^Profiling driver for one ExtentStore append case/);
  assert.match(usage, /node bench\/profile-append\.ts --bytes 4096/);
  assert.doesNotMatch(usage, /^\/\//m);
  assert.doesNotMatch(usage, /import /);
});

test('--help prints the usage and exits 0; an unknown option names itself and exits 2', () => {
  const help = run('--help');
  assert.equal(help.status, 0);
  assert.equal(help.stdout.trim(), headerUsage(script.href).trim());
  const unknown = run('--no-such-option');
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /Unknown option '--no-such-option'/);
  assert.match(unknown.stderr, /Profiling driver/);
  assert.doesNotMatch(unknown.stderr, /at .*\.ts:\d+/);
});
