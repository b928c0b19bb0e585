// Canary builds (TESTING.md): the suite must notice a deliberately broken build. Each canary
// switch (test-only, read from the environment by src/util/crc32c.ts) is turned on in a child
// test run of the durability tests; the child run must FAIL. A canary that passes means the
// suite could not see that broken promise, so this test fails.
import { spawn } from 'node:child_process';
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';

interface Canary {
  readonly name: string;
  readonly environment: Readonly<Record<string, string>>;
  /** The tests that guard the promise this canary breaks. */
  readonly testFiles: readonly string[];
}

const canaries: readonly Canary[] = [
  {
    name: 'fsync is a no-op',
    environment: { KURA_CANARY_SKIP_FSYNC: '1' },
    testFiles: ['test/unit/stream/extent-store-model.test.ts', 'test/unit/metastore/embedded-durability.test.ts'],
  },
  {
    name: 'CRC verification skipped',
    environment: { KURA_CANARY_SKIP_CRC: '1' },
    testFiles: ['test/unit/stream/extent-store.test.ts', 'test/unit/wire/extent-format.test.ts', 'test/unit/wire/journal-format.test.ts'],
  },
];

const childRunTimeoutMs = 240_000;

interface ChildRun {
  readonly exitCode: number | null;
  readonly failedTests: number;
  readonly passedTests: number;
}

function runTestsWith(canary: Canary): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--test', '--test-reporter=tap', ...canary.testFiles], {
      env: childEnvironment(canary),
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: childRunTimeoutMs,
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
    });
    child.stderr.resume();
    child.on('error', reject);
    child.on('close', (exitCode) => {
      resolve({ exitCode, failedTests: tapCount(output, 'fail'), passedTests: tapCount(output, 'pass') });
    });
  });
}

/** The parent runner's NODE_TEST_CONTEXT would make the child report to it instead of running. */
function childEnvironment(canary: Canary): NodeJS.ProcessEnv {
  const environment: NodeJS.ProcessEnv = { ...process.env, ...canary.environment };
  delete environment['NODE_TEST_CONTEXT'];
  return environment;
}

function tapCount(output: string, kind: 'pass' | 'fail'): number {
  const match = new RegExp(`^# ${kind} (\\d+)$`, 'm').exec(output);
  return match === null ? 0 : Number(match[1]);
}

describe('canary builds are caught by the suite', () => {
  let caught = 0;
  for (const canary of canaries) {
    it(`canary "${canary.name}" makes the durability tests fail`, { timeout: childRunTimeoutMs + 10_000 }, async (t: TestContext) => {
      const run = await runTestsWith(canary);
      t.diagnostic(`canary "${canary.name}": ${run.failedTests} tests failed, ${run.passedTests} passed, exit ${run.exitCode}`);
      assert.notEqual(run.exitCode, 0, `the suite did not notice the canary "${canary.name}"`);
      assert.ok(run.failedTests > 0, 'the child run failed without a failing test (crash?)');
      caught += 1;
      t.diagnostic(`canaries caught so far: ${caught} / ${canaries.length}`);
    });
  }
});
