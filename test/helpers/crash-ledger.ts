// A ledger for crash tests of real processes: writers upload unique, self-describing blobs through
// the official SDK (no SDK retries) until a write fails (the server died under it, or answered an
// error); every acknowledged write is recorded, and the write each writer had in flight when it
// failed. The check after a restart proves what TESTING.md's ledger oracle asks: every acknowledged
// blob reads back byte-exact, a write in flight is wholly there or wholly absent (never torn), and
// List Blobs names exactly the blobs Get Blob finds, with their lengths.
import type { ContainerClient } from '@azure/storage-blob';
import { payload, sha } from './blob-ledger.ts';

export interface LedgerEntry {
  readonly digest: string;
  readonly bytes: number;
}

export interface CrashLedger {
  readonly acknowledged: Map<string, LedgerEntry>;
  /** Writes whose outcome is unknown: sent, then the request failed. */
  readonly inFlight: Map<string, LedgerEntry>;
  /** Why each writer stopped (HTTP status and Azure error code when there was an answer). */
  readonly stops: string[];
}

export interface LedgerLoad {
  readonly writers: number;
  /** Blob sizes, taken in turn across writers (a blob above singleShotBytes goes as Put Block + Put Block List). */
  readonly sizes: readonly number[];
  /** Writers stop once this answers true (checked before each write), or after timeoutMs. */
  readonly stopWhen: () => boolean;
  readonly timeoutMs: number;
  /** Blob names are `<prefix><writer>/<sequence>` ('w' if absent): a second load on the same container takes another. */
  readonly prefix?: string;
}

/** Larger bodies are staged as blocks of blockBytes and committed with Put Block List. */
const singleShotBytes = 512 * 1024;
const blockBytes = 200 * 1024;

/** Runs the writers until each has failed once or stopWhen() / the time bound ends them. */
export async function writeUntilFailure(box: ContainerClient, load: LedgerLoad): Promise<CrashLedger> {
  const ledger: CrashLedger = { acknowledged: new Map(), inFlight: new Map(), stops: [] };
  const deadline = Date.now() + load.timeoutMs;
  const writer = async (writerId: number): Promise<void> => {
    for (let sequence = 0; !load.stopWhen() && Date.now() < deadline; sequence++) {
      const name = `${load.prefix ?? 'w'}${writerId}/${String(sequence).padStart(5, '0')}`;
      const size = load.sizes[(sequence * load.writers + writerId) % load.sizes.length] ?? 1;
      const body = payload(name, size);
      const entry = { digest: sha(body), bytes: body.length };
      ledger.inFlight.set(name, entry);
      try {
        await box.getBlockBlobClient(name).uploadData(body, { maxSingleShotSize: singleShotBytes, blockSize: blockBytes, concurrency: 1 });
      } catch (error) {
        ledger.stops.push(describeFailure(error));
        return;
      }
      ledger.inFlight.delete(name);
      ledger.acknowledged.set(name, entry);
    }
  };
  await Promise.all(Array.from({ length: load.writers }, (_, id) => writer(id)));
  return ledger;
}

/** "503 ServerBusy", "500 InternalError", or the client-side error (a refused or reset connection). */
export function describeFailure(error: unknown): string {
  const answer = error as { statusCode?: number; code?: string; message?: string };
  if (typeof answer.statusCode === 'number') return `${answer.statusCode} ${answer.code ?? ''}`.trim();
  return answer.code ?? answer.message ?? String(error);
}

export interface LedgerCheck {
  readonly lost: string[];
  readonly corrupt: string[];
  /** In-flight writes found whole, absent, or present with other bytes (torn). */
  readonly whole: number;
  readonly absent: number;
  readonly torn: string[];
  /** Names where List Blobs and Get Blob disagree (listed but not found, found but not listed, other length). */
  readonly listingMismatches: string[];
  readonly listed: number;
}

/** Attempts per read: a transient answer (a partition still loading) is retried, 404 is final. */
const readAttempts = 5;

/** The blob's bytes, or null on 404 BlobNotFound (transient failures retried, bounded). */
async function readOrAbsent(box: ContainerClient, name: string): Promise<Buffer | null> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await box.getBlockBlobClient(name).downloadToBuffer();
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404) return null;
      if (attempt === readAttempts) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** attempt));
    }
  }
}

/** Reads back every ledger entry and lists the container; what disagrees with the ledger. */
export async function checkLedger(box: ContainerClient, ledger: CrashLedger): Promise<LedgerCheck> {
  const lost: string[] = [];
  const corrupt: string[] = [];
  const torn: string[] = [];
  const found = new Map<string, number>();
  for (const [name, entry] of ledger.acknowledged) {
    const bytes = await readOrAbsent(box, name);
    if (bytes === null) lost.push(name);
    else if (sha(bytes) !== entry.digest) corrupt.push(name);
    else found.set(name, bytes.length);
  }
  let whole = 0;
  for (const [name, entry] of ledger.inFlight) {
    const bytes = await readOrAbsent(box, name);
    if (bytes === null) continue;
    if (sha(bytes) === entry.digest) {
      whole += 1;
      found.set(name, bytes.length);
    } else {
      torn.push(name);
    }
  }
  const listing = new Map<string, number>();
  for await (const item of box.listBlobsFlat()) listing.set(item.name, item.properties.contentLength ?? -1);
  const listingMismatches = [
    ...[...listing].filter(([name, length]) => found.get(name) !== length).map(([name, length]) => `${name}: listed ${length} bytes, read ${found.get(name) ?? 'nothing'}`),
    ...[...found.keys()].filter((name) => !listing.has(name)).map((name) => `${name}: read, not listed`),
  ];
  return { lost, corrupt, whole, absent: ledger.inFlight.size - whole - torn.length, torn, listingMismatches, listed: listing.size };
}
