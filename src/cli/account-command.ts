// `kura account create NAME | list | rotate-key NAME --key key1|key2`: the storage accounts of a
// stamp, kept in its partition layer (src/stamp/account-store.ts, docs/accounts.md).
//
// Embedded stamp (--disk, default ./data): each command opens the stamp on the data directories
// without a front end (the same assembly as `kura serve`, so the rows go through the partition
// layer's commit log and replicas), makes its change, and stops. It takes the data directories'
// lock first: while a `kura serve` holds them it refuses, naming the server's pid ("stop it
// first"), because the server caches every account's keys at start and would not see the
// change. Accounts made here are served by the next `kura serve`.
// Cluster (--etcd URLS): the command is a client of the running cluster (partition map from etcd,
// rows through the partition servers over TCP); every front end re-reads the accounts every
// accountsRefreshMs, so the change is served by all of them within that time, without a restart.
//
// Output: create and rotate-key print the account's keys and a connection string (they are
// secrets: the terminal is the only place they are shown); list prints names and key ages, and
// the keys only with --show-keys. Errors: "kura account: <reason>" on stderr, exit 1.
import type { Command } from 'commander';
import { accountsRefreshMs } from '../constants.ts';
import { connectEtcd } from '../metastore/connect-etcd.ts';
import { PartitionClient } from '../partition/partition-client.ts';
import { TcpNetwork } from '../rpc/tcp-network.ts';
import { AccountStore, type Account, type AccountKeyName } from '../stamp/account-store.ts';
import { EmbeddedStamp } from '../stamp/embedded-stamp.ts';
import { SystemClock } from '../util/clock.ts';
import { StorageError, isStorageError } from '../util/errors.ts';
import { positiveInteger } from './process-lifecycle.ts';
import { etcdUrls } from './role-config.ts';
import { blobPortDefault, collect, connectionString, disksOf } from './serve-command.ts';

interface StampFlags {
  readonly disk?: readonly string[];
  readonly etcd?: string;
  readonly host: string;
  readonly blobPort: string;
}

interface ListFlags extends StampFlags {
  readonly showKeys: boolean;
}

interface RotateFlags extends StampFlags {
  readonly key: string;
}

function stampOptions(command: Command): Command {
  return command
    .option('--disk <dir>', 'a data directory of the stamp, as given to kura serve (repeatable, same order; default ./data)', collect)
    .option('--etcd <urls>', `a cluster instead: its comma-separated etcd client URLs (front ends serve the change within ${accountsRefreshMs / 1000} s)`)
    .option('--host <host>', 'Blob endpoint host to put in the printed connection string', '127.0.0.1')
    .option('--blob-port <port>', 'Blob endpoint port to put in the printed connection string', String(blobPortDefault));
}

export function registerAccountCommand(program: Command): void {
  const account = program
    .command('account')
    .description(`Manage the storage accounts of a stamp (stored in its partition layer). Embedded (--disk): run while no kura serve uses the data directories; the next kura serve serves the change. Cluster (--etcd): run any time; every front end serves the change within ${accountsRefreshMs / 1000} s.`);
  stampOptions(account.command('create <name>').description('Create an account (3-24 lowercase letters and digits) with two random 512-bit keys; prints them and a connection string'))
    .action(async (name: string, flags: StampFlags) => {
      await guarded(async () => {
        const created = await withAccounts(flags, (accounts) => accounts.create(name));
        printAccount(created, flags, true);
      });
    });
  stampOptions(account.command('list').description('List the accounts (name, creation time, key ages); keys only with --show-keys'))
    .option('--show-keys', 'also print both keys of every account', false)
    .action(async (flags: ListFlags) => {
      await guarded(async () => {
        const accounts = await withAccounts(flags, (accounts) => Promise.resolve(accounts.list()));
        for (const entry of accounts) printAccount(entry, flags, flags.showKeys);
      });
    });
  stampOptions(account.command('rotate-key <name>').description('Replace one key of an account with fresh random bytes; the other keeps working, so clients can move over first'))
    .requiredOption('--key <which>', 'which key to replace: key1 or key2')
    .action(async (name: string, flags: RotateFlags) => {
      await guarded(async () => {
        const which = keyName(flags.key);
        const rotated = await withAccounts(flags, (accounts) => accounts.rotateKey(name, which));
        printAccount(rotated, flags, true);
      });
    });
}

function keyName(text: string): AccountKeyName {
  if (text === 'key1' || text === 'key2') return text;
  throw new StorageError('config.invalid', `--key must be key1 or key2, got ${JSON.stringify(text)}`);
}

async function withAccounts<T>(flags: StampFlags, work: (accounts: AccountStore) => Promise<T>): Promise<T> {
  if (flags.etcd !== undefined) {
    if (flags.disk !== undefined) throw new StorageError('config.invalid', 'give --disk (an embedded stamp) or --etcd (a cluster), not both');
    return withCluster(flags.etcd, work);
  }
  const stamp = await EmbeddedStamp.start({ disks: disksOf(flags), clock: new SystemClock(), blob: null, role: 'account' });
  try {
    return await work(stamp.accounts);
  } finally {
    await stamp.stop();
  }
}

/** A client of a running cluster: the partition map from etcd, account rows over TCP. */
async function withCluster<T>(etcd: string, work: (accounts: AccountStore) => Promise<T>): Promise<T> {
  const parsed = etcdUrls.safeParse(etcd);
  if (!parsed.success) throw new StorageError('config.invalid', `--etcd ${JSON.stringify(etcd)}: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  const clock = new SystemClock();
  const metaStore = await connectEtcd({ endpoints: parsed.data });
  const network = new TcpNetwork({ clock });
  try {
    return await work(await AccountStore.open({ tables: new PartitionClient({ metaStore, network, clock }), clock }));
  } finally {
    await network.close();
    await metaStore.close();
  }
}

async function guarded(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (error) {
    if (!isStorageError(error)) throw error;
    process.stderr.write(`kura account: ${error.message}\n`);
    process.exitCode = 1;
  }
}

function printAccount(account: Account, flags: StampFlags, withKeys: boolean): void {
  const lines = [`${account.name}  created ${new Date(account.createdMs).toISOString()}  key1 from ${new Date(account.key1CreatedMs).toISOString()}  key2 from ${new Date(account.key2CreatedMs).toISOString()}`];
  if (withKeys) {
    const key1 = account.key1.toString('base64');
    lines.push(`  key1: ${key1}`, `  key2: ${account.key2.toString('base64')}`);
    lines.push(`  ${connectionString({ account: account.name, key: key1, host: flags.host, port: positiveInteger(flags.blobPort, '--blob-port') })}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}
