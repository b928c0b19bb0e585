// AccountStore: the storage accounts of a stamp, kept as rows of the partition layer under their
// own key prefix (docs/accounts.md): `A<name>` → key1, key2 (64 random bytes each, node:crypto),
// when the account and each key were made. The blob tables use the prefixes B, C and P
// (docs/blob-schema.md), so account rows never mix with them.
//
// The front end's authoriser asks for an account's keys synchronously on every request, so the
// store keeps every account's keys in memory: open() reads them all (bounded by accountsMax) and
// every change made through this store updates the cache after the partition acknowledged it
// (durable first, then publish). Changes made by another process are seen at the next refresh()
// (a cluster's front ends refresh every accountsRefreshMs: `kura account --etcd` works beside
// them) or open(); `kura account --disk` refuses to run beside a live `kura serve`, which never
// refreshes (docs/accounts.md).
//
// Invariants: names are Azure's (3-24 lowercase letters and digits); a refresh replaces the cache
// whole once every page is read (a request never sees a half-read or empty cache; a failed
// refresh keeps the old one; this store's own writes made meanwhile are kept); every write is
// conditional
// (create: the row is absent; rotate: the row is as read), so two writers never silently
// overwrite each other; keys never appear in logs or error messages.
// Fault model: partition calls may fail with StorageErrors, passed through; a row that does not
// decode as an account is reported as partition.corrupt and not served.
import { randomBytes } from 'node:crypto';
import { accountKeyBytes, accountsMax, scanLimitMax } from '../constants.ts';
import type { LiveRow, ScanItem } from '../partition/partition.ts';
import { StorageError, isStorageError } from '../util/errors.ts';
import type { Clock } from '../util/clock.ts';
import type { Column } from '../wire/partition-row.ts';

/** What the store needs from the partition layer; PartitionClient satisfies it. */
export interface AccountTables {
  get(key: Buffer): Promise<LiveRow | null>;
  put(key: Buffer, columns: readonly Column[], conditions?: { readonly ifMatch?: string; readonly ifNoneMatch?: '*' }): Promise<{ etag: string; sequence: number }>;
  scan(options: { readonly prefix?: Buffer; readonly limit: number; readonly continuation?: string }): Promise<{ items: ScanItem[]; continuation: string | null }>;
}

/** The emulator's development account and its published key (Azurite's, public by design). */
export const developmentAccountName = 'devstoreaccount1';
export const developmentAccountKey = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export type AccountKeyName = 'key1' | 'key2';

export interface Account {
  readonly name: string;
  readonly createdMs: number;
  readonly key1: Buffer;
  readonly key2: Buffer;
  readonly key1CreatedMs: number;
  readonly key2CreatedMs: number;
}

const accountPrefix = Buffer.from('A', 'utf8');
const namePattern = /^[a-z0-9]{3,24}$/;

export function accountKey(name: string): Buffer {
  return Buffer.concat([accountPrefix, Buffer.from(name, 'utf8')]);
}

export function checkAccountName(name: string): void {
  if (!namePattern.test(name)) throw new StorageError('config.invalid', `account name ${JSON.stringify(name)}: 3 to 24 lowercase letters and digits, as in Azure`);
}

export class AccountStore {
  private readonly tables: AccountTables;
  private readonly clock: Clock;
  private cache = new Map<string, Account>();
  /** While a refresh reads: this store's own writes, re-applied over what the refresh read. */
  private writesDuringRefresh: Map<string, Account> | null = null;
  private refreshing: Promise<void> | null = null;

  private constructor(tables: AccountTables, clock: Clock) {
    this.tables = tables;
    this.clock = clock;
  }

  /** Reads every account into memory; creates the development account if it is absent. */
  static async open(options: { readonly tables: AccountTables; readonly clock: Clock }): Promise<AccountStore> {
    const store = new AccountStore(options.tables, options.clock);
    await store.refresh();
    if (!store.cache.has(developmentAccountName)) {
      await store.createWithKeys(developmentAccountName, Buffer.from(developmentAccountKey, 'base64'), randomBytes(accountKeyBytes)).catch((error: unknown) => {
        if (!isStorageError(error, 'partition.exists')) throw error;
      });
      await store.refresh();
    }
    return store;
  }

  /**
   * Re-reads every account row and then replaces the cache whole: accounts created, and keys
   * rotated, by another process are served from here on. On failure the old cache stays.
   */
  async refresh(): Promise<void> {
    this.refreshing ??= this.readAll().finally(() => {
      this.refreshing = null;
      this.writesDuringRefresh = null;
    });
    return this.refreshing;
  }

  private async readAll(): Promise<void> {
    this.writesDuringRefresh = new Map();
    const next = new Map<string, Account>();
    let continuation: string | null = null;
    do {
      const page = await this.tables.scan({ prefix: accountPrefix, limit: scanLimitMax, ...(continuation === null ? {} : { continuation }) });
      for (const item of page.items) {
        if (item.kind !== 'row') continue;
        const name = item.row.key.subarray(accountPrefix.length).toString('utf8');
        next.set(name, decodeAccount(name, item.row));
        if (next.size > accountsMax) throw new StorageError('config.invalid', `more than ${accountsMax} accounts stored`);
      }
      continuation = page.continuation;
    } while (continuation !== null);
    for (const [name, account] of this.writesDuringRefresh) next.set(name, account);
    this.cache = next;
  }

  /** After the partition acknowledged a write: serve it (durable first, then publish). */
  private publish(account: Account): void {
    this.cache.set(account.name, account);
    this.writesDuringRefresh?.set(account.name, account);
  }

  /** The account's keys (key1, key2) for the authoriser, or null for an unknown account. */
  keys(name: string): readonly Uint8Array[] | null {
    const account = this.cache.get(name);
    return account === undefined ? null : [account.key1, account.key2];
  }

  list(): Account[] {
    return [...this.cache.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  get(name: string): Account | null {
    return this.cache.get(name) ?? null;
  }

  /** Creates an account with two fresh random keys; refuses an existing name. */
  async create(name: string): Promise<Account> {
    checkAccountName(name);
    if (this.cache.size >= accountsMax) throw new StorageError('config.invalid', `a stamp holds at most ${accountsMax} accounts`);
    try {
      return await this.createWithKeys(name, randomBytes(accountKeyBytes), randomBytes(accountKeyBytes));
    } catch (error) {
      if (isStorageError(error, 'partition.exists')) throw new StorageError('config.invalid', `account ${name} already exists`, { cause: error });
      throw error;
    }
  }

  /** Replaces one key with fresh random bytes; the other keeps working (rotate one at a time). */
  async rotateKey(name: string, which: AccountKeyName): Promise<Account> {
    checkAccountName(name);
    const row = await this.tables.get(accountKey(name));
    if (row === null) throw new StorageError('config.invalid', `no account ${name}`);
    const current = decodeAccount(name, row);
    const nowMs = this.clock.nowMs();
    const next: Account = which === 'key1'
      ? { ...current, key1: randomBytes(accountKeyBytes), key1CreatedMs: nowMs }
      : { ...current, key2: randomBytes(accountKeyBytes), key2CreatedMs: nowMs };
    await this.tables.put(accountKey(name), encodeAccount(next), { ifMatch: row.etag });
    this.publish(next);
    return next;
  }

  private async createWithKeys(name: string, key1: Buffer, key2: Buffer): Promise<Account> {
    const nowMs = this.clock.nowMs();
    const account: Account = { name, createdMs: nowMs, key1, key2, key1CreatedMs: nowMs, key2CreatedMs: nowMs };
    await this.tables.put(accountKey(name), encodeAccount(account), { ifNoneMatch: '*' });
    this.publish(account);
    return account;
  }
}

function encodeAccount(account: Account): Column[] {
  return [
    { name: 'format', value: { kind: 'int64', value: 1n } },
    { name: 'created', value: { kind: 'int64', value: BigInt(account.createdMs) } },
    { name: 'key1', value: { kind: 'bytes', value: account.key1 } },
    { name: 'key1Created', value: { kind: 'int64', value: BigInt(account.key1CreatedMs) } },
    { name: 'key2', value: { kind: 'bytes', value: account.key2 } },
    { name: 'key2Created', value: { kind: 'int64', value: BigInt(account.key2CreatedMs) } },
  ];
}

function decodeAccount(name: string, row: LiveRow): Account {
  const column = (columnName: string): Column['value'] | undefined => row.columns.find((c) => c.name === columnName)?.value;
  const bytes = (columnName: string): Buffer => {
    const value = column(columnName);
    if (value?.kind !== 'bytes' || value.value.length !== accountKeyBytes) throw corrupt(name, columnName);
    return value.value;
  };
  const time = (columnName: string): number => {
    const value = column(columnName);
    if (value?.kind !== 'int64' || value.value < 0n || value.value > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt(name, columnName);
    return Number(value.value);
  };
  const format = column('format');
  if (format?.kind !== 'int64' || format.value !== 1n) throw corrupt(name, 'format');
  if (!namePattern.test(name)) throw corrupt(name, 'name');
  return { name, createdMs: time('created'), key1: bytes('key1'), key2: bytes('key2'), key1CreatedMs: time('key1Created'), key2CreatedMs: time('key2Created') };
}

function corrupt(name: string, column: string): StorageError {
  return new StorageError('partition.corrupt', `account row of ${JSON.stringify(name)}: column ${column} missing or malformed`);
}
