// Blob ledger helpers for `kura serve` integration tests: self-describing payloads, their
// digests, a container client without SDK retries (a failure must surface, not be hidden), a
// byte-exact read-back of every acknowledged blob, a steady load of writers and a reader that
// keeps such a ledger, and bit rot injected into extent files.
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';
import { connectionString } from '../../src/cli/serve-command.ts';
import { developmentAccountKey, developmentAccountName } from '../../src/stamp/account-store.ts';
import { KuraServe } from './kura-serve.ts';

export const sha = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

export function payload(name: string, bytes: number): Buffer {
  return Buffer.concat([Buffer.from(`${name}\n`), randomBytes(bytes)]);
}

export function container(serve: KuraServe, name: string): ContainerClient {
  return BlobServiceClient.fromConnectionString(serve.connectionString, { retryOptions: { maxTries: 1 } }).getContainerClient(name);
}

/** `kura serve` on `disks` with the container `name` created in it (no SDK retries). */
export async function serveWithContainer(disks: readonly string[], name: string, extraArgs: readonly string[] = []): Promise<{ serve: KuraServe; box: ContainerClient }> {
  const serve = await KuraServe.start({ disks, extraArgs });
  const box = container(serve, name);
  await box.create();
  return { serve, box };
}

/** A container client at a front end's host:port (devstoreaccount1, no SDK retries). */
export function containerAt(address: string, name: string): ContainerClient {
  const [host = '', port = ''] = address.split(':');
  const text = connectionString({ account: developmentAccountName, key: developmentAccountKey, host, port: Number(port) });
  return BlobServiceClient.fromConnectionString(text, { retryOptions: { maxTries: 1 } }).getContainerClient(name);
}

/** What a steady load saw: every acknowledged write (digest, when sent and acknowledged). */
export interface SteadyLoad {
  readonly digests: Map<string, string>;
  /** Wall-clock ms each acknowledged write was sent and acknowledged, in acknowledgement order. */
  readonly acks: { readonly sentMs: number; readonly ackMs: number }[];
  /** Attempts that failed (each retried until acknowledged or stopped). */
  failures: number;
  reads: number;
  corruptReads: number;
  /** Stops the writers and the reader; resolves once they returned. */
  stop(): Promise<void>;
}

/** `writers` writers each uploading unique blobs (a failed attempt retried after 100 ms, each
 * bounded by requestTimeoutMs) and one reader checking random acknowledged ones. */
export function startSteadyLoad(via: ContainerClient, options: { readonly writers: number; readonly requestTimeoutMs: number }): SteadyLoad {
  let stopping = false;
  const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
  const writer = async (writerId: number): Promise<void> => {
    for (let sequence = 0; !stopping; sequence++) {
      const name = `w${writerId}-${String(sequence).padStart(5, '0')}`;
      const bytes = payload(name, 4096 + ((sequence * 7919) % 60_000));
      while (!stopping) {
        const sentMs = Date.now();
        try {
          await via.getBlockBlobClient(name).uploadData(bytes, { abortSignal: AbortSignal.timeout(options.requestTimeoutMs) });
          load.digests.set(name, sha(bytes));
          load.acks.push({ sentMs, ackMs: Date.now() });
          break;
        } catch {
          load.failures += 1;
          await pause(100);
        }
      }
    }
  };
  const reader = async (): Promise<void> => {
    while (!stopping) {
      const names = [...load.digests.keys()];
      const name = names[Math.floor(Math.random() * names.length)];
      if (name !== undefined) {
        try {
          const bytes = await via.getBlockBlobClient(name).downloadToBuffer(0, undefined, { abortSignal: AbortSignal.timeout(options.requestTimeoutMs) });
          load.reads += 1;
          if (sha(bytes) !== load.digests.get(name)) load.corruptReads += 1;
        } catch {
          // Unavailable for a moment: the writers' gaps measure it.
        }
      }
      await pause(20);
    }
  };
  let running: Promise<unknown> = Promise.resolve();
  const load: SteadyLoad = {
    digests: new Map(), acks: [], failures: 0, reads: 0, corruptReads: 0,
    stop: async () => {
      stopping = true;
      await running;
    },
  };
  running = Promise.all([...Array.from({ length: options.writers }, (_, id) => writer(id)), reader()]);
  return load;
}

/** Read-back attempts per blob: a transient answer (a reset pooled socket, a partition just moving,
 * 503) is retried; only Azure's 404 BlobNotFound makes a blob lost. */
const readBackAttempts = 5;

/**
 * Downloads every blob of `digests` (through the containers in turn): which are missing (404),
 * which differ, and which could not be read at all within readBackAttempts (name: last error).
 * A transient failure is not counted as a loss: the clients have no SDK retries of their own.
 */
export async function readBack(containers: readonly ContainerClient[], digests: ReadonlyMap<string, string>): Promise<{ lost: string[]; corrupt: string[]; unreadable: string[] }> {
  const lost: string[] = [];
  const corrupt: string[] = [];
  const unreadable: string[] = [];
  let index = 0;
  for (const [name, digest] of digests) {
    const blob = (containers[index++ % containers.length] as ContainerClient).getBlockBlobClient(name);
    for (let attempt = 1; ; attempt++) {
      try {
        if (sha(await blob.downloadToBuffer()) !== digest) corrupt.push(name);
        break;
      } catch (error) {
        if ((error as { statusCode?: number }).statusCode === 404) {
          lost.push(name);
          break;
        }
        if (attempt === readBackAttempts) {
          unreadable.push(`${name}: ${error instanceof Error ? error.message : String(error)}`);
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** attempt));
      }
    }
  }
  return { lost, corrupt, unreadable };
}

export async function downloadAll(client: ContainerClient, expected: ReadonlyMap<string, string>): Promise<{ present: number; lost: string[]; corrupt: string[] }> {
  const lost: string[] = [];
  const corrupt: string[] = [];
  for (const [name, digest] of expected) {
    const blob = client.getBlockBlobClient(name);
    if (!(await blob.exists())) {
      lost.push(name);
      continue;
    }
    if (sha(await blob.downloadToBuffer()) !== digest) corrupt.push(name);
  }
  return { present: expected.size - lost.length, lost, corrupt };
}

/** Flips `count` random bits in the body of every extent file of `disk` (past its header). */
export async function flipBits(disk: string, count: number): Promise<{ files: number; bits: number }> {
  const directory = join(disk, 'extents');
  let files = 0;
  let bits = 0;
  for (const name of await readdir(directory)) {
    const path = join(directory, name);
    const size = (await stat(path)).size;
    if (size < 4096) continue;
    const file = await open(path, 'r+');
    try {
      for (let index = 0; index < count; index++) {
        const offset = randomInt(1024, size);
        const byte = Buffer.alloc(1);
        await file.read(byte, 0, 1, offset);
        byte[0] = (byte[0] ?? 0) ^ (1 << randomInt(0, 8));
        await file.write(byte, 0, 1, offset);
        bits += 1;
      }
      await file.sync();
    } finally {
      await file.close();
    }
    files += 1;
  }
  return { files, bits };
}
