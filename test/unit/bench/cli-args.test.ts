// The bench scripts' command line: `--help` prints the script's own header comment, and an unknown
// option is answered with the cause and the usage (exit 2), not a stack trace. Run as real child
// processes, since parseBenchArgs exits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
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

/** Bench scripts whose header shows how to run them (`node bench/…/their-name.ts`). */
function runnableBenchScripts(): URL[] {
  const root = new URL('../../../', import.meta.url);
  return readdirSync(new URL('bench/', root), { recursive: true, encoding: 'utf8' })
    .filter((path) => path.endsWith('.ts'))
    .map((path) => new URL(`bench/${path}`, root))
    .filter((url) => headerUsage(url.href).includes(`node ${url.pathname.slice(root.pathname.length)}`));
}

test('every bench script whose header shows how to run it answers --help with its usage', () => {
  const scripts = runnableBenchScripts();
  assert.ok(scripts.length >= 10, `found ${scripts.length} runnable bench scripts`);
  for (const url of scripts) {
    const child = spawnSync(process.execPath, [url.pathname, '--help'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(child.status, 0, `${url.pathname} --help exited ${String(child.status)}: ${child.stderr}`);
    // Its header, or its own usage text (run-blob.ts, run.ts name their npm script): not a run's output.
    const name = url.pathname.split('/').pop() ?? '';
    assert.ok(child.stdout.startsWith('npm run ') || child.stdout.includes(name), `${url.pathname} --help printed: ${child.stdout.slice(0, 200)}`);
  }
  console.log(`${scripts.length} bench scripts answer --help`);
});
