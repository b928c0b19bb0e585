// `kura serve` driven by rclone's azureblob backend (Debian's rclone, installed by
// scripts/setup.sh), configured only by environment variables (RCLONE_CONFIG_KURA_TYPE=azureblob
// and RCLONE_CONFIG_KURA_SAS_URL): `rclone sync` a generated tree (empty, small, multi-chunk
// files, nested directories, odd names) up, then down into a fresh directory, and compare every
// file byte-exact; then change the tree (delete, modify, add), sync again, and `rclone check
// --download`. Each call is bounded.
//
// Why a SAS URL and not _ACCOUNT/_KEY/_ENDPOINT: Debian's rclone (1.60) turns account + key into
// https://<account>.<endpoint> (host-style, TLS), which no loopback emulator can serve; its
// other account + key form, use_emulator, is fixed to 127.0.0.1:10000. An account SAS on the
// path-style endpoint is what rclone users point at Azurite-like servers, and it exercises SAS
// verification end to end (the SAS is made from the account key by the official SDK).
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import { AccountSASPermissions, generateAccountSASQueryParameters, SASProtocol, StorageSharedKeyCredential } from '@azure/storage-blob';
import { developmentAccountKey } from '../../src/stamp/account-store.ts';
import { cleanupServes, KuraServe, runCommand, tempDisks } from '../helpers/kura-serve.ts';

let serve: KuraServe;
let work: string;
before(async () => {
  serve = await KuraServe.start({ disks: await tempDisks(3, 'rclone') });
  work = await mkdtemp(join(tmpdir(), 'kura-rclone-'));
});
after(async () => {
  await serve.stop();
  await cleanupServes();
  await rm(work, { recursive: true, force: true });
});

/** An account SAS (blob service; service, container and object; read/write/delete/list/add/create). */
function sasUrl(): string {
  const sas = generateAccountSASQueryParameters({
    permissions: AccountSASPermissions.parse('rwdlac'), services: 'b', resourceTypes: 'sco', protocol: SASProtocol.HttpsAndHttp,
    startsOn: new Date(Date.now() - 60_000), expiresOn: new Date(Date.now() + 3_600_000),
  }, new StorageSharedKeyCredential('devstoreaccount1', developmentAccountKey));
  return `${serve.blobEndpoint}?${sas.toString()}`;
}

async function rclone(args: readonly string[]): Promise<string> {
  const env = {
    ...process.env,
    RCLONE_CONFIG: join(work, 'rclone.conf'),
    RCLONE_CONFIG_KURA_TYPE: 'azureblob',
    RCLONE_CONFIG_KURA_SAS_URL: sasUrl(),
  };
  const result = await runCommand('rclone', [...args, '--retries', '1', '--low-level-retries', '1'], { timeoutMs: 180_000, env });
  assert.equal(result.code, 0, `rclone ${args.join(' ')} failed: ${result.stderr.slice(-4000)}`);
  return result.stdout;
}

/** path relative to root → sha256, for every file under root. */
async function tree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out.set(relative(root, path), createHash('sha256').update(await readFile(path)).digest('hex'));
  }
  return new Map([...out].sort(([a], [b]) => (a < b ? -1 : 1)));
}

async function put(root: string, name: string, body: Buffer): Promise<void> {
  await mkdir(dirname(join(root, name)), { recursive: true });
  await writeFile(join(root, name), body);
}

test('rclone sync up and back down is byte-exact, and incremental syncs follow changes', { timeout: 900_000 }, async (t) => {
  const up = join(work, 'up');
  const files: Array<[string, Buffer]> = [
    ['empty.txt', Buffer.alloc(0)], ['readme.md', Buffer.from('# kura\n')], ['a/b/c/deep.bin', randomBytes(70_000)],
    ['spaces and ünïcode/file (1).txt', Buffer.from('odd names')], ['big/multi-chunk.bin', randomBytes(9 * 1024 * 1024 + 3)],
  ];
  for (let index = 0; index < 40; index++) files.push([`many/file-${String(index).padStart(3, '0')}.dat`, randomBytes(1 + index * 997)]);
  for (const [name, body] of files) await put(up, name, body);
  const started = performance.now();
  await rclone(['mkdir', 'kura:rcbox']);
  await rclone(['sync', up, 'kura:rcbox', '--azureblob-chunk-size', '4M']);
  const down = join(work, 'down');
  await rclone(['sync', 'kura:rcbox', down]);
  const expected = await tree(up);
  assert.deepEqual(await tree(down), expected, 'down == up, every file byte-exact');
  const bytes = files.reduce((sum, [, body]) => sum + body.length, 0);
  t.diagnostic(`rclone: ${files.length} files (${bytes} bytes) synced up and down byte-exact in ${Math.round(performance.now() - started)} ms`);
  await rm(join(up, 'readme.md'));
  await put(up, 'a/b/c/deep.bin', randomBytes(1234));
  await put(up, 'new/added.txt', Buffer.from('added later'));
  await rclone(['sync', up, 'kura:rcbox']);
  await rclone(['sync', 'kura:rcbox', down]);
  assert.deepEqual(await tree(down), await tree(up), 'after delete, modify and add');
  const check = await runCommand('rclone', ['check', up, 'kura:rcbox', '--download'], {
    timeoutMs: 180_000,
    env: { ...process.env, RCLONE_CONFIG: join(work, 'rclone.conf'), RCLONE_CONFIG_KURA_TYPE: 'azureblob', RCLONE_CONFIG_KURA_SAS_URL: sasUrl() },
  });
  assert.equal(check.code, 0, `rclone check --download: ${check.stderr.slice(-2000)}`);
  t.diagnostic(`rclone check --download: ${/(\d+) matching files/.exec(check.stderr)?.[1] ?? '?'} matching files, 0 differences`);
});
