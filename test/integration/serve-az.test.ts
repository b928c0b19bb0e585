// `kura serve` driven by the Azure CLI (Debian's azure-cli, installed by scripts/setup.sh) with the
// printed connection string, unchanged: container create/list, blob upload/download/list. The CLI
// runs with a throw-away config directory and no telemetry, each call bounded.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { cleanupServes, KuraServe, runCommand, tempDisks } from '../helpers/kura-serve.ts';

let serve: KuraServe;
let azConfig: string;
before(async () => {
  serve = await KuraServe.start({ disks: await tempDisks(1, 'az') });
  azConfig = await mkdtemp(join(tmpdir(), 'kura-az-config-'));
});
after(async () => {
  await serve.stop();
  await cleanupServes();
});

async function az(args: readonly string[]): Promise<string> {
  const env = { ...process.env, AZURE_CONFIG_DIR: azConfig, AZURE_CORE_COLLECT_TELEMETRY: 'false', AZURE_CORE_ONLY_SHOW_ERRORS: 'true' };
  const result = await runCommand('az', [...args, '--connection-string', serve.connectionString, '--output', 'json'], { timeoutMs: 120_000, env });
  assert.equal(result.code, 0, `az ${args.join(' ')} failed: ${result.stderr}`);
  return result.stdout;
}

const sha = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

test('az storage container/blob against kura serve with the connection string', { timeout: 600_000 }, async (t) => {
  const started = performance.now();
  const created = JSON.parse(await az(['storage', 'container', 'create', '--name', 'azbox'])) as { created: boolean };
  assert.equal(created.created, true);
  const containers = JSON.parse(await az(['storage', 'container', 'list'])) as Array<{ name: string }>;
  assert.ok(containers.some((container) => container.name === 'azbox'));
  const work = await mkdtemp(join(tmpdir(), 'kura-az-files-'));
  const files = new Map([['small.txt', Buffer.from('hello from az\n')], ['dir/random.bin', randomBytes(3 * 1024 * 1024 + 5)]]);
  for (const [name, body] of files) {
    const path = join(work, name.replace('/', '_'));
    await writeFile(path, body);
    await az(['storage', 'blob', 'upload', '--container-name', 'azbox', '--name', name, '--file', path]);
  }
  const listed = JSON.parse(await az(['storage', 'blob', 'list', '--container-name', 'azbox'])) as Array<{ name: string; properties: { contentLength: number } }>;
  assert.deepEqual(listed.map((blob) => [blob.name, blob.properties.contentLength]), [...files].map(([name, body]) => [name, body.length]).sort());
  for (const [name, body] of files) {
    const path = join(work, `down_${name.replace('/', '_')}`);
    await az(['storage', 'blob', 'download', '--container-name', 'azbox', '--name', name, '--file', path]);
    assert.equal(sha(await readFile(path)), sha(body), `${name} byte-exact`);
  }
  t.diagnostic(`az: container create + list, ${files.size} uploads, list, ${files.size} downloads byte-exact in ${Math.round(performance.now() - started)} ms`);
});
